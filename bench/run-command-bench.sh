#!/usr/bin/env bash
# Measures start-up to ready and the command API's read and write paths on SQLite and, when
# SPOTTER_BENCH_PG is set to a server URL (postgres://postgres@127.0.0.1:5432/postgres), PostgreSQL.
# Needs: cargo build --release; wrk (apt-get install wrk).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/target/release/spotter"
port=${PORT:-18080}
# The built-in configuration with the per-client API limit raised: wrk sends far more than the
# default 1000 req/s (burst 2000) from one address, and the bench measures the engine, not the
# limiter answering 429.
config=$(mktemp --suffix=.toml)
trap 'rm -f "$config"' EXIT
"$bin" config default >"$config"
grep -q '^api_per_second = 1000 ' "$config" && grep -q '^api_burst = 2000 ' "$config" \
  || { echo "default config changed: no api_per_second = 1000 / api_burst = 2000 in [limits]" >&2; exit 1; }
sed -i -e 's|^api_per_second = 1000 .*|api_per_second = 1000000|' \
       -e 's|^api_burst = 2000 .*|api_burst = 1000000|' "$config"
"$bin" config check "$config" >/dev/null
run() { # $1 = label, $2 = database url or empty
  local dir; dir=$(mktemp -d)
  cd "$dir"
  local start; start=$(date +%s%N)
  env SPOTTER_LISTEN=127.0.0.1:$port ${2:+SPOTTER_DATABASE_URL=$2} RUST_LOG=warn "$bin" --config "$config" serve 2>serve.log &
  local pid=$!
  until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; do sleep 0.005; done
  echo "[$1] start-up to /readyz 200: $(( ($(date +%s%N) - start) / 1000000 )) ms"
  export TOKEN; TOKEN=$(cat data/api-token)
  curl -sf -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d '{"text":"/incident declare level:3 title:\"bench\"","user":"sysadmin"}' \
    "http://127.0.0.1:$port/api/v1/commands" >/dev/null
  echo -n "[$1] read  (/incident show):   "
  TEXT='/incident show incident:INC-1' wrk -t2 -c16 -d10s -s "$root/bench/command.lua" "http://127.0.0.1:$port" | grep -E "^requests=|Non-2xx" | tr '\n' ' '; echo
  echo -n "[$1] write (/incident update): "
  TEXT='/incident update text:"bench update" incident:INC-1' wrk -t2 -c16 -d10s -s "$root/bench/command.lua" "http://127.0.0.1:$port" | grep -E "^requests=|Non-2xx" | tr '\n' ' '; echo
  local updates; updates=$(curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$port/api/v1/incidents/INC-1" | grep -o '"kind":"update"' | wc -l)
  echo "[$1] updates on the timeline afterwards: $updates"
  kill -TERM $pid; wait $pid || true
  cd "$root"; rm -rf "$dir"
}
run sqlite ""
if [ -n "${SPOTTER_BENCH_PG:-}" ]; then
  db="spotter_bench_$$"
  psql "$SPOTTER_BENCH_PG" -qc "CREATE DATABASE $db"
  run postgres "${SPOTTER_BENCH_PG%/*}/$db"
  psql "$SPOTTER_BENCH_PG" -qc "DROP DATABASE $db WITH (FORCE)"
fi
