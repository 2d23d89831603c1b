#!/usr/bin/env bash
# Builds the plugin into a component: bash build.sh [OUT.wasm] (default units.wasm).
# ComponentizeJS (pinned by package-lock.json) is installed when needed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(realpath -m "${1:-$here/units.wasm}")"
cd "$here"
# Installed again whenever package-lock.json changes (a stamp holds its digest).
wanted="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ "$(cat node_modules/.lock.sha256 2>/dev/null)" != "$wanted" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$wanted" > node_modules/.lock.sha256
fi
node build.mjs "$out"
