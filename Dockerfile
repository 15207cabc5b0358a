# CAM production image: gunicorn serves the web app (static files through whitenoise); the same
# image runs the task cluster with `python manage.py qcluster`. See docs/deployment.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --system --create-home --uid 10001 --user-group cam

WORKDIR /app

# Runtime packages only, every transitive version pinned by constraints.txt.
COPY requirements.txt constraints.txt ./
RUN pip install -r requirements.txt -c constraints.txt

COPY . .

# Hashed, compressed static files for whitenoise. The key exists for this step only (settings
# refuse DEBUG=false without one); the running container must be given its own SECRET_KEY.
RUN DEBUG=false SECRET_KEY=collectstatic-build-step-only python manage.py collectstatic --noinput

# Without DATABASE_URL the container keeps SQLite in /app/data (mount a volume there); the
# compose file points it at PostgreSQL instead.
RUN mkdir -p /app/data && chown cam:cam /app/data \
    && chmod +x scripts/docker-entrypoint.sh
ENV DEBUG=false \
    DATABASE_URL=sqlite:////app/data/db.sqlite3

USER cam
EXPOSE 8000

# `docker stop` sends SIGTERM (gunicorn and qcluster both stop gracefully on it), then SIGKILL.
# Run the image under an init (`docker run --init`; docker-compose.yml sets `init: true`) so that
# the command is not PID 1: see "What kills what" in docs/deployment.md.
STOPSIGNAL SIGTERM

# The entrypoint applies migrations, creates the cache table and installs the schedules (unless
# CAM_MIGRATE=false), then runs the command: gunicorn by default, or `python manage.py qcluster`
# for the worker. The request limits are gunicorn's defaults, stated so they are a choice: a request
# over them is answered by gunicorn itself (414, 431), before CAM sees it ("Request limits" in
# docs/deployment.md).
ENTRYPOINT ["/app/scripts/docker-entrypoint.sh"]
CMD ["gunicorn", "aicmo_site.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--timeout", "60", \
     "--limit-request-line", "4094", "--limit-request-fields", "100", "--limit-request-field_size", "8190", \
     "--access-logfile", "-"]
