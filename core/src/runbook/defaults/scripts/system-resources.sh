#!/bin/bash
# system-resources.sh: the guide's system resources and service status (read-only).
set -euo pipefail
echo "=== SYSTEM RESOURCES ==="
echo "Load average: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
if command -v free >/dev/null; then
    echo "Memory usage: $(free | awk '/^Mem/ {printf "%.1f%%", $3/$2 * 100.0}')"
fi
echo "Disk usage: $(df -h / | awk 'NR==2 {print $5}')"
if [ "${WORKOUT_SERVICES:-}" = "none" ]; then
    echo "service status: not checked (WORKOUT_SERVICES=none)"
    exit 0
fi
for unit in workout-tracker nginx mysql; do
    echo "$unit: $(systemctl is-active "$unit" 2>/dev/null || true)"
done
