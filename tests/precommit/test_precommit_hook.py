"""End to end with the real `pre-commit`: the hooks of `.pre-commit-hooks.yaml`, installed the way
pre-commit installs them (a virtualenv with `pip install` of this repository) and run on a
temporary git repository.

- `pre-commit try-repo <this repo> llmarch --files bad.py` fails and prints the LLM101 finding;
  on a clean file it passes.
- `try-repo ... llmarch-fix` rewrites the file (the project opts in to fixes that change
  numerics with `[tool.llmarch] unsafe-fixes = true`; every current fix is of that kind).
- The snippet the docs give, a `.pre-commit-config.yaml` with `args: [--unsafe-fixes]`, works too.

`try-repo` installs the hooks' environment in a temporary store each time (~20 s); the hooks run
from a `.pre-commit-config.yaml` use the store in PRE_COMMIT_HOME (~/.cache/llmarch-e2e/pre-commit).
`try-repo` reads a repository at a commit. On a repository with uncommitted changes it makes a
shadow commit of the *tracked* files' changes and of staged files, but leaves untracked files out
(a new, not yet added `.pre-commit-hooks.yaml` or rule module would be missing). So the test
commits a snapshot of the working tree (tracked and untracked files, without ignored ones) into a
repository of its own, with fixed dates: the same tree gives the same commit, so the environment
in PRE_COMMIT_HOME is reused by later runs. Installing an environment pip-installs the package and
its dependencies (pygls, lsprotocol, libcst) from PyPI.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("LLMARCH_E2E_CACHE", Path.home() / ".cache" / "llmarch-e2e"))
PRE_COMMIT_HOME = CACHE / "pre-commit"
TIMEOUT = 900  # the first run installs the hook's environment from PyPI

BAD = """\
import torch.nn.functional as F


def attend(q, k, v):
    att = q @ k.transpose(-2, -1)  # (B, nh, T, T)
    att = F.softmax(att, dim=-1)
    return att @ v
"""
GOOD = """\
import torch.nn.functional as F


def attend(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)
"""
# The rule under test only: other rules (new ones come along) must not decide these outcomes.
PYPROJECT = '[project]\nname = "demo"\nversion = "0"\n\n[tool.llmarch]\nselect = ["LLM101"]\n'
FIXED = "k.size(-1)"  # the scale, 1/sqrt(d_head), read from the key (spelt as the file allows)
# Fixed identity and dates: the snapshot's commit id depends on the files alone.
GIT_ENV = {
    "GIT_AUTHOR_NAME": "llmarch tests",
    "GIT_AUTHOR_EMAIL": "tests@llmarch.invalid",
    "GIT_COMMITTER_NAME": "llmarch tests",
    "GIT_COMMITTER_EMAIL": "tests@llmarch.invalid",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+0000",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+0000",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def _git(*args: str, cwd: Path) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def _working_tree_files() -> list[str]:
    """Tracked and untracked files, without ignored ones: what committing everything would hold."""
    listed = _git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=REPO).split("\0")
    return sorted(name for name in listed if name and (REPO / name).is_file())


@pytest.fixture(scope="module")
def hook_repo() -> Path:
    """A committed snapshot of this repository's working tree, named after its content."""
    if shutil.which("git") is None:
        pytest.fail("pre-commit needs git")
    files = _working_tree_files()
    digest = hashlib.sha256()
    for name in files:
        digest.update(name.encode() + b"\0" + oct((REPO / name).stat().st_mode & 0o111).encode() + b"\0")
        digest.update((REPO / name).read_bytes() + b"\0")
    target = CACHE / "precommit-repos" / digest.hexdigest()[:16]
    if (target / ".git").is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".snapshot-", dir=target.parent))
    for name in files:
        destination = scratch / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, destination)
    _git("init", "-q", "-b", "main", cwd=scratch)
    _git("add", "-A", cwd=scratch)
    _git("commit", "-q", "--no-verify", "-m", "llmarch-lsp working tree", cwd=scratch)
    try:
        scratch.rename(target)
    except OSError:  # another run made the same snapshot first
        shutil.rmtree(scratch, ignore_errors=True)
    return target


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A git repository with a model file that trips LLM101 and one that does not."""
    root = tmp_path / "project"
    root.mkdir()
    _git("init", "-q", "-b", "main", cwd=root)
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "bad.py").write_text(BAD)
    (root / "good.py").write_text(GOOD)
    _git("add", "-A", cwd=root)
    return root


def _pre_commit(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, **GIT_ENV, "PRE_COMMIT_HOME": str(PRE_COMMIT_HOME), "PRE_COMMIT_COLOR": "never"}
    env.pop("PRE_COMMIT_ALLOW_NO_CONFIG", None)
    start = time.monotonic()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pre_commit", *args],
            cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"pre-commit {' '.join(args)} timed out\n{error.stdout}\n{error.stderr}")
    print(f"pre-commit {' '.join(args)}: exit {result.returncode} in {time.monotonic() - start:.1f}s")
    return result


def _transcript(result: subprocess.CompletedProcess) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def test_check_hook_fails_on_a_finding_and_passes_a_clean_file(hook_repo: Path, project: Path) -> None:
    bad = _pre_commit("try-repo", str(hook_repo), "llmarch", "--files", "bad.py", cwd=project)
    assert bad.returncode == 1, _transcript(bad)
    assert "llmarch (LLM architecture review)" in bad.stdout and "Failed" in bad.stdout, _transcript(bad)
    assert "bad.py:5:11: LLM101 [unscaled-attention]" in bad.stdout, _transcript(bad)
    assert (project / "bad.py").read_text() == BAD  # the check hook never writes

    good = _pre_commit("try-repo", str(hook_repo), "llmarch", "--files", "good.py", cwd=project)
    assert good.returncode == 0, _transcript(good)
    assert "Passed" in good.stdout, _transcript(good)


def test_fix_hook_rewrites_the_file(hook_repo: Path, project: Path) -> None:
    # Every current fix changes numerics ("unsafe"): the project opts in to them.
    (project / "pyproject.toml").write_text(PYPROJECT + "unsafe-fixes = true\n")
    _git("add", "-A", cwd=project)
    result = _pre_commit("try-repo", str(hook_repo), "llmarch-fix", "--files", "bad.py", cwd=project)
    fixed = (project / "bad.py").read_text()
    # pre-commit fails a hook that modified files, so the user reviews the fix before committing.
    assert result.returncode == 1, _transcript(result)
    assert "files were modified by this hook" in result.stdout, _transcript(result)
    assert FIXED in fixed, fixed + _transcript(result)
    # The fixed file is clean. (Asked of the CLI directly: every try-repo installs the hook's
    # environment afresh, in a store of its own that PRE_COMMIT_HOME does not change.)
    again = subprocess.run(
        [sys.executable, "-m", "llmarch_lsp", "--check", "bad.py"], cwd=project, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0, _transcript(again)


def test_fix_hook_with_args_from_the_documented_config(hook_repo: Path, project: Path) -> None:
    """The snippet in .pre-commit-hooks.yaml and editors/README.md: `args: [--unsafe-fixes]`."""
    rev = _git("rev-parse", "HEAD", cwd=hook_repo).strip()
    (project / ".pre-commit-config.yaml").write_text(
        f"repos:\n"
        f"  - repo: {hook_repo}\n"
        f"    rev: {rev}\n"
        f"    hooks:\n"
        f"      - id: llmarch-fix\n"
        f"        args: [--unsafe-fixes]\n"
    )
    _git("add", "-A", cwd=project)
    result = _pre_commit("run", "llmarch-fix", "--files", "bad.py", "good.py", cwd=project)
    fixed = (project / "bad.py").read_text()
    assert result.returncode == 1 and "files were modified by this hook" in result.stdout, _transcript(result)
    assert FIXED in fixed, fixed + _transcript(result)
    assert (project / "good.py").read_text() == GOOD
