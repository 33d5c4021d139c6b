#!/usr/bin/env bash
# Real end-to-end check of the extension in VS Code (code-server 4.100.3 = VS Code 1.100) driven by
# headless Chromium through playwright-core. tests/editors/test_vscode_e2e.py runs it; by hand:
#
#   usage: editors/vscode/e2e/run_e2e.sh [CODE_SERVER_DIR] [VSIX]
#
# CODE_SERVER_DIR  a code-server install (default $CODE_SERVER_DIR or ~/.cache/llmarch-e2e/code-server);
#                  make one with e2e/install_code_server.sh. Keep it outside the repository.
# VSIX             the packaged extension (default: build llmarch-lsp-<version>.vsix with vsce).
# Env: LLMARCH_LSP  the server executable (default: `llmarch-lsp` on PATH)
#      CASE         the finding to fix: LLM101 (default; unscaled attention in a nanoGPT-style
#                   module) or LLM203 (nn.TransformerEncoderLayer without norm_first)
#      FIX_TITLE    title of the quick fix to apply, without the `llmarch (CODE): ` prefix
#                   (default: the rule's primary fix, from `llmarch-lsp --list-rules --format json`)
#      SERVER_VIA   how the extension finds the server: `path` (default; user setting llmarch.path),
#                   `interpreter` (user setting llmarch.interpreter = the python next to it),
#                   `venv` (a workspace .venv/bin/llmarch-lsp, found because the workspace is trusted),
#                   or `untrusted`: workspace trust on, the folder NOT trusted, and only workspace
#                   servers on offer (.venv, a workspace llmarch.path, a user llmarch.interpreter
#                   of ${workspaceFolder}/.venv/bin/python); passes when none starts.
#      FULL         1: also the commands (Explain Rule, Show Output, Restart Server) and live
#                   settings (default 1 for SERVER_VIA=path, else 0)
#      CHROMIUM     browser binary (default /usr/bin/chromium; Debian: apt-get install chromium)
#      ARTIFACTS    where screenshots and logs go (default editors/vscode/e2e/artifacts)
#      PORT         default: a free one
# Needs: node 20, `npm ci` done in editors/vscode (for playwright-core and vsce), python3.
# Exit status 0 when the diagnostic showed, the quick fix applied and the fixed file was saved.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
EXT_DIR=$(cd "$HERE/.." && pwd)
CSDIR=${1:-${CODE_SERVER_DIR:-$HOME/.cache/llmarch-e2e/code-server}}
VSIX=${2:-}
PORT=${PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
ARTIFACTS=${ARTIFACTS:-$HERE/artifacts}
CASE=${CASE:-LLM101}
SERVER_VIA=${SERVER_VIA:-path}
FULL=${FULL:-$([ "$SERVER_VIA" = path ] && echo 1 || echo 0)}
mkdir -p "$ARTIFACTS" && rm -f "$ARTIFACTS"/*.png "$ARTIFACTS"/*.log
ARTIFACTS=$(cd "$ARTIFACTS" && pwd)

[ -f "$CSDIR/out/node/entry.js" ] || { echo "no code-server in $CSDIR (run e2e/install_code_server.sh)" >&2; exit 2; }
[ -d "$EXT_DIR/node_modules/playwright-core" ] || { echo "run npm ci in $EXT_DIR first" >&2; exit 2; }
SERVER=${LLMARCH_LSP:-$(command -v llmarch-lsp || true)}
[ -x "$SERVER" ] || { echo "llmarch-lsp not found; set LLMARCH_LSP" >&2; exit 2; }
SERVER=$(cd "$(dirname "$SERVER")" && pwd)/$(basename "$SERVER")

if [ -z "$VSIX" ]; then
  VERSION=$(node -p "require('$EXT_DIR/package.json').version")
  (cd "$EXT_DIR" && npm run --silent compile && npx --no-install vsce package --out "$ARTIFACTS/" >/dev/null) || exit 2
  VSIX=$ARTIFACTS/llmarch-lsp-$VERSION.vsix
  [ -f "$VSIX" ] || { echo "vsce did not write $VSIX" >&2; exit 2; }
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
# llmarch.path and llmarch.interpreter are machine settings: code-server is a remote window, which
# takes them from the remote ("Machine") settings, not the user's (as VS Code Remote-SSH does).
mkdir -p "$T/user/Machine" && echo '{}' > "$T/user/Machine/settings.json"
machine_setting() {  # KEY JSON-VALUE
  python3 - "$T/user/Machine/settings.json" "$1" "$2" <<'PY'
import json, sys
path, key, value = sys.argv[1:]
settings = json.load(open(path))
settings[key] = json.loads(value)
json.dump(settings, open(path, "w"), indent=1)
PY
}
case $SERVER_VIA in
  # code-server gives the extension host the login shell's environment, not ours: no PATH tricks.
  path) machine_setting llmarch.path "[\"$SERVER\"]" ;;
  # the python next to the llmarch-lsp script, running `-m llmarch_lsp`
  interpreter) machine_setting llmarch.interpreter "[\"$(dirname "$SERVER")/python\"]" ;;
  venv) mkdir -p "$T/ws/.venv/bin" && ln -s "$SERVER" "$T/ws/.venv/bin/llmarch-lsp" ;;
  untrusted)
    sed -i 's/"security.workspace.trust.enabled": false/"security.workspace.trust.enabled": true/' "$T/user/User/settings.json"
    mkdir -p "$T/ws/.venv/bin" "$T/ws/.vscode" && cp "$SERVER" "$T/ws/.venv/bin/llmarch-lsp"
    ln -s "$(dirname "$SERVER")/python" "$T/ws/.venv/bin/python"
    printf '{"llmarch.path": ["%s"]}\n' "$T/ws/.venv/bin/llmarch-lsp" > "$T/ws/.vscode/settings.json"
    # A machine setting that points into the workspace must be refused too while it is untrusted.
    machine_setting llmarch.interpreter '["${workspaceFolder}/.venv/bin/python"]'
    TRUST_FLAG= ;;
  *) echo "SERVER_VIA must be path, interpreter, venv or untrusted" >&2; exit 2 ;;
esac
# Only the rule under test, so that other rules' findings (new ones come along) leave the
# squiggle checks alone.
cat > "$T/ws/pyproject.toml" <<T
[project]
name = "demo"
version = "0.1.0"

[tool.llmarch]
select = ["$CASE"]
T
case $CASE in
  LLM101)
    cat > "$T/ws/model.py" <<'P'
import torch
import torch.nn as nn
import torch.nn.functional as F


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)

    def forward(self, x, mask):
        B, T, C = x.size()  # batch, sequence length, embedding dim
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        att = q @ k.transpose(-2, -1)  # (B, nh, T, T)
        att = att.masked_fill(mask[:, :, :T, :T] == 0, float("-inf"))
        att = F.softmax(att, dim=-1)
        y = att @ v  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)
P
    # The fix scales by 1/sqrt(d_head), read from the key: k.size(-1).
    export EXPECT_POSITION='Ln 19, Col 15' EXPECT_TEXT='k.size(-1)' ;;
  LLM203)
    cat > "$T/ws/model.py" <<'P'
import torch.nn as nn

layer = nn.TransformerEncoderLayer(d_model=512, nhead=8)
encoder = nn.TransformerEncoder(layer, num_layers=12)
P
    export EXPECT_POSITION='Ln 3, Col 9' EXPECT_TEXT='norm_first=True' ;;
  *) echo "CASE must be LLM101 or LLM203" >&2; exit 2 ;;
esac
export EXPECT_CODE=$CASE FULL
if [ -z "${FIX_TITLE:-}" ]; then
  FIX_TITLE=$("$SERVER" --list-rules --format json | python3 -c \
    'import json, sys; print(next(r["fix"]["title"] for r in json.load(sys.stdin) if r["code"] == sys.argv[1]))' "$CASE") \
    || { echo "cannot read the fix title of $CASE from $SERVER" >&2; exit 2; }
fi
export FIX_TITLE

$CS --install-extension "$VSIX" > "$ARTIFACTS/install.log" 2>&1 || { cat "$ARTIFACTS/install.log"; exit 2; }
ls "$T/ext" | grep -q '^llmarch\.llmarch-lsp-' || { echo "extension llmarch.llmarch-lsp not installed: $(ls "$T/ext")" >&2; exit 2; }

# setsid: code-server, its extension host and the language server share one process group,
# which the trap kills as one.
setsid $CS --bind-addr 127.0.0.1:$PORT --auth none --disable-telemetry \
  --disable-update-check ${TRUST_FLAG---disable-workspace-trust} --disable-getting-started-override "$T/ws" \
  > "$ARTIFACTS/code-server.log" 2>&1 &
CSPID=$!
trap 'kill -- -$CSPID 2>/dev/null; rm -rf "$T"' EXIT
healthy="require('http').get('http://127.0.0.1:$PORT/healthz', (r) => process.exit(r.statusCode === 200 ? 0 : 1)).on('error', () => process.exit(1))"
for _ in $(seq 120); do node -e "$healthy" && break; sleep 0.5; done

[ "$SERVER_VIA" = untrusted ] && export EXPECT=untrusted
SHOT_DIR=$ARTIFACTS NODE_PATH="$EXT_DIR/node_modules" timeout 300 \
  node "$HERE/e2e.js" "http://127.0.0.1:$PORT/?folder=$T/ws" "$T/ws/model.py"
status=$?
# The extension's own log (which server it started, LSP trace) for the record.
find "$T/user/logs" -name '*llmarch*' -exec cp {} "$ARTIFACTS/" \; 2>/dev/null
cp "$T/ws/model.py" "$ARTIFACTS/model.py.after" 2>/dev/null
if [ "$SERVER_VIA" = untrusted ] && [ $status = 0 ]; then
  # The extension must have said why it did not start a server, and started none.
  grep -h 'not trusted\|Restricted Mode' "$ARTIFACTS"/*llmarch*.log || { echo "FAIL: no refusal in the log" >&2; status=1; }
  if grep -q 'server running' "$ARTIFACTS"/*llmarch*.log; then echo "FAIL: a server started" >&2; status=1; fi
fi
if [ "$FULL" = 1 ] && [ $status = 0 ]; then
  # llmarch: Restart Server stopped the first server and started a second one.
  starts=$(cat "$ARTIFACTS"/*llmarch*.log | grep -c 'server running')
  [ "$starts" -ge 2 ] || { echo "FAIL: Restart Server did not start a new server ($starts start(s) logged)" >&2; status=1; }
fi
echo "artifacts: $ARTIFACTS"
exit $status
