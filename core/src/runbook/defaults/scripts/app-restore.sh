#!/bin/bash
# app-restore.sh DATE: restores the application, then its configuration and media, from the
# backups of DATE (app_backup_*, config_backup_*, media_backup_* .tar.gz), extracted under
# WORKOUT_RESTORE_ROOT (default /, as the archives hold absolute paths), then owned by
# WORKOUT_APP_OWNER (default www-data:www-data; "none" to leave ownership).
set -euo pipefail
source "$(dirname "$0")/common.sh"
date="${1:-}"
check_date "$date"
root="${WORKOUT_RESTORE_ROOT:-/}"
owner="${WORKOUT_APP_OWNER:-www-data:www-data}"
find_backup() {
    find "$WORKOUT_BACKUP_DIR" -maxdepth 1 -type f -name "$1_*${date}*" | sort | head -n 1
}
app="$(find_backup app_backup)"
[ -n "$app" ] || die "no application backup found for date: $date in $WORKOUT_BACKUP_DIR"
echo "Using backup file: $app"
tar -xzf "$app" -C "$root"
for kind in config_backup media_backup; do
    extra="$(find_backup "$kind")"
    if [ -n "$extra" ]; then
        echo "Restoring $kind: $extra"
        tar -xzf "$extra" -C "$root"
    fi
done
if [ "$owner" != "none" ]; then
    echo "Setting ownership $owner on $WORKOUT_APP_DIR"
    sudo -n chown -R "$owner" "$WORKOUT_APP_DIR"
    sudo -n chmod -R u+rwX,go+rX,go-w "$WORKOUT_APP_DIR"
fi
echo "Application restored from $(basename "$app")"
