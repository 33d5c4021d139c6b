"""`llmarch-lsp --check` on real code, against TorchFix on the same files, in one run.

Measures, for each corpus (`benchmarks/corpora.py`): a cold check (empty cache), a warm re-check
(the cache from the cold run), TorchFix with all its rules on (`torchfix --select ALL`, installed
into its own virtual environment in the corpora cache), and the peak memory of each process tree.
Writes the ratios to `benchmarks/RESULTS.md` with the machine and the exact commands.

Targets (issue 8): cold at least 20x faster than TorchFix, warm at least 20x faster than cold,
peak memory under 500 MB.

    python benchmarks/bench_corpora.py                    # everything, writes RESULTS.md
    python benchmarks/bench_corpora.py --skip-torchfix    # only llmarch-lsp (uses a stored TorchFix run if any)

TorchFix takes tens of minutes on transformers; its timing is stored in the corpora cache, keyed
by its version, the corpus and the machine, and reused until `--rerun-torchfix`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import venv
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpora import CORPORA, add_arguments, cache_root, count_lines, ensure_all, python_files  # noqa: E402

REPOSITORY = Path(__file__).resolve().parents[1]
RESULTS = REPOSITORY / "benchmarks" / "RESULTS.md"
TORCHFIX = "torchfix==0.7.0"
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


@dataclass
class Measurement:
    command: str
    seconds: float  # wall clock
    cpu_seconds: float  # user + system of the whole process tree: fairer than wall clock on a busy machine
    peak_tree_mb: float  # resident memory of the whole tree (main process and workers), sampled every 20 ms
    peak_process_mb: float  # the largest single process (getrusage(RUSAGE_CHILDREN).ru_maxrss)
    exit_code: int
    stdout: str = ""
    stderr: str = ""


# Runs the measured command as its only child, so the rusage it reports covers that command alone.
_WRAPPER = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
code = subprocess.call(sys.argv[2:])
wall = time.perf_counter() - started  # the command alone, without this wrapper's own start-up
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as report:
    json.dump({"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "maxrss_kb": usage.ru_maxrss, "code": code}, report)
"""


def measure(command: list[str], display: str, env: dict | None = None) -> Measurement:
    """Run `command` once: wall time, CPU time and peak memory of its process tree."""
    peak = [0]
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr, \
            tempfile.NamedTemporaryFile("r", suffix=".json") as usage_file:
        wrapper = subprocess.Popen([sys.executable, "-c", _WRAPPER, usage_file.name, *command],
                                   stdout=stdout, stderr=stderr, env=env)
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], _tree_rss_kb(wrapper.pid, include_root=False))
                done.wait(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        wrapper.wait()
        done.set()
        sampler.join()
        usage = json.loads(Path(usage_file.name).read_text())
        stdout.seek(0)
        stderr.seek(0)
        out = stdout.read().decode("utf-8", errors="replace")
        err = stderr.read().decode("utf-8", errors="replace")
    return Measurement(display, usage["wall"], usage["cpu"], peak[0] / 1024, usage["maxrss_kb"] / 1024, usage["code"], out, err)


def _tree_rss_kb(pid: int, include_root: bool = True) -> int:
    total = 0
    pending = [(pid, include_root)]
    while pending:
        current, counted = pending.pop()
        try:
            if counted:
                total += int(Path(f"/proc/{current}/statm").read_text().split()[1]) * PAGE_KB
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend((int(child), True) for child in (task / "children").read_text().split())
        except (OSError, ValueError, IndexError):
            continue  # the process ended between listing and reading
    return total


# ---- llmarch-lsp ------------------------------------------------------------------------
def install_llmarch(root: Path, scratch: Path) -> Path:
    """llmarch-lsp as a user has it, on the same footing as TorchFix: `pip install`ed (so
    byte-compiled) into its own environment in the corpora cache, from a copy of this checkout
    taken now (edits made while the benchmark runs change neither the numbers nor the cache key).
    Returns its `llmarch-lsp` executable."""
    environment = root / "llmarch-venv"
    python = environment / "bin" / "python"
    if not python.exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(environment)
    source = scratch / "llmarch-source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPOSITORY / name, source / name)
    shutil.copytree(REPOSITORY / "server", source / "server", ignore=shutil.ignore_patterns("__pycache__"))
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, str(source)], check=True)  # the dependencies, the first time
    subprocess.run([*pip, "--no-deps", "--force-reinstall", str(source)], check=True)  # this checkout, every time
    return environment / "bin" / "llmarch-lsp"


def llmarch_command(executable: Path, folder: Path, cache: Path, jobs: int | None) -> list[str]:
    command = [str(executable), "--check", str(folder), "--format", "json", "--cache-dir", str(cache)]
    if jobs:
        command += ["--jobs", str(jobs)]
    return command


def _shown(command: list[str]) -> str:
    """The command as a reader can retype it: `~` for the home folder, `$TMP` for temporary ones."""
    text = " ".join(command)
    return text.replace(tempfile.gettempdir(), "$TMP").replace(str(Path.home()), "~")


def run_llmarch(executable: Path, folder: Path, cache: Path, jobs: int | None) -> Measurement:
    command = llmarch_command(executable, folder, cache, jobs)
    shown = _shown(["llmarch-lsp", *command[1:]])
    result = measure(command, shown)
    if result.exit_code == 2:
        raise SystemExit(f"llmarch-lsp failed (exit 2) on {folder}:\n{result.stderr[-4000:]}")
    return result


def rule_count(executable: Path) -> int:
    listed = subprocess.run([str(executable), "--list-rules", "--format", "json"], capture_output=True, text=True, check=True)
    return len(json.loads(listed.stdout))


# ---- TorchFix ---------------------------------------------------------------------------
def torchfix_executable(root: Path) -> Path:
    environment = root / "torchfix-venv"
    executable = environment / "bin" / "torchfix"
    if not executable.exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(environment)
        subprocess.run([str(environment / "bin" / "python"), "-m", "pip", "install", "--quiet", TORCHFIX], check=True)
    return executable


def _torchfix_key(corpus_key: str) -> str:
    return f"{TORCHFIX}|{corpus_key}|{os.cpu_count()}|{platform.machine()}"


def stored_torchfix(root: Path) -> dict:
    path = root / "torchfix-results.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def run_torchfix(root: Path, corpus_key: str, folder: Path) -> Measurement:
    executable = torchfix_executable(root)
    # `--select ALL` turns on the rules TorchFix leaves off by default; it checks in parallel on all cores.
    result = measure([str(executable), "--select", "ALL", str(folder)], _shown(["torchfix", "--select", "ALL", str(folder)]))
    result.stdout, result.stderr = result.stdout[-2000:], result.stderr[-2000:]
    stored = stored_torchfix(root)
    stored[_torchfix_key(corpus_key)] = asdict(result)
    (root / "torchfix-results.json").write_text(json.dumps(stored, indent=2))
    return result


# ---- report -----------------------------------------------------------------------------
def summarize(run: Measurement) -> dict:
    data = json.loads(run.stdout)
    return {"files": data["files_checked"], "findings": len(data["findings"]), "errors": len(data["errors"])}


def _ratio(slow: float, fast: float) -> str:
    return f"{slow / fast:.1f}x" if fast > 0 else "-"


def write_results(rows: list[dict], rules: int, jobs: int | None, load: str, repeat: int, floor: Measurement,
                  path: Path) -> str:
    cpus = os.cpu_count()
    lines = [
        "# Benchmarks on real code",
        "",
        f"Measured {date.today().isoformat()} by `python benchmarks/bench_corpora.py` "
        f"with {rules} rules on (`--jobs`: {jobs or f'default, all {cpus} cores'}); each llmarch-lsp time is the "
        f"fastest of {repeat} cold + warm pairs, peak memory the highest.",
        "",
        f"Machine: {cpus} CPUs ({platform.processor() or platform.machine()}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}. Load average when the run started: {load}.",
        "",
        "| corpus | files | lines | cold s | cold lines/s | warm s | TorchFix s | TorchFix lines/s "
        "| cold vs TorchFix | warm vs cold | peak MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        cold, warm, torchfix = row["cold"], row["warm"], row["torchfix"]
        peak = max(cold.peak_tree_mb, warm.peak_tree_mb)
        lines.append(
            f"| {row['corpus']} | {row['files']:,} | {row['lines']:,} | {cold.seconds:.2f} | {row['lines'] / cold.seconds:,.0f} "
            f"| {warm.seconds:.2f} "
            + (f"| {torchfix.seconds:.1f} | {row['lines'] / torchfix.seconds:,.0f} | {_ratio(torchfix.seconds, cold.seconds)} "
               if torchfix else "| - | - | - ")
            + f"| {_ratio(cold.seconds, warm.seconds)} | {peak:.0f} |"
        )
    lines += [
        "",
        "The same in CPU seconds (user + system, whole process tree), which a busy machine disturbs less:",
        "",
        "| corpus | cold CPU s | warm CPU s | TorchFix CPU s | cold vs TorchFix (CPU) | warm vs cold (CPU) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        cold, warm, torchfix = row["cold"], row["warm"], row["torchfix"]
        lines.append(
            f"| {row['corpus']} | {cold.cpu_seconds:.2f} | {warm.cpu_seconds:.2f} "
            + (f"| {torchfix.cpu_seconds:.1f} | {_ratio(torchfix.cpu_seconds, cold.cpu_seconds)} " if torchfix else "| - | - ")
            + f"| {_ratio(cold.cpu_seconds, warm.cpu_seconds)} |"
        )
    lines += [
        "",
        "Targets: cold at least 20x faster than TorchFix; warm at least 20x faster than cold; peak memory under 500 MB.",
        "",
        f"Start-up floor: checking an empty folder takes {floor.seconds:.2f} s ({floor.cpu_seconds:.2f} s CPU): starting "
        "Python and importing the package, which every run pays whatever the cache holds. A warm re-check costs that "
        "plus the cache's own work: "
        + "; ".join(f"{row['corpus']} {max(row['warm'].seconds - floor.seconds, 0):.2f} s "
                    f"({_ratio(row['cold'].seconds, max(row['warm'].seconds - floor.seconds, 1e-3))} faster than cold without it)"
                    for row in rows)
        + ". "
        + " ".join(
            f"On {row['corpus']}, 20x would need a warm run of {row['cold'].seconds / 20:.3f} s, less than the floor "
            "itself, so no cache can reach it there; the cache's own work is what the table's warm time adds to the floor."
            for row in rows if row["cold"].seconds / 20 < floor.seconds
        ),
        "",
        "## Details",
        "",
    ]
    for row in rows:
        lines.append(f"### {row['corpus']} ({row['requirement']}, `{row['folder_name']}/`)")
        lines.append("")
        summary = row["summary"]
        lines.append(f"- llmarch-lsp: {summary['files']:,} files checked, {summary['findings']:,} findings, "
                     f"{summary['errors']} files not analyzed.")
        for label in ("cold", "warm"):
            run = row[label]
            lines.append(f"- {label}: {run.seconds:.2f} s wall, {run.cpu_seconds:.2f} s CPU, peak {run.peak_tree_mb:.0f} MB "
                         f"for the process tree (largest single process {run.peak_process_mb:.0f} MB): `{run.command}`")
        if row["torchfix"]:
            run = row["torchfix"]
            lines.append(f"- TorchFix: {run.seconds:.1f} s wall, {run.cpu_seconds:.1f} s CPU, peak {run.peak_tree_mb:.0f} MB "
                         f"for the process tree: `{run.command}` (exit {run.exit_code}; measured {row['torchfix_when']})")
        lines.append("")
    lines += [
        "## How it is measured",
        "",
        "- Corpora: `python benchmarks/corpora.py` (`pip download --no-deps` of the pinned wheels; only their `.py` "
        "files are unpacked, into `~/.cache/llmarch-corpora`). Lines are the newline count of every `.py` file in "
        "the folder; lines/s divides them by wall-clock seconds.",
        "- llmarch-lsp is `pip install`ed from a copy of this checkout taken when the benchmark starts into "
        "`<corpora cache>/llmarch-venv`, its own environment as TorchFix has its own, and run as its `llmarch-lsp` "
        "command, with the "
        "JSON output going to a file. Cold: `--cache-dir` is a fresh empty folder. Warm: the same command "
        "again, with the cache the cold run left. Times are the command's own wall clock (measured by a small "
        "wrapper process that also reports the tree's CPU time and largest process), fastest of the repeats.",
        f"- TorchFix: `pip install {TORCHFIX}` into `<corpora cache>/torchfix-venv`, run with `--select ALL` "
        "(every rule, including those off by default) on the same folder; it checks on all cores by default. "
        "Its result is stored in `<corpora cache>/torchfix-results.json` and reused until `--rerun-torchfix`, "
        "since it takes tens of minutes and does not change with our code.",
        "- Memory: resident memory of the whole process tree, sampled every 20 ms from /proc; the largest "
        "single process is `getrusage(RUSAGE_CHILDREN).ru_maxrss`. CPU: `ru_utime + ru_stime` of the tree.",
        "",
    ]
    text = "\n".join(lines)
    path.write_text(text, encoding="utf-8")
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.add_argument("--jobs", type=int, help="passed to llmarch-lsp --jobs (default: its own, all cores)")
    parser.add_argument("--skip-torchfix", action="store_true", help="do not run TorchFix (a stored run is still reported)")
    parser.add_argument("--rerun-torchfix", action="store_true", help="run TorchFix even if a stored run exists")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where to write the report")
    parser.add_argument("--repeat", type=int, default=3, help="cold + warm pairs per corpus; the fastest counts (default 3)")
    arguments = parser.parse_args()

    root = cache_root(arguments.cache_dir)
    folders = ensure_all(root, arguments.corpus)
    corpora = {corpus.name: corpus for corpus in CORPORA}
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    rows = []
    failed = False
    with tempfile.TemporaryDirectory(prefix="llmarch-bench-") as scratch:
        executable = install_llmarch(root, Path(scratch))
        for name, folder in folders.items():
            corpus = corpora[name]
            files = python_files(folder)
            lines = count_lines(files)
            colds, warms = [], []
            for repeat in range(arguments.repeat):
                cache = Path(scratch) / f"cache-{name}-{repeat}"
                colds.append(run_llmarch(executable, folder, cache, arguments.jobs))
                warms.append(run_llmarch(executable, folder, cache, arguments.jobs))
                if json.loads(colds[-1].stdout) != json.loads(warms[-1].stdout):
                    print(f"{name}: the warm run's output differs from the cold run's", file=sys.stderr)
                    failed = True
            # The fastest of the repeats: what the code costs, with the least of other programs' noise.
            cold, warm = min(colds, key=lambda run: run.seconds), min(warms, key=lambda run: run.seconds)
            cold.peak_tree_mb = max(run.peak_tree_mb for run in colds)
            warm.peak_tree_mb = max(run.peak_tree_mb for run in warms)
            stored = stored_torchfix(root).get(_torchfix_key(corpus.requirement))
            if arguments.skip_torchfix or (stored and not arguments.rerun_torchfix):
                torchfix, when = (Measurement(**stored), "in an earlier run, stored") if stored else (None, "")
                if torchfix is not None:
                    torchfix.command = _shown(torchfix.command.split(" "))
            else:
                torchfix, when = run_torchfix(root, corpus.requirement, folder), "in this run"
            row = {"corpus": name, "requirement": corpus.requirement, "folder_name": corpus.folder, "files": len(files),
                   "lines": lines, "cold": cold, "warm": warm, "torchfix": torchfix, "torchfix_when": when,
                   "summary": summarize(cold)}
            rows.append(row)
            print(f"{name}: {len(files)} files, {lines:,} lines; cold {cold.seconds:.2f}s ({lines / cold.seconds:,.0f} lines/s, "
                  f"{cold.cpu_seconds:.1f} CPU s, peak {cold.peak_tree_mb:.0f} MB); warm {warm.seconds:.2f}s "
                  f"({_ratio(cold.seconds, warm.seconds)} faster)"
                  + (f"; TorchFix {torchfix.seconds:.1f}s ({_ratio(torchfix.seconds, cold.seconds)} slower than cold)"
                     if torchfix else ""), flush=True)
            if max(cold.peak_tree_mb, warm.peak_tree_mb) >= 500 or cold.seconds / warm.seconds < 20:
                failed = True
            if torchfix and torchfix.seconds / cold.seconds < 20:
                failed = True
        rules = rule_count(executable)
        empty = Path(scratch) / "empty"
        empty.mkdir()
        floor = min((run_llmarch(executable, empty, Path(scratch) / "cache-empty", arguments.jobs) for _ in range(arguments.repeat)),
                    key=lambda run: run.seconds)
    text = write_results(rows, rules, arguments.jobs, load, arguments.repeat, floor, arguments.results)
    print(f"\nwrote {arguments.results}\n\n{text}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
