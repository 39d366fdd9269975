#!/bin/bash
# service.sh ACTION UNIT: sudo -n systemctl ACTION UNIT. With WORKOUT_SERVICES=none, service
# control is disabled (a drill on a machine without the Workout Tracker's units).
set -euo pipefail
action="${1:-}"
unit="${2:-}"
case "$action" in
    start | stop | restart | reload | is-active | status) ;;
    *)
        echo "usage: service.sh start|stop|restart|reload|is-active|status UNIT" >&2
        exit 2
        ;;
esac
[[ "$unit" =~ ^[A-Za-z0-9@._-]+$ ]] || { echo "error: bad unit name \`$unit\`" >&2; exit 2; }
if [ "${WORKOUT_SERVICES:-}" = "none" ]; then
    echo "service control is disabled (WORKOUT_SERVICES=none): not running systemctl $action $unit"
    exit 0
fi
echo "systemctl $action $unit"
exec sudo -n systemctl "$action" "$unit"
