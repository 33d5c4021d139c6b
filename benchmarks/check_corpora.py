"""Zero analyzer failures on real code: every file of each corpus that Python's own `ast.parse`
accepts must be analyzed without an error entry, a rule failure, a crash or a timeout.

Two passes per corpus:
1. the real command, `llmarch-lsp --check <folder> --format json --no-cache`: its exit code must
   not be 2, stderr must name no failed rule, and every error entry must be for a file that
   `ast.parse` rejects too;
2. each file analyzed on its own (in worker processes), timed: an exception escaping the engine,
   a rule failure, or an analysis slower than `--timeout` seconds is a failure.

    python benchmarks/check_corpora.py [--corpus NAME] [--timeout SECONDS]

Prints every failure and exits 1 if there is any.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpora import add_arguments, cache_root, count_lines, ensure_all, python_files  # noqa: E402

RULE_FAILURE = re.compile(r"internal error: rule (\S+) failed on (.+?): (.*) \(please report it\)$")


def parses(path: Path) -> bool:
    try:
        ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def check_with_the_command(folder: Path, parseable: set[str]) -> list[str]:
    completed = subprocess.run(
        [sys.executable, "-m", "llmarch_lsp", "--check", str(folder), "--format", "json", "--no-cache"],
        capture_output=True, text=True,
    )
    failures = []
    if completed.returncode == 2:
        failures.append(f"the command exited with 2 (internal error): {completed.stderr.strip()[-2000:]}")
    for line in completed.stderr.splitlines():
        match = RULE_FAILURE.search(line)
        if match:
            failures.append(f"{match.group(2)}: rule {match.group(1)} failed: {match.group(3)}")
    try:
        document = json.loads(completed.stdout)
    except ValueError:
        failures.append(f"the command printed no JSON: {completed.stdout[:500]!r}")
        return failures
    for error in document["errors"]:
        if error["path"] in parseable:
            failures.append(f"{error['path']}: error entry for a file ast.parse accepts: {error['message']}")
    return failures


def _analyze_timed(path: str) -> tuple[str, float, str | None, list]:
    from llmarch_lsp.engine import analyze_path
    from llmarch_lsp.config import Settings

    started = time.perf_counter()
    try:
        report = analyze_path(Path(path), Settings())
    except BaseException:  # the engine promises never to raise; anything escaping is a crash
        return path, time.perf_counter() - started, traceback.format_exc(limit=8), []
    return path, time.perf_counter() - started, report.error, report.rule_failures


def check_each_file(files: list[Path], timeout: float, jobs: int) -> tuple[list[str], list[tuple[float, str]]]:
    failures = []
    timings = []
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for path, seconds, error, rule_failures in pool.map(_analyze_timed, [str(f) for f in files], chunksize=8):
            timings.append((seconds, path))
            if error is not None and "Traceback" in error:
                failures.append(f"{path}: crashed:\n{error}")
            elif error is not None:
                failures.append(f"{path}: not analyzed: {error}")
            failures.extend(f"{path}: rule {code} failed: {reason}" for code, reason in rule_failures)
            if seconds > timeout:
                failures.append(f"{path}: took {seconds:.1f}s (over the {timeout:g}s limit)")
    return failures, sorted(timings, reverse=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds one file may take (default 10)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    arguments = parser.parse_args()

    total_failures = 0
    for name, folder in ensure_all(cache_root(arguments.cache_dir), arguments.corpus).items():
        files = python_files(folder)
        accepted = [path for path in files if parses(path)]
        parseable = {str(path) for path in accepted}
        print(f"{name}: {len(files)} files ({count_lines(files):,} lines), {len(accepted)} accepted by ast.parse", flush=True)
        failures = check_with_the_command(folder, parseable)
        each, timings = check_each_file(accepted, arguments.timeout, arguments.jobs)
        failures += each
        slowest = ", ".join(f"{Path(path).name} {seconds:.2f}s" for seconds, path in timings[:3])
        print(f"  slowest files: {slowest}")
        for failure in failures:
            print(f"  FAILURE {failure}")
        print(f"  {len(failures)} analyzer failures", flush=True)
        total_failures += len(failures)
    print(f"\n{'zero analyzer failures' if not total_failures else f'{total_failures} analyzer failures'}")
    return 1 if total_failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
