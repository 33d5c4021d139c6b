"""Smoke test: Emacs eglot, configured with the snippet from editors/README.md, gets the llmarch
diagnostic. Skipped unless `emacs` and eglot (built in from Emacs 29; Debian `elpa-eglot` for 28)
are installed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EMACS = shutil.which("emacs")
ELPA = Path("/usr/share/emacs/site-lisp/elpa")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(EMACS is None, reason="needs emacs with eglot (apt-get install emacs-nox elpa-eglot)"),
]

SMOKE = r"""
(when (file-directory-p "{elpa}")
  (dolist (d (directory-files "{elpa}" t "^[a-z]")) (add-to-list 'load-path d)))
(unless (require 'eglot nil t) (princ "NO-EGLOT\n") (kill-emacs 3))
(with-eval-after-load 'eglot
  (add-to-list 'eglot-server-programs
               '((python-mode python-ts-mode) . ({server}))))
(find-file "{file}")
(python-mode)
(apply #'eglot (eglot--guess-contact))
(let ((deadline (+ (float-time) 30)))
  (while (and (null (flymake-diagnostics)) (< (float-time) deadline))
    (accept-process-output nil 0.2)))
(let ((diags (flymake-diagnostics)))
  (dolist (d diags) (princ (format "DIAG %s\n" (flymake-diagnostic-text d))))
  (kill-emacs (if diags 0 1)))
"""


def _server_command() -> list[str]:
    script = Path(sys.executable).parent / "llmarch-lsp"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "llmarch_lsp"]


def test_eglot_shows_the_diagnostic(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "demo"\nversion = "0"\n')
    target = tmp_path / "model.py"
    target.write_text("import torch.nn as nn\n\nlayer = nn.TransformerEncoderLayer(d_model=512, nhead=8)\n")
    server = " ".join(f'"{part}"' for part in _server_command())
    script = tmp_path / "smoke.el"
    script.write_text(SMOKE.replace("{elpa}", str(ELPA)).replace("{server}", server).replace("{file}", str(target)))
    try:
        result = subprocess.run(
            [EMACS, "-Q", "--batch", "-l", str(script)],
            cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=90,
        )  # fmt: skip
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"emacs timed out\n{error.stdout}\n{error.stderr}")
    if result.returncode == 3:
        pytest.skip("eglot is not installed for this emacs")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "llmarch [LLM203]" in output, output
