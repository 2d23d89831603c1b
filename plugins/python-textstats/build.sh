#!/usr/bin/env bash
# Builds the plugin into a component: bash build.sh [OUT.wasm] (default textstats.wasm).
# componentize-py (pinned in requirements.txt) is installed into .venv when needed; it
# reads the host's WIT from ../../wit and bundles a Python interpreter with app.py.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(realpath -m "${1:-$here/textstats.wasm}")"
# Installed again whenever requirements.txt changes (a stamp holds its digest).
wanted="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [ "$(cat "$here/.venv/.requirements.sha256" 2>/dev/null)" != "$wanted" ]; then
  python3 -m venv "$here/.venv"
  "$here/.venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r "$here/requirements.txt"
  echo "$wanted" > "$here/.venv/.requirements.sha256"
fi
cd "$here"
.venv/bin/componentize-py --wit-path ../../wit --world plugin componentize app --output "$out"
