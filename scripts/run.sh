#!/usr/bin/env bash
# Builds the weather plugin and the host, then serves the plugin over MCP at
# http://127.0.0.1:8080/mcp with examples/host.toml. Put your OpenWeatherMap key in
# MCP_SECRET_WEATHER_API_KEY first. Extra arguments go to `serve`.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2
cargo build --release --target wasm32-wasip2 -p weather
cargo build --release -p mcp-wasm-host
if [ -z "${MCP_SECRET_WEATHER_API_KEY:-}" ]; then
  echo "note: MCP_SECRET_WEATHER_API_KEY is not set; get_weather will report the missing key" >&2
fi
exec target/release/mcp-wasm-host serve --config examples/host.toml "$@"
