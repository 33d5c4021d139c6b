"""How much the diagnostics path costs, as a ratio to `ast.parse` of the same file, and the
files/s of `llmarch-lsp --check` over a folder. Run: python benchmarks/bench_check.py

Target (issue 2): analysis (parse + every rule + suppressions) at most 3x `ast.parse`.
"""

from __future__ import annotations

import argparse
import ast
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import model_file  # noqa: E402

from llmarch_lsp.engine import analyze_source  # noqa: E402


def cpu_seconds(function) -> float:
    # CPU time of this process: other work on the machine does not count against us.
    started = time.process_time()
    function()
    return time.process_time() - started


def parse_like_the_engine(source: str) -> None:
    # The engine parses with the cyclic collector paused; the baseline gets the same conditions.
    gc.disable()
    try:
        ast.parse(source)
    finally:
        gc.enable()


def measure_ratio(lines: int, repeats: int) -> dict:
    source = model_file(lines)
    analyze_source(source, "warmup.py")  # import every rule module before timing
    parses, analyses = [], []
    for _ in range(repeats):  # interleaved, so a burst of load hits both alike
        parses.append(cpu_seconds(lambda: parse_like_the_engine(source)))
        # The --check path, which never builds the alternative fixes only editors offer
        # (benchmarks/bench_lsp.py measures the language server's path, alternatives included).
        analyses.append(cpu_seconds(lambda: analyze_source(source, "model.py", alternatives=False)))
    parse, analysis = statistics.median(parses), statistics.median(analyses)
    findings = len(analyze_source(source, "model.py").findings)
    return {
        "lines": source.count("\n") + 1,
        "ast_parse_ms": round(parse * 1000, 2),
        "diagnostics_ms": round(analysis * 1000, 2),
        "ratio_to_ast_parse": round(analysis / parse, 2),
        "findings": findings,
    }


def measure_folder(files: int, lines: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        for number in range(files):
            Path(folder, f"model_{number:03d}.py").write_text(model_file(lines))
        started = time.perf_counter()
        completed = subprocess.run(
            [sys.executable, "-m", "llmarch_lsp", "--check", folder, "--format", "json"],
            capture_output=True, text=True,
        )
        elapsed = time.perf_counter() - started
    checked = json.loads(completed.stdout)["files_checked"]
    return {"files": checked, "lines_per_file": lines, "seconds": round(elapsed, 2),
            "files_per_second": round(checked / elapsed, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--files", type=int, default=100)
    arguments = parser.parse_args()
    ratio = measure_ratio(arguments.lines, arguments.repeats)
    folder = measure_folder(arguments.files, 300)
    print(json.dumps({"diagnostics": ratio, "check_folder": folder}, indent=2))
    print(
        f"\ndiagnostics path: {ratio['diagnostics_ms']} ms vs ast.parse {ratio['ast_parse_ms']} ms "
        f"on {ratio['lines']} lines = {ratio['ratio_to_ast_parse']}x (target <= 3x)"
    )
    print(f"--check over a folder: {folder['files_per_second']} files/s ({folder['files']} files of {folder['lines_per_file']} lines)")
    return 0 if ratio["ratio_to_ast_parse"] <= 3 else 1


if __name__ == "__main__":
    raise SystemExit(main())
