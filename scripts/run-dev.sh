#!/usr/bin/env bash
# Serve CAM on http://127.0.0.1:8000 and run its django-q2 cluster beside it, in the foreground.
# Ctrl-C (SIGINT) or SIGTERM stops both, with every process they started; if one of the two
# exits on its own, the other is stopped too. Works with or without a terminal.
#
# Usage: scripts/run-dev.sh [PYTHON]   (default .venv/bin/python)
# CAM_RUN_ADDR changes the address (default 127.0.0.1:8000). CAM_RUN_RELOAD=0 turns off runserver's
# code reloader (qcluster never reloads: restart `make run` after changing task code).
set -euo pipefail

cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
ADDR=${CAM_RUN_ADDR:-127.0.0.1:8000}
RELOAD_FLAG=()
[[ ${CAM_RUN_RELOAD:-1} == 0 ]] && RELOAD_FLAG=(--noreload)

# Each child runs in its own session (setsid), so its whole process group (runserver's reloader
# child, qcluster's worker processes) can be signalled at once, and a terminal's Ctrl-C reaches only
# this script, which then stops both sessions.
sessions=()

# True while one of the given processes (or, with --sid, any process of those sessions) still runs;
# zombies do not count: a leader stays one until it is waited for.
running() {
    local select=-p
    [[ $1 == --sid ]] && { select=--sid; shift; }
    ps "$select" "$(IFS=,; echo "$*")" -o stat= 2>/dev/null | grep -qv '^Z'
}

wait_while_running() {  # SECONDS ARGS...
    local tries=$(($1 * 5))
    shift
    while ((tries-- > 0)) && running "$@"; do sleep 0.2; done
}

stop_all() {
    trap - INT TERM EXIT
    local sid
    ((${#sessions[@]})) || return 0
    echo "Stopping the web server and the task cluster..." >&2
    # The leaders first: qcluster then stops its own workers cleanly (signalling the workers too
    # makes it hang). What is left afterwards (runserver's reloaded child) gets the same signal, and
    # anything still there after that is killed.
    kill -TERM "${sessions[@]}" 2>/dev/null || true
    wait_while_running 15 "${sessions[@]}"
    for sid in "${sessions[@]}"; do kill -TERM -- "-$sid" 2>/dev/null || true; done
    wait_while_running 5 --sid "${sessions[@]}"
    for sid in "${sessions[@]}"; do kill -KILL -- "-$sid" 2>/dev/null || true; done
    wait "${sessions[@]}" 2>/dev/null || true
}

trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap 'stop_all' EXIT

setsid "$PY" manage.py runserver "${RELOAD_FLAG[@]}" "$ADDR" </dev/null &
sessions+=("$!")
setsid "$PY" manage.py qcluster </dev/null &
sessions+=("$!")

echo "CAM is starting on http://$ADDR/admin/ with the task cluster beside it; Ctrl-C stops both." >&2

# Returns when either child exits (or a trapped signal arrives).
status=0
wait -n || status=$?
echo "A CAM process exited (status $status); stopping the other." >&2
stop_all
exit "$status"
