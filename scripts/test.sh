#!/usr/bin/env bash
# Runs every test, from a fresh machine: installs what the tests need, checks formatting
# and lints, then runs the unit tests, the end-to-end tests (real host process, real
# MCP clients, real upstream) and the benchmarks once each as smoke tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each phase's wall time, so a slow run says where its time went.
started=$SECONDS
phase() { echo "== [$((SECONDS - started)) s] $*"; }
trap 'phase "done (exit $?)"' EXIT

# Debian packages, installed only when absent; the package lists are refreshed once if
# the first attempt cannot find them (a fresh machine may have none).
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends "$@" || { apt-get update && apt-get install -y --no-install-recommends "$@"; }
}

phase "toolchain"
# The plugins' target (wasip1 for cargo-component), and the tools the checks use.
rustup target add wasm32-wasip2 wasm32-wasip1
rustup component add rustfmt clippy

phase "Python MCP SDK"
# The official Python MCP SDK, pinned, for the test that uses a client written by others.
if [ ! -x target/test-venv/bin/python ]; then
  python3 -m venv target/test-venv
fi
target/test-venv/bin/python -m pip install --quiet --disable-pip-version-check \
  -r tests/python/requirements.txt

phase "TypeScript MCP SDK, oidc-provider"
# The official TypeScript MCP client SDK and a certified OpenID provider (oidc-provider),
# pinned by their lockfile, for the same reason.
if ! command -v node >/dev/null 2>&1; then
  apt_install nodejs npm
fi
(cd tests/typescript && npm ci --no-audit --no-fund --loglevel=error)

phase "chromium"
# A real browser for the login page: Debian's Chromium and its WebDriver.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  apt_install chromium chromium-driver
fi

phase "Postgres, Redis, HAProxy"
# Real engines for the replica tests, which start their own servers on loopback with
# data in temp folders: Debian's PostgreSQL, Redis and HAProxy (the cluster example's
# load balancer).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || [ ! -x /usr/bin/redis-server ] \
  || [ ! -x /usr/sbin/haproxy ]; then
  apt_install postgresql redis-server haproxy
fi

phase "fmt, clippy"
cargo fmt --all -- --check
# The host and the guest SDK are linted and tested one at a time: built together, cargo
# unifies their dependencies' features and compiles wasmtime once more for nothing.
cargo clippy --all-targets -- -D warnings
cargo clippy -p mcp-wasm-sdk --all-targets -- -D warnings

# The benchmarks once each, as smoke tests (a few calls; no figures worth reading),
# then the unit and end-to-end tests.
phase "benchmarks as smoke tests"
cargo test --benches
phase "unit and end-to-end tests"
cargo test
cargo test -p mcp-wasm-sdk

phase "cargo component build"
# The reference plugin also builds with cargo-component (installed once if absent),
# and the host accepts what it produces.
if ! cargo component --version >/dev/null 2>&1; then
  # A debug build: it compiles in a fraction of the time and only ever wraps one plugin.
  cargo install cargo-component --locked --debug
fi
(cd plugins/weather && cargo component build --release)
# The host binary `cargo test` built: `cargo run` would build it once more, without the
# test-only dependencies' features.
inspected=$(target/debug/mcp-wasm-host plugin inspect target/wasm32-wasip1/release/weather.wasm)
grep -q '^  get_weather$' <<<"$inspected"
echo "cargo component build: weather.wasm loads and offers get_weather"

