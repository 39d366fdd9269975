#!/bin/bash
# evidence.sh: the guide's "Preserve evidence" before anything is changed: processes, network
# connections, logins and logs, copied into evidence_<timestamp>/ in the backup directory,
# with a SHA-256 list of what was taken.
set -euo pipefail
source "$(dirname "$0")/common.sh"
umask 077
dir="$WORKOUT_BACKUP_DIR/evidence_$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$dir"
ps auxww >"$dir/processes.txt" 2>&1 || true
(ss -tunap 2>/dev/null || netstat -tunap 2>/dev/null || true) >"$dir/connections.txt"
(last -F 2>/dev/null || true) >"$dir/logins.txt"
for log in /var/log/auth.log /var/log/syslog /var/log/nginx/access.log /var/log/nginx/error.log; do
    if [ -r "$log" ]; then
        cp -p "$log" "$dir/"
    fi
done
(cd "$dir" && sha256sum -- * >SHA256SUMS)
echo "Evidence preserved in $dir ($(ls "$dir" | wc -l) files)"
