#!/usr/bin/env bash
# Install code-server 4.100.3 (VS Code 1.100; the last release that runs on Node 20) from the npm
# registry into DEST/code-server, for run_e2e.sh. Debian 12; needs root for apt. ~75 s, ~300 MB.
#   usage: e2e/install_code_server.sh [DEST]     (default ~/.cache/llmarch-e2e; keep it out of the repo)
# A plain `npm install -g code-server` fails offline-ish machines twice: the kerberos module needs
# libkrb5-dev, and @vscode/ripgrep's postinstall downloads rg from GitHub. So: install without
# scripts, use Debian's ripgrep, rebuild the native modules, then do the rest of its postinstall.
set -euo pipefail
V=${V:-4.100.3}
DEST=${1:-$HOME/.cache/llmarch-e2e}
if [ -f "$DEST/code-server/out/node/entry.js" ]; then
  echo "already installed: $DEST/code-server"; exit 0
fi
apt-get install -y -q --no-install-recommends build-essential pkg-config python3 libkrb5-dev ripgrep chromium >/dev/null
mkdir -p "$DEST" && cd "$DEST"
npm pack "code-server@$V" >/dev/null
tar xzf "code-server-$V.tgz" && rm "code-server-$V.tgz" && mv package code-server
cd code-server
export npm_config_yes=true                    # node-pty's install calls `npx node-gyp`
npm install --omit=dev --no-audit --no-fund --ignore-scripts >/dev/null
npm rebuild argon2 >/dev/null
cd lib/vscode
npm install --omit=dev --no-audit --no-fund --ignore-scripts >/dev/null
mkdir -p node_modules/@vscode/ripgrep/bin
ln -sf "$(command -v rg)" node_modules/@vscode/ripgrep/bin/rg
npm rebuild >/dev/null                        # node-pty, kerberos, spdlog, @parcel/watcher, ...
ln -sfn node_modules node_modules.asar
(cd bin/remote-cli && ln -sf code-linux.sh code-server)
(cd bin/helpers && ln -sf browser-linux.sh browser.sh)
(cd extensions && npm install --omit=dev --no-audit --no-fund >/dev/null)
cd ../..
node out/node/entry.js --version
echo "installed: $DEST/code-server"
