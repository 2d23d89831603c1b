#!/usr/bin/env bash
# Prints the performance figures: the sandbox and validation micro-benchmarks, then the
# end-to-end table (HTTP through the full pipeline and stdio, each beside a bare server
# doing the same protocol work, measured in the same run). Release builds; loopback
# only; a few minutes. Installs what it needs (the plugins' target, oha) if absent.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2
# oha, the HTTP load generator (a well-known one, run as its own process).
if ! command -v oha >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/oha" ]; then
  cargo install oha --locked
fi

# Redis, for the replica rows (budgets shared by two replicas).
if [ ! -x /usr/bin/redis-server ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
    || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server; }
fi

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(uname -sr)"
cargo bench --bench micro
cargo bench --bench report
