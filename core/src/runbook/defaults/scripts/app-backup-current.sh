#!/bin/bash
# app-backup-current.sh: archives the current application (without venv, node_modules, .git
# and the backups) before a restore overwrites it.
set -euo pipefail
source "$(dirname "$0")/common.sh"
umask 077
mkdir -p "$WORKOUT_BACKUP_DIR"
out="$WORKOUT_BACKUP_DIR/current_app_backup_$(date +%Y%m%d_%H%M%S).tar.gz"
echo "Backing up $WORKOUT_APP_DIR to $out"
tar -czf "$out" --exclude='venv' --exclude='node_modules' --exclude='.git' --exclude='backups' \
    -C "$(dirname "$WORKOUT_APP_DIR")" "$(basename "$WORKOUT_APP_DIR")"
echo "Backup written: $(wc -c <"$out") bytes"
