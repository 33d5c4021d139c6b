"""End to end in real VS Code: the packaged extension in code-server, driven by headless Chromium.

Builds `llmarch-lsp-<version>.vsix` with `vsce package`, installs code-server and Chromium when
they are missing (`editors/vscode/e2e/install_code_server.sh`, cached in ~/.cache/llmarch-e2e),
and runs `editors/vscode/e2e/run_e2e.sh` for each way the extension finds the server. In each,
a workspace with a nanoGPT-style attention module trips LLM101; the test waits for the diagnostic
in the Problems panel (code and position), applies the rule's primary quick fix with Ctrl+.,
saves, and checks the file on disk and that the diagnostic is gone. With `llmarch.path` it also
runs the commands (Explain Rule, Show Output, Restart Server) and changes a setting live. In an
untrusted workspace it checks that no server from the workspace is started.

Screenshots and logs: editors/vscode/e2e/artifacts/<variant>/ (gitignored; the path is printed).
Needs Node 20 with npm, and root (or sudo) for apt the first time. Marked `e2e`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmarch_lsp.analyzers.llm101_unscaled_attention import RULE as LLM101

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
EXTENSION = REPO / "editors" / "vscode"
E2E = EXTENSION / "e2e"
CACHE = Path(os.environ.get("LLMARCH_E2E_CACHE", Path.home() / ".cache" / "llmarch-e2e"))
ARTIFACTS = Path(os.environ.get("LLMARCH_E2E_ARTIFACTS", E2E / "artifacts"))
VERSION = json.loads((EXTENSION / "package.json").read_text(encoding="utf-8"))["version"]


def _run(argv: list[str], *, what: str, timeout: int, **options) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, **options)
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"{what} timed out after {timeout}s\nstdout:\n{error.stdout}\nstderr:\n{error.stderr}")
    elapsed = time.monotonic() - start
    if result.returncode != 0:
        pytest.fail(f"{what} failed (exit {result.returncode}, {elapsed:.0f}s)\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result, elapsed


def _record_timing(name: str, seconds: float) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / "timings.json"
    timings = json.loads(path.read_text()) if path.is_file() else {}
    timings[name] = round(seconds, 1)
    path.write_text(json.dumps(timings, indent=1) + "\n")
    print(f"{name}: {seconds:.1f}s")


@pytest.fixture(scope="module")
def node_tools() -> None:
    missing = [tool for tool in ("node", "npm", "npx") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"the VS Code end-to-end test needs Node.js 20 and npm ({', '.join(missing)} missing); skip it with -m 'not e2e'")
    if not (EXTENSION / "node_modules" / "@vscode" / "vsce").is_dir():
        _, seconds = _run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], what="npm ci", timeout=600, cwd=EXTENSION)
        _record_timing("npm ci", seconds)


@pytest.fixture(scope="module")
def code_server(node_tools) -> Path:
    cached = (CACHE / "code-server" / "out" / "node" / "entry.js").is_file()
    result, seconds = _run(
        ["bash", str(E2E / "install_code_server.sh"), str(CACHE)], what="installing code-server and Chromium", timeout=1800
    )
    _record_timing(f"install code-server + Chromium ({'cached' if cached else 'first time'})", seconds)
    print(result.stdout)
    return CACHE / "code-server"


@pytest.fixture(scope="module")
def vsix(node_tools, tmp_path_factory) -> Path:
    """`vsce package` names the package after the extension: llmarch-lsp-<version>.vsix."""
    out = tmp_path_factory.mktemp("vsix")
    _, seconds = _run(["npm", "run", "--silent", "compile"], what="npm run compile", timeout=300, cwd=EXTENSION)
    _, packaging = _run(
        ["npx", "--no-install", "vsce", "package", "--out", f"{out}{os.sep}"], what="vsce package", timeout=300, cwd=EXTENSION
    )
    _record_timing("compile + vsce package", seconds + packaging)
    built = sorted(path.name for path in out.iterdir())
    assert built == [f"llmarch-lsp-{VERSION}.vsix"], built
    return out / built[0]


def _server() -> Path:
    """The llmarch-lsp of the environment running the tests (a `python` sits beside it)."""
    script = Path(sys.executable).parent / "llmarch-lsp"
    if not os.access(script, os.X_OK):
        pytest.fail(f"no llmarch-lsp beside {sys.executable}; install the package (pip install -e .)")
    return script


# `path` runs the whole flow (commands and live settings too); the others the diagnostic and fix.
VARIANTS = ["path", "interpreter", "venv", "untrusted"]


@pytest.mark.parametrize("via", VARIANTS)
def test_vscode_end_to_end(via: str, code_server: Path, vsix: Path, keep_artifacts) -> None:
    artifacts = keep_artifacts(ARTIFACTS / via)
    env = {
        **os.environ,
        "LLMARCH_LSP": str(_server()),
        "SERVER_VIA": via,
        "CASE": "LLM101",
        "FIX_TITLE": LLM101.fix_title,
        "ARTIFACTS": str(artifacts),
    }
    env.pop("PORT", None)  # run_e2e.sh picks a free port: other test runs may share this machine
    start = time.monotonic()
    try:
        result = subprocess.run(
            ["bash", str(E2E / "run_e2e.sh"), str(code_server), str(vsix)],
            env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"run_e2e.sh timed out\n{error.stdout}\n{error.stderr}\nartifacts: {artifacts}")
    _record_timing(f"VS Code e2e ({via})", time.monotonic() - start)
    transcript = f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}\nartifacts: {artifacts}"
    print(f"screenshots and logs: {artifacts}")
    assert result.returncode == 0, transcript

    if via == "untrusted":
        assert "OK no diagnostic in the untrusted workspace" in result.stdout, transcript
        assert (artifacts / "vscode-untrusted.png").is_file()
        return
    assert f"problems panel:" in result.stdout and f"llmarch {LLM101.code} [Ln 19, Col 15]" in result.stdout, transcript
    assert f"applying: llmarch ({LLM101.code}): {LLM101.fix_title}" in result.stdout, transcript
    fixed = (artifacts / "model.py.after").read_text()
    assert "k.size(-1)" in fixed, fixed  # the scale, read from the key
    for name in ("vscode-diagnostic.png", "vscode-quickfix.png", "vscode-fixed.png"):
        assert (artifacts / name).is_file(), name
    if via == "path":
        for step in ("explain rule: LLM101 unscaled-attention", "output channel llmarch shown", "diagnostic cleared", "restarted"):
            assert step in result.stdout, transcript
        assert (artifacts / "vscode-explain.png").is_file()
