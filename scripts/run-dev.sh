#!/usr/bin/env bash
# Serve CAM on http://127.0.0.1:8000 and run its django-q2 cluster beside it, in the foreground.
# Ctrl-C (SIGINT), SIGTERM or SIGHUP stops both, with every process they started, and the script
# exits 0: stopping is what was asked for. If one of the two exits on its own, the other is stopped
# too and the script exits with that one's status. Works with or without a terminal.
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

# At a terminal, take its foreground in a process group of our own, so that Ctrl-C reaches this script
# alone. Otherwise it reaches make above us too, and make ends itself with the interrupt (status 130)
# however cleanly everything stopped. The terminal goes back to the group that had it when we end.
# (A shell script cannot change its own process group, hence the few lines of Python, which then
# replace themselves with this script again.)
if [[ ! -v CAM_RUN_TERMINAL_OWNER ]]; then
    export CAM_RUN_TERMINAL_OWNER=
    if [[ -t 0 ]]; then
        exec "$PY" -c '
import os, signal, sys
owner = os.tcgetpgrp(0)
if owner == os.getpgrp():  # in the foreground; a run in the background leaves the terminal alone
    os.setpgid(0, 0)
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)  # a background group may still hand the terminal over
    os.tcsetpgrp(0, os.getpgrp())
    os.environ["CAM_RUN_TERMINAL_OWNER"] = str(owner)
    # Ctrl-C is how this run stops, even when started by a program that ignores it: bash cannot trap
    # a signal that was ignored when it started.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
# Python ignores these; an ignored signal would stay ignored in the servers.
for name in ("SIGTTOU", "SIGPIPE", "SIGXFSZ"):
    signal.signal(getattr(signal, name), signal.SIG_DFL)
os.execv("/bin/bash", ["bash", *sys.argv[1:]])
' scripts/run-dev.sh "$@"
    fi
fi
terminal_owner=$CAM_RUN_TERMINAL_OWNER
unset CAM_RUN_TERMINAL_OWNER

give_back_terminal() {
    [[ -n $terminal_owner ]] || return 0
    "$PY" -c 'import os, signal, sys; signal.signal(signal.SIGTTOU, signal.SIG_IGN); os.tcsetpgrp(0, int(sys.argv[1]))' \
        "$terminal_owner" 2>/dev/null || true
    terminal_owner=
}

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
    # A second Ctrl-C must not cut the clean-up short: the servers run in sessions of their own and
    # would be left running. Everything is killed within 20 seconds anyway.
    trap '' INT TERM HUP
    trap - EXIT
    local sid
    ((${#sessions[@]})) || { give_back_terminal; return 0; }
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
    sessions=()
    give_back_terminal
}

# A stop that was asked for ends well: exit 0, so make reports no error.
trap 'stop_all; exit 0' INT TERM HUP
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
