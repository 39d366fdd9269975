#!/usr/bin/env bash
# Alert intake benchmark (issue 3): POST /webhooks/alertmanager over loopback against the release
# binary, on SQLite and, when SPOTTER_BENCH_PG is set to a server URL
# (postgres://postgres@127.0.0.1:5432/postgres), on a fresh PostgreSQL database.
#
# For each backend:
#   1. duplicate path: the same firing notification over and over (wrk, bench/alert-duplicate.lua);
#   2. fixed rate: 1,000 req/s on the duplicate path for DURATION, open loop (bench/fixed-rate.py,
#      a Python asyncio generator: requests are sent on a schedule, and latency is measured from
#      the scheduled send time, so a slow answer cannot hide the requests queued behind it, like
#      wrk2). wrk2 is not packaged for Debian.
#   3. new-alert path, joining: a new fingerprint per request, 8 alert names, so new alerts join
#      8 open incidents (wrk, bench/alert-new.lua, GROUPS=8);
#   4. new-alert path, declaring: a new fingerprint and alert name per request, so each request
#      declares and pages a new incident (GROUPS=0);
# After the new-alert runs it counts the stored alerts: every 2xx must be a stored row.
#
# Needs: cargo build --release (or SPOTTER_BIN=path); wrk, curl, python3, sqlite3, psql.
# Env: SPOTTER_BIN, SPOTTER_BENCH_PG, PORT (18080), DURATION (10s), CONNECTIONS (16),
#      THREADS (2), RATE (1000).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${SPOTTER_BIN:-$root/target/release/spotter}
port=${PORT:-18080}
duration=${DURATION:-10s}
connections=${CONNECTIONS:-16}
threads=${THREADS:-2}
rate=${RATE:-1000}
url="http://127.0.0.1:$port"
for tool in wrk curl python3; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install -y wrk curl python3)" >&2; exit 1; }
done
[ -x "$bin" ] || { echo "no $bin: run cargo build --release first (or set SPOTTER_BIN)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The built-in configuration with the alertmanager source's rate limit raised: the default
# (50/s, burst 100) would answer most of the load 429.
"$bin" config default >"$work/bench.toml"
grep -q '^rate = "50/s"$' "$work/bench.toml" || { echo "default config changed: no rate = \"50/s\"" >&2; exit 1; }
sed -i -e 's|^rate = "50/s"$|rate = "1000000/s"|' -e 's|^burst = 100$|burst = 1000000|' "$work/bench.toml"
"$bin" config check "$work/bench.toml"

# The duplicate path's body, taken from the wrk script so both send the same notification.
sed -n 's/^wrk.body = \[\[\(.*\)\]\]$/\1/p' "$root/bench/alert-duplicate.lua" >"$work/duplicate.json"

wrk_run() { # $1 = script, then env assignments
  local script=$1; shift
  env "$@" wrk -t"$threads" -c"$connections" -d"$duration" --latency -s "$root/bench/$script" "$url" >"$work/wrk.out"
  local line; line=$(grep -E '^requests=' "$work/wrk.out")
  local non2xx; non2xx=$(grep -E 'Non-2xx or 3xx responses' "$work/wrk.out" || true)
  echo "$line${non2xx:+  ($non2xx)}"
}

count_alerts() { # $1 = database url or empty (SQLite), $2 = fingerprint prefix
  if [ -n "$1" ]; then
    psql "$1" -tAc "SELECT count(*) FROM alerts WHERE fingerprint LIKE '$2-%'"
  else
    sqlite3 "$work/run/data/spotter.db" "SELECT count(*) FROM alerts WHERE fingerprint LIKE '$2-%'"
  fi
}

run() { # $1 = label, $2 = database url or empty for SQLite
  rm -rf "$work/run"; mkdir -p "$work/run"; cd "$work/run"
  export TOKEN; TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  env SPOTTER_LISTEN="127.0.0.1:$port" ${2:+SPOTTER_DATABASE_URL=$2} SPOTTER_ALERTMANAGER_TOKEN="$TOKEN" \
    RUST_LOG=warn "$bin" --config "$work/bench.toml" serve 2>"$work/serve.log" &
  local pid=$!
  until curl -sf "$url/readyz" >/dev/null; do sleep 0.01; done
  # The first notification declares INC-1; every later one is a duplicate.
  curl -sf -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    --data-binary @"$work/duplicate.json" "$url/webhooks/alertmanager" >/dev/null
  echo "[$1] duplicate path:              $(wrk_run alert-duplicate.lua)"
  # Before the new-incident run, whose pages the dispatcher is still delivering afterwards.
  echo "[$1] duplicate path at a fixed $rate req/s: $(python3 "$root/bench/fixed-rate.py" "$url/webhooks/alertmanager" --method POST \
    --body-file "$work/duplicate.json" --header 'Content-Type: application/json' --header "Authorization: Bearer $TOKEN" \
    --rate "$rate" --duration "${duration%s}" --connections 64)"
  local run_id="j$$" ok
  echo "[$1] new alert, joins 8 incidents: $(wrk_run alert-new.lua RUN=$run_id GROUPS=8)"
  ok=$(grep -oE '^requests=[0-9]+' "$work/wrk.out" | cut -d= -f2)
  echo "[$1]   stored: $(count_alerts "$2" "$run_id") alerts (wrk counted $ok requests, non-2xx: $(grep -oE 'non2xx=[0-9]+' "$work/wrk.out" | cut -d= -f2))"
  run_id="d$$"
  echo "[$1] new alert, new incident each: $(wrk_run alert-new.lua RUN=$run_id GROUPS=0)"
  ok=$(grep -oE '^requests=[0-9]+' "$work/wrk.out" | cut -d= -f2)
  echo "[$1]   stored: $(count_alerts "$2" "$run_id") alerts (wrk counted $ok requests, non-2xx: $(grep -oE 'non2xx=[0-9]+' "$work/wrk.out" | cut -d= -f2))"
  kill -TERM $pid; wait $pid || true
  if grep -qE 'ERROR|panicked' "$work/serve.log"; then
    echo "[$1] errors in the server log:"; grep -E 'ERROR|panicked' "$work/serve.log" | head -5
  fi
  cd "$root"
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r); wrk -t$threads -c$connections -d$duration"
run sqlite ""
if [ -n "${SPOTTER_BENCH_PG:-}" ]; then
  db="spotter_bench_$$"
  psql "$SPOTTER_BENCH_PG" -qc "CREATE DATABASE $db"
  run postgres "${SPOTTER_BENCH_PG%/*}/$db"
  psql "$SPOTTER_BENCH_PG" -qc "DROP DATABASE $db WITH (FORCE)"
fi
