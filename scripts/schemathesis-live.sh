#!/usr/bin/env bash
# Schemathesis against a live CAM: gunicorn (with the Dockerfile's request limits) on 127.0.0.1, a fresh
# SQLite database in a temporary folder (migrated, with the demo campaign), a full API key made with
# `manage.py cam_api_key create`, and every check over every phase (scripts/schemathesis.toml lists the
# operations whose rules a schema cannot state, where a 400 to schema-valid data is expected). The in-process test
# (tests/api/test_schema.py) covers the application; this covers it behind the real web server.
#
# Usage: scripts/schemathesis-live.sh [PYTHON] [-- EXTRA SCHEMATHESIS ARGS]   (default .venv/bin/python)
# SCHEMATHESIS_MAX_EXAMPLES (default 80) and SCHEMATHESIS_SEED (default 1) size and fix the run; the
# reports (JUnit, NDJSON) and the server's log land in test-results/schemathesis/.
set -euo pipefail

cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
[[ $# -gt 0 ]] && shift
[[ ${1:-} == -- ]] && shift
BIN=$(dirname "$PY")
PORT=${SCHEMATHESIS_PORT:-8765}
REPORTS=test-results/schemathesis

work=$(mktemp -d)
server=""
cleanup() {
    if [[ -n $server ]] && kill -0 "$server" 2>/dev/null; then
        kill -TERM "$server"
        wait "$server" 2>/dev/null || true
    fi
    # The server's log (every refused request is a warning there) is kept beside the reports.
    [[ -f $work/server.log ]] && cp "$work/server.log" "$REPORTS/server.log"
    rm -rf "$work"
}
mkdir -p "$REPORTS"
trap cleanup EXIT

# Production settings (DEBUG off), served over plain HTTP on the loopback; throttles far above what the
# run sends, so no 429 hides a real answer.
export DEBUG=false SECRET_KEY=schemathesis-run-only SECURE_SSL_REDIRECT=false \
    ALLOWED_HOSTS=127.0.0.1 DATABASE_URL="sqlite:///$work/db.sqlite3" LOG_LEVEL=WARNING \
    AICMO_CAM_API_READ_RATE=1000000/min AICMO_CAM_API_WRITE_RATE=1000000/min AICMO_CAM_API_JOB_RATE=1000000/min \
    AICMO_CAM_WORKER_ENABLED=false

"$PY" manage.py migrate --noinput -v 0
"$PY" manage.py createcachetable
"$PY" manage.py cam_demo -v 0 >/dev/null
# A few replies and alerts too (the demo has none), so their reads and the reclassification reach
# their success paths, not only their 404s.
"$PY" manage.py shell -v 0 -c "
from cam.models import Campaign, Mailbox
from tests.factories import HumanAlertLogFactory, InboundEmailFactory
campaign = Campaign.objects.order_by('pk').first()
for lead in campaign.leads.order_by('pk')[:3]:
    InboundEmailFactory(mailbox=Mailbox.objects.order_by('pk').first(), lead=lead)
    HumanAlertLogFactory(campaign=campaign)
    # A bounce held for a person, so confirm and dismiss have something to act on.
    InboundEmailFactory(mailbox=Mailbox.objects.order_by('pk').first(), lead=lead, category='BOUNCE_HARD',
                        confirmation='NEEDED')
"
key=$("$PY" manage.py cam_api_key create schemathesis | grep -E '^[A-Za-z0-9]{8}\.[A-Za-z0-9]+$')

"$BIN/gunicorn" aicmo_site.wsgi --bind "127.0.0.1:$PORT" --workers 2 --timeout 60 \
    --limit-request-line 4094 --limit-request-fields 100 --limit-request-field_size 8190 \
    --log-level warning 2>"$work/server.log" &
server=$!
"$BIN/schemathesis" --config-file scripts/schemathesis.toml run "http://127.0.0.1:$PORT/api/schema/?format=json" \
    --wait-for-schema 30 \
    --header "Authorization: Api-Key $key" \
    --checks all \
    --phases examples,coverage,fuzzing,stateful \
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-80}" \
    --seed "${SCHEMATHESIS_SEED:-1}" \
    --workers 1 \
    --report junit,ndjson --report-dir "$REPORTS" \
    "$@"
