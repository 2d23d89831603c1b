#!/usr/bin/env bash
# Builds the weather plugin and the host, then serves the plugin over MCP at
# http://127.0.0.1:8080/mcp with examples/host.toml. For real weather put an
# OpenWeatherMap key in MCP_SECRET_WEATHER_API_KEY first; without one the host serves
# and get_weather answers that its credential has no value. Extra arguments go to
# `serve` (e.g. --stdio).
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2
cargo build --release --target wasm32-wasip2 -p weather
cargo build --release -p mcp-wasm-host
exec target/release/mcp-wasm-host serve --config examples/host.toml "$@"
