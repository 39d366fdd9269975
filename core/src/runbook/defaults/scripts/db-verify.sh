#!/bin/bash
# db-verify.sh: the guide's verification after a restore, the row counts of the main tables
# (fails when one is missing).
set -euo pipefail
source "$(dirname "$0")/common.sh"
for table in workouts workout_logs splits; do
    count="$(mysql "${mysql_args[@]}" "$WORKOUT_DB_NAME" --batch --skip-column-names -e "SELECT COUNT(*) FROM \`$table\`;")"
    echo "$table: $count rows"
done
