from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

# A file that trips LLM203 (available from the start) at a known place.
POST_NORM_LAYER = textwrap.dedent(
    """\
    import torch.nn as nn

    layer = nn.TransformerEncoderLayer(d_model=512, nhead=8)
    encoder = nn.TransformerEncoder(layer, num_layers=12)
    """
)

PRE_NORM_LAYER = POST_NORM_LAYER.replace("nhead=8)", "nhead=8, norm_first=True)")


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


@pytest.fixture
def llmarch(tmp_path):
    """Run the real command, as a user would, from `cwd` (default: a temp project)."""

    def run(*arguments: str, cwd: Path | None = None, env: dict | None = None) -> Result:
        environment = {**os.environ, "NO_COLOR": "", "FORCE_COLOR": ""}
        environment.pop("NO_COLOR")
        environment.pop("FORCE_COLOR")
        environment.update(env or {})
        completed = subprocess.run(
            [sys.executable, "-m", "llmarch_lsp", *arguments],
            cwd=cwd or tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            env=environment,
        )
        return Result(completed.returncode, completed.stdout, completed.stderr)

    return run


@pytest.fixture
def project(tmp_path):
    """Write files into a temp project: project({"a.py": "...", "pyproject.toml": "..."})."""

    def write(files: dict[str, str | bytes]) -> Path:
        for name, content in files.items():
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8")
        return tmp_path

    return write
