"""`--jobs`, the `.llmarch_cache` folder, and the progress bar."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from llmarch_lsp import cache as cache_module
from llmarch_lsp import runner
from llmarch_lsp.cache import ResultCache, default_cache_folder, settings_fingerprint, tool_fingerprint
from llmarch_lsp.config import Settings
from llmarch_lsp.engine import analyze_source
from llmarch_lsp.findings import FileReport
from llmarch_lsp.rewrite import planned_fix_edits

from .conftest import POST_NORM_LAYER, PRE_NORM_LAYER

REPOSITORY = Path(__file__).resolve().parents[2]
EXAMPLES = {name: (REPOSITORY / "examples" / name).read_text() for name in ("model.py", "train.py")}


def _many_files(count: int = 60) -> dict[str, str]:
    files = {}
    for number in range(count):
        kind = number % 4
        text = (POST_NORM_LAYER, PRE_NORM_LAYER, EXAMPLES["model.py"], EXAMPLES["train.py"])[kind]
        files[f"pkg/sub{number % 3}/file_{number:03d}.py"] = text
    files["pkg/broken.py"] = "import torch\ndef f(:\n"
    files["pkg/notes.py"] = "plain notes, not python (\n"
    return files


def _from_cache(result) -> int:
    line = next(line for line in result.stderr.splitlines() if "from the cache" in line)
    return int(line.split("(")[1].split()[0])


# ---- --jobs ----------------------------------------------------------------------------------
def test_jobs_one_and_two_give_identical_output_in_every_format(llmarch, project):
    project(_many_files())
    for output in ("json", "text", "sarif", "github"):
        one = llmarch("--check", "pkg", "--format", output, "--jobs", "1", "--no-cache")
        two = llmarch("--check", "pkg", "--format", output, "--jobs", "2", "--no-cache")
        assert one.code == two.code == 1
        assert one.stdout == two.stdout, output
    parallel = llmarch("--check", "pkg", "--format", "json", "--jobs", "2", "--no-cache").json()
    paths = [finding["path"] for finding in parallel["findings"]]
    assert len(set(paths)) == 45 and paths == sorted(paths)  # discovery order, whatever finished first


def test_jobs_two_really_uses_worker_processes_and_keeps_order(tmp_path, monkeypatch):
    for name, text in _many_files().items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    targets = [(path, Settings()) for path in sorted((tmp_path / "pkg").rglob("*.py"))]
    pools = []
    real_pool = runner._worker_pool

    def counting_pool(workers, *arguments):
        pools.append(workers)
        return real_pool(workers, *arguments)

    monkeypatch.setattr(runner, "_worker_pool", counting_pool)
    in_process = runner.check_files(targets, jobs=1)
    assert pools == []
    parallel = runner.check_files(targets, jobs=2)
    assert pools == [2]
    assert [result.report for result in parallel] == [result.report for result in in_process]
    assert [result.source for result in parallel] == [result.source for result in in_process]


def test_jobs_must_be_positive(llmarch, project):
    project({"model.py": POST_NORM_LAYER})
    assert llmarch("--check", "--jobs", "0").code == 2


# ---- the cache -------------------------------------------------------------------------------
def test_second_run_comes_from_the_cache_with_identical_output(llmarch, project):
    root = project(_many_files(12))
    cold = llmarch("--check", "pkg", "--format", "json", "--verbose")
    warm = llmarch("--check", "pkg", "--format", "json", "--verbose")
    assert cold.stdout == warm.stdout and cold.code == warm.code == 1
    assert _from_cache(cold) == 0
    assert _from_cache(warm) == 13  # every file that mentions torch, the broken one too
    assert llmarch("--check", "pkg").stdout == llmarch("--check", "pkg", "--no-cache").stdout
    folder = root / ".llmarch_cache"
    assert (folder / "CACHEDIR.TAG").read_text().startswith("Signature: 8a477f597d28d172789f06886806bc55")
    assert (folder / ".gitignore").read_text().splitlines()[-1] == "*"


def test_changed_content_is_analyzed_again(llmarch, project):
    root = project(_many_files(8))
    llmarch("--check", "pkg")
    (root / "pkg/sub0/file_000.py").write_text(PRE_NORM_LAYER)
    result = llmarch("--check", "pkg", "--format", "json", "--verbose")
    assert _from_cache(result) == 8
    assert "pkg/sub0/file_000.py" not in {finding["path"] for finding in result.json()["findings"]}


def test_config_change_invalidates_and_is_applied(llmarch, project):
    project({"model.py": POST_NORM_LAYER, "pyproject.toml": "[tool.llmarch]\n"})
    assert llmarch("--check", "--format", "json").json()["findings"][0]["severity"] == "warning"
    project({"pyproject.toml": '[tool.llmarch.severity]\nLLM203 = "error"\n'})
    result = llmarch("--check", "--format", "json", "--verbose")
    assert _from_cache(result) == 0
    assert result.json()["findings"][0]["severity"] == "error"
    assert _from_cache(llmarch("--check", "--select", "LLM2", "--verbose")) == 0  # other flags, other key


def test_no_cache_neither_reads_nor_writes(llmarch, project):
    root = project({"model.py": POST_NORM_LAYER})
    result = llmarch("--check", "--no-cache", "--verbose")
    assert result.code == 1 and _from_cache(result) == 0
    assert not (root / ".llmarch_cache").exists()
    llmarch("--check")
    assert _from_cache(llmarch("--check", "--no-cache", "--verbose")) == 0


def test_cache_lives_at_the_project_root_or_where_told(llmarch, project, tmp_path):
    root = project({"pyproject.toml": "[project]\nname = 'x'\n", "src/deep/model.py": POST_NORM_LAYER})
    llmarch("--check", ".", cwd=root / "src" / "deep")
    assert (root / ".llmarch_cache").is_dir() and not (root / "src" / "deep" / ".llmarch_cache").exists()
    elsewhere = tmp_path / "elsewhere"
    llmarch("--check", "--cache-dir", str(elsewhere))
    assert (elsewhere / "CACHEDIR.TAG").is_file()
    by_environment = tmp_path / "by-environment"
    llmarch("--check", env={"LLMARCH_CACHE_DIR": str(by_environment)})
    assert (by_environment / "CACHEDIR.TAG").is_file()
    assert default_cache_folder(start=root / "src" / "deep") == root / ".llmarch_cache"


def test_corrupt_or_truncated_entries_are_misses_and_get_rewritten(llmarch, project):
    root = project(_many_files(8))
    reference = llmarch("--check", "pkg", "--format", "json").stdout
    entries = sorted((root / ".llmarch_cache").rglob("*.json"))
    assert len(entries) == 9
    for number, entry in enumerate(entries):
        data = entry.read_bytes()
        entry.write_bytes((b"", data[: len(data) // 2], b"\x00\xff garbage", b'{"key": "x"}')[number % 4])
    result = llmarch("--check", "pkg", "--format", "json", "--verbose")
    assert result.stdout == reference and _from_cache(result) == 0
    assert _from_cache(llmarch("--check", "pkg", "--verbose")) == 9


def test_unwritable_cache_folder_still_checks(llmarch, project, tmp_path):
    project({"model.py": POST_NORM_LAYER})
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = llmarch("--check", "--cache-dir", str(blocker / "cache"), "--format", "json")
    assert result.code == 1 and len(result.json()["findings"]) == 1


def test_two_runs_at_once_share_the_cache_without_corrupting_it(llmarch, project):
    root = project(_many_files(80))
    reference = llmarch("--check", "pkg", "--format", "json", "--no-cache").stdout
    command = [sys.executable, "-m", "llmarch_lsp", "--check", "pkg", "--format", "json", "--jobs", "2"]
    runs = [subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [output for output, _ in outputs] == [reference, reference], [error for _, error in outputs]
    warm = llmarch("--check", "pkg", "--format", "json", "--verbose")
    assert warm.stdout == reference and _from_cache(warm) == 81
    assert not [path for path in (root / ".llmarch_cache").rglob("*") if path.name.endswith(".tmp")]


def test_cached_reports_equal_fresh_ones_fixes_included(tmp_path):
    cache = ResultCache(tmp_path / ".llmarch_cache")
    settings = Settings()
    for name, source in EXAMPLES.items():
        report = analyze_source(source, f"examples/{name}", settings)
        assert any(finding.fix for finding in report.findings)
        key = cache.key(source, report.path, settings_fingerprint(settings))
        edits = planned_fix_edits(source, report.findings)
        assert cache.store(key, report, edits)
        entry = cache.load(key)
        assert entry.report == report and entry.fix_edits == edits
        assert [hash(finding.fix) for finding in entry.report.findings] == [hash(f.fix) for f in report.findings]


def test_reports_with_rule_failures_are_not_cached(tmp_path):
    cache = ResultCache(tmp_path / "cache")
    assert not cache.store("ab" * 20, FileReport("x.py", rule_failures=[("LLM101", "ValueError: boom")]))
    assert cache.load("ab" * 20) is None


def test_keys_change_with_content_path_settings_and_tool_version(tmp_path, monkeypatch):
    cache = ResultCache(tmp_path / "cache")
    base = settings_fingerprint(Settings())
    key = cache.key("import torch\n", "a.py", base)
    assert key == cache.key("import torch\n", "a.py", base)
    assert key != cache.key("import torch  \n", "a.py", base)
    assert key != cache.key("import torch\n", "b.py", base)
    assert key != cache.key("import torch\n", "a.py", settings_fingerprint(Settings(max_file_lines=10)))
    monkeypatch.setattr(cache_module, "__version__", "99.0.0")
    tool_fingerprint.cache_clear()
    try:
        assert cache.key("import torch\n", "a.py", base) != key
        assert ResultCache(tmp_path / "cache").generation != cache.generation
    finally:
        tool_fingerprint.cache_clear()


def test_entries_decode_only_this_packages_types(tmp_path):
    cache = ResultCache(tmp_path / "cache")
    key = "cd" * 20
    entry = cache.generation / key[:2] / f"{key}.json"
    entry.parent.mkdir(parents=True, exist_ok=True)
    hostile = {"key": key, "report": {"$d": "os:system", "f": {"command": "touch pwned"}}}
    entry.write_text(json.dumps(hostile))
    assert cache.load(key) is None
    hostile["report"] = {"$d": "llmarch_lsp.__main__:main", "f": {}}
    entry.write_text(json.dumps(hostile))
    assert cache.load(key) is None
    assert not (tmp_path / "pwned").exists()


# ---- the progress bar --------------------------------------------------------------------------
def _run_with_terminal_stderr(arguments: list[str], cwd: Path, env: dict) -> tuple[int, str, str]:
    controller, terminal = pty.openpty()
    # stdout to a file: a pipe nobody reads while the terminal is drained would fill and block the program.
    stdout_file = tempfile.TemporaryFile()
    process = subprocess.Popen([sys.executable, "-m", "llmarch_lsp", *arguments], cwd=cwd,
                               stdout=stdout_file, stderr=terminal, env={**os.environ, **env})
    os.close(terminal)
    seen = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closes when the program exits
            break
        if not chunk:
            break
        seen += chunk
    code = process.wait()
    os.close(controller)
    stdout_file.seek(0)
    stdout = stdout_file.read().decode()
    stdout_file.close()
    return code, stdout, seen.decode(errors="replace")


def test_progress_bar_on_a_terminal_only_and_never_on_stdout(llmarch, project):
    root = project(_many_files(30))
    code, stdout, terminal = _run_with_terminal_stderr(
        ["--check", "pkg", "--format", "json", "--no-cache"], root, {"LLMARCH_PROGRESS_DELAY": "0", "TERM": "xterm"})
    assert code == 1
    assert "Checking [" in terminal and "32/32 files" in terminal
    assert terminal.rstrip("\r\n").endswith("\x1b[2K")  # erased before the report
    assert "Checking" not in stdout and json.loads(stdout)["files_checked"] == 32
    piped = llmarch("--check", "pkg", "--no-cache", env={"LLMARCH_PROGRESS_DELAY": "0"})
    assert "Checking [" not in piped.stderr + piped.stdout


def test_quick_runs_show_no_progress_bar(project):
    root = project({"model.py": POST_NORM_LAYER})
    _, _, terminal = _run_with_terminal_stderr(["--check", "--no-cache"], root, {"TERM": "xterm"})
    assert "Checking [" not in terminal


@pytest.mark.parametrize("count", [0, 1])
def test_tiny_runs_work_with_any_jobs(llmarch, project, count):
    project({f"m{n}.py": POST_NORM_LAYER for n in range(count)} or {"README.md": "x"})
    result = llmarch("--check", "--jobs", "4", "--format", "json")
    assert result.json()["files_checked"] == count


# ---- the stat index: unchanged files are answered without being read ---------------------------
@pytest.fixture
def settled_files(tmp_path, monkeypatch):
    """Files old enough to trust their stat signature (the racy window is 2 s; here, none)."""
    monkeypatch.setattr(cache_module, "RACY_NANOSECONDS", 0)
    for name, text in _many_files(8).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    return [(path.relative_to(tmp_path), Settings()) for path in sorted((tmp_path / "pkg").rglob("*.py"))]


def _counting_reads(monkeypatch) -> list[str]:
    reads = []
    real_read = runner.read_source

    def read(path):
        reads.append(str(path))
        return real_read(path)

    monkeypatch.setattr(runner, "read_source", read)
    return reads


def test_unchanged_files_are_not_even_read(settled_files, tmp_path, monkeypatch):
    cold = runner.check_files(settled_files, jobs=1, cache=ResultCache(tmp_path / "cache"))
    reads = _counting_reads(monkeypatch)
    warm = runner.check_files(settled_files, jobs=1, cache=ResultCache(tmp_path / "cache"))
    assert [result.report for result in warm] == [result.report for result in cold]
    assert [result.source for result in warm] == [result.source for result in cold]
    assert all(result.cached for result in warm if result.report.error is None)
    with_findings = {str(path) for (path, _), result in zip(settled_files, cold) if result.report.findings}
    assert set(reads) == with_findings  # read for their snippets only


def test_an_edit_that_keeps_the_size_is_still_seen(settled_files, tmp_path, monkeypatch):
    cache_folder = tmp_path / "cache"
    runner.check_files(settled_files, jobs=1, cache=ResultCache(cache_folder))
    target = tmp_path / "pkg/sub0/file_000.py"  # POST_NORM_LAYER: one finding
    text = target.read_text()
    edited = text.replace("nhead=8", "nhead=4", 1)
    assert len(edited) == len(text) and edited != text
    status = target.stat()
    target.write_text(edited)
    os.utime(target, ns=(status.st_atime_ns, status.st_mtime_ns))  # same size, same mtime: only ctime moved
    results = runner.check_files(settled_files, jobs=1, cache=ResultCache(cache_folder))
    changed = results[[str(path) for path, _ in settled_files].index("pkg/sub0/file_000.py")]
    assert changed.source == edited and not changed.cached


def test_corrupt_index_is_ignored(settled_files, tmp_path):
    cache_folder = tmp_path / "cache"
    cold = runner.check_files(settled_files, jobs=1, cache=ResultCache(cache_folder))
    (index,) = cache_folder.glob("v*/index.json")
    index.write_bytes(b'{"records": {"' + str(tmp_path).encode() + b'": [1, 2')
    warm = runner.check_files(settled_files, jobs=1, cache=ResultCache(cache_folder))
    assert [result.report for result in warm] == [result.report for result in cold]
    assert json.loads(index.read_bytes())["records"]  # rewritten whole


def test_recently_changed_files_are_not_trusted_by_stat(tmp_path):
    path = tmp_path / "fresh.py"
    path.write_text("import torch\n")
    assert cache_module.stat_signature(path.stat()) is None  # written just now: may change within the tick
    status = path.stat()
    an_hour_ago = status.st_ctime_ns - 3600 * 10**9
    settled = SimpleNamespace(st_size=status.st_size, st_mtime_ns=an_hour_ago, st_ctime_ns=an_hour_ago,
                              st_ino=status.st_ino, st_dev=status.st_dev)
    assert cache_module.stat_signature(settled) == (status.st_size, an_hour_ago, an_hour_ago, status.st_ino, status.st_dev)
