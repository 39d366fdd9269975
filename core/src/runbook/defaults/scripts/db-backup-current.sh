#!/bin/bash
# db-backup-current.sh: dumps the current database before anything overwrites it
# (current_db_backup_<timestamp>.sql in the backup directory, readable by its owner only).
set -euo pipefail
source "$(dirname "$0")/common.sh"
umask 077
mkdir -p "$WORKOUT_BACKUP_DIR"
out="$WORKOUT_BACKUP_DIR/current_db_backup_$(date +%Y%m%d_%H%M%S).sql"
echo "Backing up $WORKOUT_DB_NAME to $out"
mysqldump "${mysql_args[@]}" --single-transaction --routines "$WORKOUT_DB_NAME" >"$out.partial"
mv "$out.partial" "$out"
echo "Backup written: $(wc -c <"$out") bytes"
