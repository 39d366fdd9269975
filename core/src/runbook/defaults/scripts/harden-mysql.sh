#!/bin/bash
# harden-mysql.sh: the guide's "Secure MySQL": anonymous users, remote root and the test
# database removed. Connects as WORKOUT_DB_ADMIN_USER (default root, password
# WORKOUT_DB_ADMIN_PASSWORD).
set -euo pipefail
source "$(dirname "$0")/common.sh"
unset MYSQL_PWD
if [ -n "${WORKOUT_DB_ADMIN_PASSWORD:-}" ]; then
    export MYSQL_PWD="$WORKOUT_DB_ADMIN_PASSWORD"
fi
mysql --host="$WORKOUT_DB_HOST" --port="$WORKOUT_DB_PORT" --user="${WORKOUT_DB_ADMIN_USER:-root}" <<'SQL'
DELETE FROM mysql.user WHERE User='';
DELETE FROM mysql.user WHERE User='root' AND Host NOT IN ('localhost', '127.0.0.1', '::1');
DROP DATABASE IF EXISTS test;
DELETE FROM mysql.db WHERE Db='test' OR Db='test\_%';
FLUSH PRIVILEGES;
SQL
echo "MySQL secured"
