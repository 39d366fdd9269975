# Shared by the runbook scripts (sourced, not run): the Workout Tracker's connection settings,
# from the environment with the guide's defaults. A password is only ever handed to mysql
# through MYSQL_PWD, never on a command line.
: "${WORKOUT_DB_HOST:=localhost}"
: "${WORKOUT_DB_PORT:=3306}"
: "${WORKOUT_DB_USER:=workout_user}"
: "${WORKOUT_DB_NAME:=workout_tracker}"
: "${WORKOUT_BACKUP_DIR:=/opt/workout-tracker/backups}"
: "${WORKOUT_APP_DIR:=/opt/workout-tracker}"
if [ -n "${WORKOUT_DB_PASSWORD:-}" ]; then
    export MYSQL_PWD="$WORKOUT_DB_PASSWORD"
fi
mysql_args=(--host="$WORKOUT_DB_HOST" --port="$WORKOUT_DB_PORT" --user="$WORKOUT_DB_USER")

die() {
    echo "error: $*" >&2
    exit 1
}

# A date as the backups name it: YYYYMMDD or YYYY-MM-DD, nothing else.
check_date() {
    [[ "$1" =~ ^[0-9]{8}$ || "$1" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ ]] || die "bad date \`$1\`: write it YYYYMMDD, e.g. 20261126"
}
