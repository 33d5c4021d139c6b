#!/usr/bin/env bash
# What the VS Code end-to-end test needs, installed once and then reused: Debian's Chromium (and
# ripgrep), and code-server 4.100.3 (VS Code 1.100; the last release that runs on Node 20) from the
# npm registry in DEST/code-server. Debian 12, as root (or with sudo) for apt. The first time
# ~1-3 min (apt downloads Chromium; ~300 MB for code-server); when everything is there, < 1 s.
#   usage: e2e/install_code_server.sh [DEST]     (default ~/.cache/llmarch-e2e; keep it out of the repo)
# A plain `npm install -g code-server` fails here twice: the kerberos module needs libkrb5-dev, and
# @vscode/ripgrep's postinstall downloads rg from GitHub. So: install without scripts, use Debian's
# ripgrep, rebuild the native modules, then do the rest of its postinstall.
set -euo pipefail
V=${V:-4.100.3}
DEST=${1:-$HOME/.cache/llmarch-e2e}
CODE_SERVER=$DEST/code-server

missing() {  # the Debian packages among "$@" that are not installed
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'ok installed' || echo "$package"
  done
}
apt_install() {
  local sudo=
  [ "$(id -u)" = 0 ] || sudo=sudo
  echo "installing Debian packages: $*"
  # A fresh machine has no package lists yet; an old list may name versions that are gone.
  $sudo apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

needed=(chromium ripgrep)
[ -f "$CODE_SERVER/out/node/entry.js" ] || needed+=(build-essential pkg-config python3 libkrb5-dev)
mapfile -t absent < <(missing "${needed[@]}")
[ ${#absent[@]} -eq 0 ] || apt_install "${absent[@]}"

if [ -f "$CODE_SERVER/out/node/entry.js" ]; then
  echo "already installed: $CODE_SERVER"; exit 0
fi
# Build in a scratch folder beside the target and move it in place at the end: an interrupted
# install never looks like a finished one.
mkdir -p "$DEST"
WORK=$(mktemp -d "$DEST/.install.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
npm pack "code-server@$V" >/dev/null 2>&1
tar xzf "code-server-$V.tgz" && rm "code-server-$V.tgz" && mv package code-server
cd code-server
export npm_config_yes=true                    # node-pty's install calls `npx node-gyp`
npm install --omit=dev --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null
npm rebuild argon2 --loglevel=error >/dev/null
cd lib/vscode
npm install --omit=dev --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null
mkdir -p node_modules/@vscode/ripgrep/bin
ln -sf "$(command -v rg)" node_modules/@vscode/ripgrep/bin/rg
npm rebuild --loglevel=error >/dev/null       # node-pty, kerberos, spdlog, @parcel/watcher, ...
ln -sfn node_modules node_modules.asar
(cd bin/remote-cli && ln -sf code-linux.sh code-server)
(cd bin/helpers && ln -sf browser-linux.sh browser.sh)
(cd extensions && npm install --omit=dev --no-audit --no-fund --loglevel=error >/dev/null)
cd ../..
node out/node/entry.js --version
cd "$DEST"
rm -rf "$CODE_SERVER"
mv "$WORK/code-server" "$CODE_SERVER"
echo "installed: $CODE_SERVER"
