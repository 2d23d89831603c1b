#!/usr/bin/env bash
# Builds the plugin into a component: bash build.sh [OUT.wasm] (default units.wasm).
# ComponentizeJS (pinned by package-lock.json) is installed on first use.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(realpath -m "${1:-$here/units.wasm}")"
cd "$here"
if [ ! -d node_modules/@bytecodealliance/componentize-js ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
node build.mjs "$out"
