#!/bin/bash
# db-optimize.sh: the guide's OPTIMIZE TABLE of the Workout Tracker's main tables.
set -euo pipefail
source "$(dirname "$0")/common.sh"
echo "Optimizing $WORKOUT_DB_NAME on $WORKOUT_DB_HOST:$WORKOUT_DB_PORT"
mysql "${mysql_args[@]}" "$WORKOUT_DB_NAME" -e "OPTIMIZE TABLE workouts, workout_logs, splits, split_days;"
