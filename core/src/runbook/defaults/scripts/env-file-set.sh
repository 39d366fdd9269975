#!/bin/bash
# env-file-set.sh KEY=VAR…: in the application's .env (WORKOUT_ENV_FILE, default
# $WORKOUT_APP_DIR/backend/.env), sets each KEY to the value of the environment variable VAR
# (added when missing). Values are read from the environment by awk, never from a command
# line, and never printed; the file is replaced atomically with its mode kept.
set -euo pipefail
source "$(dirname "$0")/common.sh"
file="${WORKOUT_ENV_FILE:-$WORKOUT_APP_DIR/backend/.env}"
[ -f "$file" ] || die "$file does not exist"
[ "$#" -gt 0 ] || die "usage: env-file-set.sh KEY=VAR..."
tmp="$(mktemp "$file.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
cp -p "$file" "$tmp"
for pair in "$@"; do
    key="${pair%%=*}"
    var="${pair#*=}"
    [[ "$key" =~ ^[A-Z_][A-Z0-9_]*$ && "$var" =~ ^[A-Z_][A-Z0-9_]*$ ]] || die "bad pair \`$pair\`: write KEY=VAR"
    [ -n "${!var:-}" ] || die "$var is not set"
    export "${var?}"
    KEY="$key" VAR="$var" awk '
        BEGIN { key = ENVIRON["KEY"]; val = ENVIRON[ENVIRON["VAR"]]; done = 0 }
        index($0, key "=") == 1 { print key "=" val; done = 1; next }
        { print }
        END { if (!done) print key "=" val }
    ' "$tmp" >"$tmp.new"
    cat "$tmp.new" >"$tmp"
    rm -f "$tmp.new"
    echo "set $key in $file"
done
mv "$tmp" "$file"
trap - EXIT
