#!/bin/bash
# db-rotate-password.sh: sets the application database user's password to NEW_DB_PASSWORD
# (from the environment: generated for this run). Connects as WORKOUT_DB_ADMIN_USER (default
# root, password WORKOUT_DB_ADMIN_PASSWORD); the statement goes to mysql on stdin, so the
# password is on no command line, and it is never printed.
set -euo pipefail
source "$(dirname "$0")/common.sh"
[ -n "${NEW_DB_PASSWORD:-}" ] || die "NEW_DB_PASSWORD is not set"
[[ "$NEW_DB_PASSWORD" =~ ^[A-Za-z0-9_-]+$ ]] || die "NEW_DB_PASSWORD must be base64url or hex"
app_user="${WORKOUT_DB_USER}"
app_host="${WORKOUT_DB_USER_HOST:-localhost}"
[[ "$app_user" =~ ^[A-Za-z0-9_]+$ && "$app_host" =~ ^[A-Za-z0-9_.%-]+$ ]] || die "bad user or host name"
unset MYSQL_PWD
if [ -n "${WORKOUT_DB_ADMIN_PASSWORD:-}" ]; then
    export MYSQL_PWD="$WORKOUT_DB_ADMIN_PASSWORD"
fi
echo "Changing the password of '$app_user'@'$app_host'"
printf "ALTER USER '%s'@'%s' IDENTIFIED BY '%s';\n" "$app_user" "$app_host" "$NEW_DB_PASSWORD" |
    mysql --host="$WORKOUT_DB_HOST" --port="$WORKOUT_DB_PORT" --user="${WORKOUT_DB_ADMIN_USER:-root}"
echo "Password changed"
