# CAM: the two everyday commands are `make run` and `make test`. Everything they need is set up
# here, from a clean clone: a .venv with Python 3.11, the pinned packages, and (for the tests, when
# run as root) the Debian packages the suite drives.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
# Rewritten whenever the requirements or constraints change, so `pip install` only runs then.
STAMP := $(VENV)/.installed-requirements

# Debian packages the test suite needs on the machine (Chromium for the browser test, Dovecot for
# IMAP, Redis for the throttles shared across processes).
TEST_DEB_PACKAGES := chromium dovecot-imapd redis-server
# The Redis the suite uses (a test proves API throttle counts are shared through it).
TEST_REDIS_PORT := 6379

# The SQLite run names the default database explicitly, so a DATABASE_URL in .env cannot redirect it
# (the test database itself is in memory). Tests of PostgreSQL's row locks are deselected there:
# deselected, not skipped, because CI fails on a skipped test.
SQLITE_ENV := DATABASE_URL=sqlite:///$(CURDIR)/db.sqlite3
SQLITE_PYTEST_ARGS := -m "not postgres_only"
# The PostgreSQL run; pytest-django creates and drops its own `test_<name>` database.
POSTGRES_TEST_URL ?= postgres://postgres@127.0.0.1:5432/test
# Extra arguments for both pytest runs, e.g. `make test PYTEST_ARGS="-x -k admin"`.
PYTEST_ARGS ?=
TEST_RESULTS := test-results

export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help run test test-sqlite test-postgres chaos schemathesis lint typecheck venv system-packages postgres-started redis-started constraints screenshots bench bench-imports bench-scoring bench-sending bench-lists bench-dashboard bench-worker bench-classify bench-reading clean

help:
	@echo "make run    set up a development database with demo data and serve http://127.0.0.1:8000 plus the task cluster"
	@echo "make test   lint, check migrations, and run the test suite on SQLite and on PostgreSQL"
	@echo "make chaos  the reliability suite in full: 20 kill -9s, database cuts and stalls per mode (PostgreSQL)"
	@echo "make schemathesis  every Schemathesis check and phase against a live gunicorn on a temporary database"
	@echo "make lint   ruff check, lint-imports (the import layers and no import cycles, see pyproject.toml) and mypy"
	@echo "make typecheck  mypy alone (the types, with the Django and DRF plugins; the services strictly)"
	@echo "make screenshots  photograph the back office over the demo data (1440 x 900) into docs/img/"
	@echo "make bench  every benchmark below in turn, at the sizes of docs/benchmarks.md (about 15 minutes; PostgreSQL)"
	@echo "make bench-imports    cam_import_leads of a 1,000,000-row CSV against PostgreSQL's own INSERT … SELECT of it"
	@echo "make bench-scoring    scoring and qualifying 200,000 leads against PostgreSQL's own rewrite of the same rows"
	@echo "make bench-sending    sending 4,000 emails to a loopback SMTP sink (without and with PIPELINING) against raw smtplib over one connection"
	@echo "make bench-lists      the admin's big lists over 1,000,000 leads and 2,000,000 emails (PostgreSQL)"
	@echo "make bench-dashboard  time the dashboard and the admin's lists on 2,000,000 emails (PostgreSQL, see docs/benchmarks.md)"
	@echo "make bench-worker     time the worker's cycle, metrics step and get_dashboard() on 2,000,000 emails (PostgreSQL)"
	@echo "make bench-classify   classification speed: messages per second over the corpus of tests/inbox (no database)"
	@echo "make bench-reading    first IMAP sync of 5,000 replies from Dovecot and their processing (PostgreSQL)"
	@echo "make constraints  rewrite constraints.txt from the installed packages"
	@echo "make clean  remove .venv, the SQLite database and collected static files"

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-dev.txt -c constraints.txt
	@touch $@

run: $(STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py createcachetable
	$(PY) manage.py cam_demo
	$(PY) manage.py cam_admin_user
	@if $(PY) manage.py help cam_schedules >/dev/null 2>&1; then $(PY) manage.py cam_schedules; fi
	@scripts/run-dev.sh $(PY)

# Installs what is missing (as root) and does nothing when all is there, so repeat runs are fast.
system-packages:
	@missing=""; \
	for pkg in $(TEST_DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "Installing Debian packages for the tests:$$missing"; \
	    apt-get update -qq; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "Missing Debian packages the tests need:$$missing (run as root, or: sudo apt-get install$$missing)" >&2; \
	  fi; \
	fi

postgres-started:
	@if [ "$$(id -u)" = 0 ] && command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then \
	  for version in $$(ls /etc/postgresql); do \
	    pg_ctlcluster --skip-systemctl-redirect "$$version" main status >/dev/null 2>&1 \
	      || pg_ctlcluster --skip-systemctl-redirect "$$version" main start; \
	  done; \
	fi

# Starts a Redis on 127.0.0.1:$(TEST_REDIS_PORT) unless one answers there already (it keeps nothing on disk).
redis-started: system-packages
	@if ! $(PYTHON) -c "import socket; socket.create_connection(('127.0.0.1', $(TEST_REDIS_PORT)), 1).close()" 2>/dev/null; then \
	  if command -v redis-server >/dev/null; then \
	    echo "Starting Redis on 127.0.0.1:$(TEST_REDIS_PORT)"; \
	    redis-server --bind 127.0.0.1 --port $(TEST_REDIS_PORT) --save '' --appendonly no --daemonize yes >/dev/null; \
	    for i in 1 2 3 4 5 6 7 8 9 10; do \
	      $(PYTHON) -c "import socket; socket.create_connection(('127.0.0.1', $(TEST_REDIS_PORT)), 1).close()" 2>/dev/null && break; \
	      sleep 0.5; \
	    done; \
	  else \
	    echo "No Redis on 127.0.0.1:$(TEST_REDIS_PORT) and no redis-server to start (run as root, or: sudo apt-get install redis-server)" >&2; \
	  fi; \
	fi

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

# mypy's settings are in pyproject.toml; its cache (.mypy_cache) makes a run after a small change quick.
typecheck: $(STAMP)
	$(VENV)/bin/mypy

# Lint and both database runs always all run; the target fails at the end if any of them failed. The two
# database runs go side by side: each keeps about one core busy (its tests wait on servers, processes
# and the database much of the time), so on two cores both end in about the time of the longer one.
test: $(STAMP) system-packages postgres-started redis-started
	@rm -rf $(TEST_RESULTS); mkdir -p $(TEST_RESULTS); failed=""; \
	echo "== ruff check"; $(VENV)/bin/ruff check . || failed="$$failed ruff"; \
	echo "== lint-imports"; $(VENV)/bin/lint-imports || failed="$$failed lint-imports"; \
	echo "== mypy"; $(VENV)/bin/mypy || failed="$$failed mypy"; \
	echo "== makemigrations --check"; \
	$(PY) manage.py makemigrations --check --dry-run || failed="$$failed migrations"; \
	echo "== pytest on SQLite and on PostgreSQL, side by side (its output: $(TEST_RESULTS)/pytest-sqlite.log, shown below when both end)"; \
	$(SQLITE_ENV) $(VENV)/bin/pytest --junitxml=$(TEST_RESULTS)/junit-sqlite.xml $(SQLITE_PYTEST_ARGS) $(PYTEST_ARGS) \
	  >$(TEST_RESULTS)/pytest-sqlite.log 2>&1 & sqlite=$$!; \
	trap 'kill $$sqlite 2>/dev/null; exit 130' INT TERM HUP; \
	echo "== pytest on PostgreSQL ($(POSTGRES_TEST_URL))"; \
	DATABASE_URL=$(POSTGRES_TEST_URL) $(VENV)/bin/pytest --junitxml=$(TEST_RESULTS)/junit-postgres.xml $(PYTEST_ARGS) \
	  || failed="$$failed postgres"; \
	wait $$sqlite || failed="$$failed sqlite"; \
	echo "== pytest on SQLite"; cat $(TEST_RESULTS)/pytest-sqlite.log; \
	if [ -n "$$failed" ]; then echo "make test failed:$$failed" >&2; exit 1; fi

test-sqlite: $(STAMP) system-packages redis-started
	$(SQLITE_ENV) $(VENV)/bin/pytest $(SQLITE_PYTEST_ARGS) $(PYTEST_ARGS)

test-postgres: $(STAMP) system-packages postgres-started redis-started
	DATABASE_URL=$(POSTGRES_TEST_URL) $(VENV)/bin/pytest $(PYTEST_ARGS)

# The reliability suite (tests/reliability) with 20 interruptions per mode instead of the 5 `make test`
# runs; its figures are printed and written to test-results/chaos.jsonl for docs/reliability.md.
CHAOS_KILLS ?= 20
chaos: $(STAMP) system-packages postgres-started redis-started
	@mkdir -p $(TEST_RESULTS); rm -f $(TEST_RESULTS)/chaos.jsonl
	CAM_CHAOS_KILLS=$(CHAOS_KILLS) DATABASE_URL=$(POSTGRES_TEST_URL) $(VENV)/bin/pytest tests/reliability $(PYTEST_ARGS)
	@echo "== figures (test-results/chaos.jsonl)"; cat $(TEST_RESULTS)/chaos.jsonl

# Schemathesis against the API behind gunicorn (scripts/schemathesis-live.sh): a temporary SQLite database
# with the demo data, a full API key, every check over the examples, coverage, fuzzing and stateful
# phases; reports in test-results/schemathesis/. About ten minutes; `make test` runs the in-process
# checks of tests/api/test_schema.py instead.
schemathesis: $(STAMP)
	scripts/schemathesis-live.sh $(PY)

screenshots: $(STAMP) system-packages
	$(PY) scripts/screenshots.py --out docs/img

constraints: $(STAMP)
	{ echo "# Every installed package pinned (make constraints). Used with -c by the Makefile and the Dockerfile."; \
	  $(PY) -m pip freeze --exclude-editable; } > constraints.txt
	@touch $(STAMP)

# bench/dashboard.py builds its data in test_<name> of this server and drops it afterwards; BENCH_ARGS="--keep"
# keeps it for the next run, "--explain" prints the plans.
BENCH_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/bench
BENCH_ARGS ?=
# `make bench` runs every benchmark in turn at its documented size; BENCH_ARGS is for running one of them.
# None fails on a speed (the machine decides those); bench-worker fails if a query count grows with the data.
bench: bench-imports bench-scoring bench-sending bench-lists bench-dashboard bench-worker bench-reading bench-classify

bench-imports: $(STAMP) postgres-started
	DATABASE_URL=$(BENCH_POSTGRES_URL) $(PY) bench/imports.py $(BENCH_ARGS)

bench-scoring: $(STAMP) postgres-started
	DATABASE_URL=$(BENCH_POSTGRES_URL) $(PY) bench/pipeline.py --score-leads 200000 $(BENCH_ARGS)

# Twice: to aiosmtpd as it is (one command at a time), and offering PIPELINING, as Postfix, Exchange and Gmail do.
bench-sending: $(STAMP) postgres-started
	DATABASE_URL=$(BENCH_POSTGRES_URL) $(PY) bench/sending.py --emails 4000 --floor $(BENCH_ARGS)
	DATABASE_URL=$(BENCH_POSTGRES_URL) $(PY) bench/sending.py --emails 4000 --floor --pipelining $(BENCH_ARGS)

bench-lists: $(STAMP) postgres-started
	DATABASE_URL=$(BENCH_POSTGRES_URL) $(PY) bench/lists.py $(BENCH_ARGS)

bench-dashboard: $(STAMP) postgres-started
	DATABASE_URL=$(BENCH_POSTGRES_URL) $(PY) bench/dashboard.py $(BENCH_ARGS)

bench-worker: $(STAMP) postgres-started
	DATABASE_URL=$(BENCH_POSTGRES_URL) $(PY) bench/worker.py $(BENCH_ARGS)

bench-classify: $(STAMP)
	$(PY) bench/classify.py $(BENCH_ARGS)

# bench/reading.py starts its own Dovecot (dovecot-imapd, as the tests do) and uses test_<name> of this server.
bench-reading: $(STAMP) system-packages postgres-started
	DATABASE_URL=$(BENCH_POSTGRES_URL) $(PY) bench/reading.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) db.sqlite3 db.sqlite3-shm db.sqlite3-wal staticfiles $(TEST_RESULTS)
