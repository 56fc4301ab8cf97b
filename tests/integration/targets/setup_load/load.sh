# shellcheck shell=bash
# Sourced by the script targets (their aliases say needs/target/setup_load): clients that keep
# reading pages while a deploy or rollback runs, and fail the test on any fault they saw.
#   load_start OUT PATTERN URL...   start them (PATTERN: a regex whose first group is the version)
#   load_stop WHAT                  stop them, print what they saw, fail on any fault
__cutover_load=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/load.py
LOAD_PID=
LOAD_OUT=
load_start() {
    LOAD_OUT=$1/load.json
    shift
    python3 "$__cutover_load" run "$LOAD_OUT" "$@" &
    LOAD_PID=$!
}
load_stop() {
    kill "$LOAD_PID"
    wait "$LOAD_PID"
    LOAD_PID=
    python3 "$__cutover_load" report "$LOAD_OUT" "$1"
}
