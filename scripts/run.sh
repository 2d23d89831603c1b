#!/usr/bin/env bash
# Builds the weather and notes plugins and the host, then serves them over MCP at
# http://127.0.0.1:8080/mcp with examples/host.toml. For real weather put an
# OpenWeatherMap key in MCP_SECRET_WEATHER_API_KEY first; without one the host serves
# and get_weather answers that its credential has no value. Extra arguments go to
# `serve` (e.g. --stdio).
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2
cargo build --release --target wasm32-wasip2 -p weather -p notes
cargo build --release -p mcp-wasm-host
# The folder the notes plugin is granted (examples/host.toml).
mkdir -p target/quickstart/notes

# The authorization server seals its signing key under a key-encryption key. Without
# one in MCP_HOST_KEK, make a quick-start KEK once (kept, mode 0600, under target/).
if [ -z "${MCP_HOST_KEK:-}" ]; then
  mkdir -p target/quickstart
  if [ ! -s target/quickstart/kek ]; then
    (umask 077 && target/release/mcp-wasm-host keygen > target/quickstart/kek)
  fi
  MCP_HOST_KEK=$(cat target/quickstart/kek)
  export MCP_HOST_KEK
  echo "note: using the quick-start KEK in target/quickstart/kek (set MCP_HOST_KEK for your own)" >&2
fi
exec target/release/mcp-wasm-host serve --config examples/host.toml "$@"
