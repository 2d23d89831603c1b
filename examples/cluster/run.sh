#!/usr/bin/env bash
# Runs the cluster example on one machine: Postgres (port 55432) and Redis (56379) with
# their data under target/cluster, two replicas (replica-a.toml on 8081, replica-b.toml
# on 8082) and HAProxy in front of them at http://127.0.0.1:8080/mcp. Needs Debian's
# postgresql, redis-server and haproxy (installed if absent). Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/../.."
state=target/cluster
mkdir -p "$state/notes"

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v redis-server >/dev/null \
  || ! command -v haproxy >/dev/null; then
  sudo=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
  $sudo apt-get install -y --no-install-recommends postgresql redis-server haproxy
fi
pg=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
# Postgres refuses to run as root: as root, it runs as the package's postgres user.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

rustup target add wasm32-wasip2
cargo build --release --target wasm32-wasip2 -p weather -p notes
cargo build --release -p mcp-wasm-host

# Every replica seals and opens the shared signing key with the same KEK.
if [ -z "${MCP_HOST_KEK:-}" ]; then
  [ -s "$state/kek" ] || (umask 077 && target/release/mcp-wasm-host keygen > "$state/kek")
  MCP_HOST_KEK=$(cat "$state/kek")
  export MCP_HOST_KEK
fi

pids=()
stop() {
  kill "${pids[@]}" 2>/dev/null || true
  as_pg "$pg/pg_ctl" -D "$state/pg" -m fast stop >/dev/null 2>&1 || true
}
trap stop EXIT INT TERM

if [ ! -s "$state/pg/PG_VERSION" ]; then
  mkdir -p "$state/pg"
  [ "$(id -u)" = 0 ] && chown postgres: "$state" "$state/pg"
  echo mcp-example-password > "$state/pg.pw"
  [ "$(id -u)" = 0 ] && chown postgres: "$state/pg.pw"
  as_pg "$pg/initdb" -D "$state/pg" -U mcp --auth=scram-sha-256 --pwfile="$state/pg.pw" >/dev/null
  rm "$state/pg.pw"
  fresh=1
fi
as_pg "$pg/pg_ctl" -D "$state/pg" -l "$state/pg.log" -w \
  -o "-c listen_addresses=127.0.0.1 -c port=55432 -c unix_socket_directories=''" start
if [ -n "${fresh:-}" ]; then
  PGPASSWORD=mcp-example-password "$pg/createdb" -h 127.0.0.1 -p 55432 -U mcp mcp_auth
fi

redis-server --port 56379 --bind 127.0.0.1 --dir "$state" --appendonly yes >"$state/redis.log" &
pids+=($!)
for replica in a b; do
  target/release/mcp-wasm-host serve --config "examples/cluster/replica-$replica.toml" \
    2>"$state/replica-$replica.log" &
  pids+=($!)
done
haproxy -f examples/cluster/haproxy.cfg &
pids+=($!)
echo "serving at http://127.0.0.1:8080/mcp (logs in $state); Ctrl-C stops" >&2
wait -n
