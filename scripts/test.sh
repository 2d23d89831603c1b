#!/usr/bin/env bash
# Runs every test, from a fresh machine: installs what the tests need, checks formatting
# and lints, then runs the unit tests, the end-to-end tests (real host process, real
# MCP clients, real upstream) and the benchmarks once each as smoke tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# The plugins' target, and the tools the checks use.
rustup target add wasm32-wasip2
rustup component add rustfmt clippy

# The official Python MCP SDK, pinned, for the test that uses a client written by others.
if [ ! -x target/test-venv/bin/python ]; then
  python3 -m venv target/test-venv
fi
target/test-venv/bin/python -m pip install --quiet --disable-pip-version-check \
  -r tests/python/requirements.txt

cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
# The benchmarks once each, as smoke tests (a few calls; no figures worth reading),
# then the unit and end-to-end tests.
cargo test --benches
cargo test
