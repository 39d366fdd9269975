#!/bin/bash
# db-restore.sh DATE: restores the database from the backup of DATE
# (db_backup_*DATE*: .sql.gz.enc decrypted with the key in SPOTTER_BACKUP_KEY, .sql.gz, .sql).
# The key is read by openssl from the environment (-pass env:), never put on a command line.
set -euo pipefail
source "$(dirname "$0")/common.sh"
date="${1:-}"
check_date "$date"
[ -d "$WORKOUT_BACKUP_DIR" ] || die "backup directory $WORKOUT_BACKUP_DIR does not exist"
file="$(find "$WORKOUT_BACKUP_DIR" -maxdepth 1 -type f -name "db_backup_*${date}*" | sort | head -n 1)"
if [ -z "$file" ]; then
    echo "No backup found for date: $date. Available backups:" >&2
    find "$WORKOUT_BACKUP_DIR" -maxdepth 1 -type f -name 'db_backup_*' -printf '  %f\n' >&2 || true
    exit 1
fi
echo "Using backup file: $file"
echo "Restoring into $WORKOUT_DB_NAME on $WORKOUT_DB_HOST:$WORKOUT_DB_PORT"
case "$file" in
    *.enc)
        [ -n "${SPOTTER_BACKUP_KEY:-}" ] || die "SPOTTER_BACKUP_KEY is not set: it holds the backups' encryption key"
        if [[ "$file" == *.gz.enc ]]; then
            openssl enc -d -aes-256-cbc -pbkdf2 -pass env:SPOTTER_BACKUP_KEY -in "$file" | gunzip -c | mysql "${mysql_args[@]}" "$WORKOUT_DB_NAME"
        else
            openssl enc -d -aes-256-cbc -pbkdf2 -pass env:SPOTTER_BACKUP_KEY -in "$file" | mysql "${mysql_args[@]}" "$WORKOUT_DB_NAME"
        fi
        ;;
    *.gz)
        gunzip -c "$file" | mysql "${mysql_args[@]}" "$WORKOUT_DB_NAME"
        ;;
    *)
        mysql "${mysql_args[@]}" "$WORKOUT_DB_NAME" <"$file"
        ;;
esac
echo "Database restored from $(basename "$file")"
