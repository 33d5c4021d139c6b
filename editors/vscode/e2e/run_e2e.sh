#!/usr/bin/env bash
# Real end-to-end check of the extension in VS Code (code-server 4.100.3 = VS Code 1.100) driven by
# headless Chromium through playwright-core. Not part of the pytest suite (heavy: ~300 MB, ~30 s).
#
#   usage: editors/vscode/e2e/run_e2e.sh [CODE_SERVER_DIR] [VSIX]
#
# CODE_SERVER_DIR  a code-server install (default $CODE_SERVER_DIR or ~/.cache/llmarch-e2e/code-server);
#                  make one with e2e/install_code_server.sh. Keep it outside the repository.
# VSIX             the packaged extension (default: build it with `npx @vscode/vsce package`).
# Env: LLMARCH_LSP  the server executable (default: `llmarch-lsp` on PATH)
#      SERVER_VIA   how the extension finds it: `path` (default; user setting llmarch.path),
#                   `interpreter` (user setting llmarch.interpreter = the python next to it),
#                   `venv` (a workspace .venv/bin/llmarch-lsp, found because the workspace is trusted),
#                   or `untrusted`: workspace trust on, the folder NOT trusted, and only workspace
#                   servers on offer (.venv, a workspace llmarch.path, a user llmarch.interpreter
#                   of ${workspaceFolder}/.venv/bin/python); passes when none starts.
#      CHROMIUM     browser binary (default /usr/bin/chromium; Debian: apt-get install chromium)
#      ARTIFACTS    where screenshots and logs go (default editors/vscode/e2e/artifacts)
#      PORT         default 8080
# Needs: node 20, `npm install` done in editors/vscode (for playwright-core), curl.
# Exit status 0 when the diagnostic showed, the quick fix applied and the fixed file was saved.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
EXT_DIR=$(cd "$HERE/.." && pwd)
CSDIR=${1:-${CODE_SERVER_DIR:-$HOME/.cache/llmarch-e2e/code-server}}
VSIX=${2:-}
PORT=${PORT:-8080}
ARTIFACTS=${ARTIFACTS:-$HERE/artifacts}
mkdir -p "$ARTIFACTS" && rm -f "$ARTIFACTS"/*.png "$ARTIFACTS"/*.log

[ -f "$CSDIR/out/node/entry.js" ] || { echo "no code-server in $CSDIR (run e2e/install_code_server.sh)" >&2; exit 2; }
[ -d "$EXT_DIR/node_modules/playwright-core" ] || { echo "run npm install in $EXT_DIR first" >&2; exit 2; }
SERVER=${LLMARCH_LSP:-$(command -v llmarch-lsp || true)}
[ -x "$SERVER" ] || { echo "llmarch-lsp not found; set LLMARCH_LSP" >&2; exit 2; }
SERVER=$(cd "$(dirname "$SERVER")" && pwd)/$(basename "$SERVER")

if [ -z "$VSIX" ]; then
  (cd "$EXT_DIR" && npx tsc -p . && npx @vscode/vsce package --out "$ARTIFACTS/llmarch.vsix" >/dev/null) || exit 2
  VSIX=$ARTIFACTS/llmarch.vsix
fi

T=$(mktemp -d)                                   # fresh user data, extensions and workspace per run
CS="node $CSDIR/out/node/entry.js --user-data-dir $T/user --extensions-dir $T/ext"
mkdir -p "$T/user/User" "$T/ws"
# Startup settings go in the *user* settings, or a walkthrough tab steals the focus.
cat > "$T/user/User/settings.json" <<'J'
{"workbench.startupEditor": "none", "workbench.welcomePage.walkthroughs.openOnInstall": false,
 "workbench.tips.enabled": false, "security.workspace.trust.enabled": false,
 "telemetry.telemetryLevel": "off", "extensions.ignoreRecommendations": true, "update.mode": "none",
 "llmarch.trace.server": "messages"}
J
SERVER_VIA=${SERVER_VIA:-path}
case $SERVER_VIA in
  # code-server gives the extension host the login shell's environment, not ours: no PATH tricks.
  path|interpreter) python3 - "$T/user/User/settings.json" "$SERVER" "$SERVER_VIA" <<'PY'
import json, os, sys
path, server, via = sys.argv[1:]
settings = json.load(open(path))
if via == "path":
    settings["llmarch.path"] = [server]
else:  # the python next to the llmarch-lsp script, running `-m llmarch_lsp`
    settings["llmarch.interpreter"] = [os.path.join(os.path.dirname(server), "python")]
json.dump(settings, open(path, "w"), indent=1)
PY
  ;;
  venv) mkdir -p "$T/ws/.venv/bin" && ln -s "$SERVER" "$T/ws/.venv/bin/llmarch-lsp" ;;
  untrusted)
    sed -i 's/"security.workspace.trust.enabled": false/"security.workspace.trust.enabled": true/' "$T/user/User/settings.json"
    mkdir -p "$T/ws/.venv/bin" "$T/ws/.vscode" && cp "$SERVER" "$T/ws/.venv/bin/llmarch-lsp"
    ln -s "$(dirname "$SERVER")/python" "$T/ws/.venv/bin/python"
    printf '{"llmarch.path": ["%s"]}\n' "$T/ws/.venv/bin/llmarch-lsp" > "$T/ws/.vscode/settings.json"
    # A user setting that points into the workspace must be refused too while it is untrusted.
    sed -i 's|"update.mode": "none",|"update.mode": "none", "llmarch.interpreter": ["${workspaceFolder}/.venv/bin/python"],|' \
      "$T/user/User/settings.json"
    TRUST_FLAG= ;;
  *) echo "SERVER_VIA must be path, interpreter, venv or untrusted" >&2; exit 2 ;;
esac
cat > "$T/ws/pyproject.toml" <<'T'
[project]
name = "demo"
version = "0.1.0"
T
cat > "$T/ws/model.py" <<'P'
import torch.nn as nn

layer = nn.TransformerEncoderLayer(d_model=512, nhead=8)
encoder = nn.TransformerEncoder(layer, num_layers=12)
P

$CS --install-extension "$VSIX" > "$ARTIFACTS/install.log" 2>&1 || { cat "$ARTIFACTS/install.log"; exit 2; }
ls "$T/ext" | grep -q '^llmarch\.llmarch-' || { echo "extension not installed" >&2; exit 2; }

# setsid: code-server, its extension host and the language server share one process group,
# which the trap kills as one.
setsid $CS --bind-addr 127.0.0.1:$PORT --auth none --disable-telemetry \
  --disable-update-check ${TRUST_FLAG---disable-workspace-trust} --disable-getting-started-override "$T/ws" \
  > "$ARTIFACTS/code-server.log" 2>&1 &
CSPID=$!
trap 'kill -- -$CSPID 2>/dev/null; rm -rf "$T"' EXIT
for _ in $(seq 60); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.5; done

[ "${SERVER_VIA:-path}" = untrusted ] && export EXPECT=untrusted
SHOT_DIR=$ARTIFACTS NODE_PATH="$EXT_DIR/node_modules" timeout 240 \
  node "$HERE/e2e.js" "http://127.0.0.1:$PORT/?folder=$T/ws" "$T/ws/model.py"
status=$?
# The extension's own log (which server it started, LSP trace) for the record.
find "$T/user/logs" -name '*llmarch*' -exec cp {} "$ARTIFACTS/" \; 2>/dev/null
if [ "${SERVER_VIA:-path}" = untrusted ] && [ $status = 0 ]; then
  # The extension must have said why it did not start a server, and started none.
  grep -h 'not trusted' "$ARTIFACTS"/*llmarch*.log || { echo "FAIL: no refusal in the log" >&2; status=1; }
  if grep -q 'server running' "$ARTIFACTS"/*llmarch*.log; then echo "FAIL: a server started" >&2; status=1; fi
fi
exit $status
