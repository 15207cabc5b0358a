#!/bin/sh
# Container entrypoint: bring the database schema up to date and install the task schedules, then
# run the given command (gunicorn by default). Set CAM_MIGRATE=false on containers that must not
# do this (the worker in docker-compose.yml waits for the web container, which does).
set -eu

if [ "${CAM_MIGRATE:-true}" = "true" ]; then
    python manage.py migrate --noinput
    python manage.py createcachetable
    python manage.py cam_schedules
fi

exec "$@"
