#!/bin/bash
# redis-flush.sh: the guide's cache clear, FLUSHALL (the password, if any, via REDISCLI_AUTH).
set -euo pipefail
host="${WORKOUT_REDIS_HOST:-localhost}"
port="${WORKOUT_REDIS_PORT:-6379}"
if [ -n "${WORKOUT_REDIS_PASSWORD:-}" ]; then
    export REDISCLI_AUTH="$WORKOUT_REDIS_PASSWORD"
fi
echo "FLUSHALL on $host:$port"
out="$(redis-cli -h "$host" -p "$port" FLUSHALL)"
echo "$out"
[ "$out" = "OK" ]
