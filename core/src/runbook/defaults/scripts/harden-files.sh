#!/bin/bash
# harden-files.sh: the guide's file permissions: the .env files readable by their owner only,
# the backups directory closed to others.
set -euo pipefail
source "$(dirname "$0")/common.sh"
for f in "$WORKOUT_APP_DIR/backend/.env" "$WORKOUT_APP_DIR/frontend/.env.production"; do
    if [ -e "$f" ]; then
        chmod 600 "$f"
        echo "chmod 600 $f"
    else
        echo "skipped $f (not there)"
    fi
done
if [ -d "$WORKOUT_BACKUP_DIR" ]; then
    chmod 700 "$WORKOUT_BACKUP_DIR"
    echo "chmod 700 $WORKOUT_BACKUP_DIR"
fi
