"""A large CSV import, whole command, against PostgreSQL's own COPY of the same file.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python bench/imports.py --rows 1000000

PostgreSQL only. Writes a CSV of ``--rows`` leads (realistic columns: name, company, title, industry,
country, a head count in the forms lists use, a website; one row in 500 a duplicate of an earlier one,
one in 1,000 a bad address) to a temporary folder, creates ``test_<name>`` on the server, and then:

- **baseline**: ``COPY`` of the file into an unindexed table of text columns (the database's own limit
  for reading those bytes);
- **floor**: the same ``COPY`` into a staging table, then one ``INSERT … SELECT`` of its rows into
  ``cam_lead`` with all of the table's indexes (what storing these leads costs the database alone);
- **CAM**: ``manage.py cam_import_leads`` into an empty campaign, as a process of its own, once with
  ``DEBUG`` off and once on (the ``make run`` default), each into a fresh campaign; its wall time and
  peak RSS (``wait4``).

Prints rows/s, CAM's share of the floor's rate and the peak RSS, and the CPU seconds spent: the floor's
by its PostgreSQL backend, CAM's by the command's process and by its backends (read from
``/proc/<pid>/stat``, so with PostgreSQL on this machine; 0 otherwise). On a shared machine the load
moves the wall time; the CPU seconds move much less. Targets (issue "fast at the size real users
reach"): ≥ 30,000 rows/s for 1,000,000 rows and peak RSS ≤ 300 MB either way. The database is dropped
at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aicmo_site.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

from cpu import process_cpu  # noqa: E402  # bench/cpu.py
from django.db import connection  # noqa: E402

INDUSTRIES = ["Software", "Logistics", "Retail", "Manufacturing", "Finance", "Healthcare", "Energy"]
TITLES = ["Head of Sales", "CTO", "Founder", "VP Marketing", "Operations Manager", "Engineer"]
SIZES = ["10", "51-200", "1,200", "500+", "11 - 50", ""]
COUNTRIES = ["DE", "FR", "NL", "US", "GB", "ES"]


def write_csv(path: Path, rows: int) -> None:
    rng = random.Random(7)
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["email", "first_name", "last_name", "company", "title", "industry", "country",
                         "company_size", "website", "notes"])
        for n in range(rows):
            company = n % (rows // 5 + 1)
            email = f"person.{n}@company{company}.example.com"
            if n % 500 == 499:
                email = f"person.{n - 250}@company{(n - 250) % (rows // 5 + 1)}.example.com"  # a duplicate
            elif n % 1000 == 998:
                email = f"person {n} at company{company}"  # not an address
            writer.writerow([email, f"Anna{n}", "Schmidt", f"Company {company} GmbH", rng.choice(TITLES),
                             rng.choice(INDUSTRIES), rng.choice(COUNTRIES), rng.choice(SIZES),
                             f"company{company}.example.com", "met at the fair" if n % 3 == 0 else ""])


def baseline(path: Path) -> float:
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_copy")
        cursor.execute("CREATE UNLOGGED TABLE bench_copy (email text, first_name text, last_name text, company text, "
                       "title text, industry text, country text, company_size text, website text, notes text)")
        started = time.perf_counter()
        with path.open("rb") as file, cursor.cursor.copy("COPY bench_copy FROM STDIN (FORMAT csv, HEADER)") as copy:
            while block := file.read(1 << 20):
                copy.write(block)
        elapsed = time.perf_counter() - started
        cursor.execute("DROP TABLE bench_copy")
    return elapsed


PROFILE = {"email": "lower(b.email)", "first_name": "b.first_name", "last_name": "b.last_name",
           "company": "b.company", "title": "b.title", "industry": "b.industry", "country": "b.country",
           "website": "b.website", "raw_data": "row_to_json(b)::jsonb"}


def database_floor(path: Path) -> float:
    """The database's own time to store these leads: ``COPY`` into a staging table, then one ``INSERT …
    SELECT`` of its rows into ``cam_lead`` (with the table's indexes) for a campaign of its own."""
    from django.utils import timezone

    from cam.models import Campaign, Lead
    from cam.pipeline.lead_insert import _columns, _template

    campaign = Campaign.objects.create(name="bench import (the database alone)")
    columns = _columns()
    template = _template(columns, campaign=campaign, source=None, now=timezone.now())
    select, params = [], []
    for field, value in zip(columns, template, strict=True):
        if field.name in PROFILE:
            select.append(PROFILE[field.name])
        else:
            select.append(f"%s::{field.db_type(connection)}")
            params.append(value)
    names = ", ".join(connection.ops.quote_name(str(field.column)) for field in columns)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE bench_staged (email text, first_name text, last_name text, "
                       "company text, title text, industry text, country text, company_size text, website text, "
                       "notes text)")
        started = time.perf_counter()
        with path.open("rb") as file, cursor.cursor.copy("COPY bench_staged FROM STDIN (FORMAT csv, HEADER)") as copy:
            while block := file.read(1 << 20):
                copy.write(block)
        cursor.execute(f"INSERT INTO {Lead._meta.db_table} ({names}) SELECT {', '.join(select)} FROM bench_staged b "
                       f"WHERE b.email LIKE '%%@%%' ON CONFLICT DO NOTHING", params)
        elapsed = time.perf_counter() - started
        cursor.execute("DROP TABLE bench_staged")
    return elapsed


def backend_cpu(pid: int) -> float:
    """CPU seconds a PostgreSQL backend on this machine has used so far (``/proc/<pid>/stat``), or 0."""
    try:
        return process_cpu(pid)
    except OSError:
        return 0.0


def own_backend_cpu() -> float:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return backend_cpu(cursor.fetchone()[0])


def cam_import(path: Path, database: str, *, debug: bool) -> tuple[float, int, str, float, float]:
    """The command's wall time, peak RSS (MB), last line of output, and the CPU seconds of its process
    and of its PostgreSQL backends (read every half second while it runs)."""
    from cam.models import Campaign

    campaign = Campaign.objects.create(name=f"bench import (DEBUG {'on' if debug else 'off'})")
    # The settings read DEBUG (not DJANGO_DEBUG), and refuse to start with it off and no SECRET_KEY.
    env = {**os.environ, "DATABASE_URL": database, "DEBUG": "true" if debug else "false",
           "SECRET_KEY": os.environ.get("SECRET_KEY") or "bench-imports-" + "x" * 50,
           "AICMO_CAM_IMPORT_DIRS": str(path.parent)}
    backends: dict[int, float] = {}
    with tempfile.TemporaryFile("w+") as output:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "cam_import_leads", str(path),
                                    "--campaign", str(campaign.pk), "--no-progress", "--show-rejected", "0"],
                                   env=env, stdout=output, stderr=subprocess.STDOUT, text=True)
        with connection.cursor() as cursor:
            while True:
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)
                if pid:
                    break
                cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                               "AND pid <> pg_backend_pid()")
                for (backend,) in cursor.fetchall():
                    backends[backend] = max(backends.get(backend, 0.0), backend_cpu(backend))
                time.sleep(0.5)
        elapsed = time.perf_counter() - started
        output.seek(0)
        out = output.read()
    if status:
        raise SystemExit(f"cam_import_leads failed:\n{out}")
    return (elapsed, usage.ru_maxrss // 1024, out.strip().splitlines()[-1], usage.ru_utime + usage.ru_stime,
            sum(backends.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="Keep the database test_<name> afterwards.")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        raise SystemExit("bench/imports.py needs PostgreSQL: set DATABASE_URL=postgres://…")
    old_name = connection.creation.create_test_db(verbosity=0, keepdb=args.keep)
    settings = connection.settings_dict
    database = (f"postgres://{settings['USER']}@{settings['HOST']}:{settings['PORT']}/{settings['NAME']}")
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "leads.csv"
            started = time.perf_counter()
            write_csv(path, args.rows)
            print(f"{args.rows:,} rows, {path.stat().st_size / 1e6:.0f} MB written in "
                  f"{time.perf_counter() - started:.0f} s; load average {os.getloadavg()[0]:.1f}")
            copy_seconds = baseline(path)
            print(f"baseline  COPY into an unindexed table: {copy_seconds:6.1f} s  "
                  f"{args.rows / copy_seconds:9,.0f} rows/s")
            cpu = own_backend_cpu()
            floor_seconds = database_floor(path)
            print(f"floor     COPY, then INSERT … SELECT into cam_lead: {floor_seconds:6.1f} s  "
                  f"{args.rows / floor_seconds:9,.0f} rows/s  (CPU: PostgreSQL {own_backend_cpu() - cpu:.1f} s)")
            for debug in (False, True):
                seconds, rss, summary, process_cpu, database_cpu = cam_import(path, database, debug=debug)
                print(f"CAM, DEBUG {'on ' if debug else 'off'}: {seconds:6.1f} s  {args.rows / seconds:9,.0f} rows/s  "
                      f"({floor_seconds / seconds:5.1%} of the floor; target 30,000 rows/s)  peak RSS {rss} MB "
                      f"(target 300)\n  CPU: the command {process_cpu:.1f} s, PostgreSQL {database_cpu:.1f} s\n"
                      f"  {summary}")
            print(f"load average {os.getloadavg()[0]:.1f}")
    finally:
        connection.close()
        if not args.keep:
            connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
