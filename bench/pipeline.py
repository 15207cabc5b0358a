"""Harvest and scoring, the naive way and CAM's way, on the same data; prints times, queries and ratios.

    .venv/bin/python bench/pipeline.py --rows 5000            # SQLite in a temporary file
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/pipeline.py

The naive way is what a first version usually does: one suppression check, one get_or_create and
one save per record. The database is created in a scratch schema/file and dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aicmo_site.settings")
os.environ.setdefault("DATABASE_URL", f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django

django.setup()

from django.db import connection, reset_queries  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402


def records(rows: int):
    from cam.sources import SourceRecord

    for n in range(rows):
        yield SourceRecord(line=n + 2, data={
            "email": f"person{n}@company{n % 2000}.example.com", "first_name": f"Anna{n}", "last_name": "Schmidt",
            "company": f"Company {n % 2000}", "title": ["CTO", "Head of Sales", "Engineer"][n % 3],
            "industry": ["software", "retail", "logistics"][n % 3], "country": ["DE", "FR", "AT"][n % 3],
            "company_size": str(10 + n % 3000)})


def naive_harvest(campaign, rows: int) -> None:
    from cam.models import Lead, Suppression
    from cam.pipeline.records import RejectedRecord, clean_record

    for record in records(rows):
        try:
            clean = clean_record(record.data)
        except RejectedRecord:
            continue
        if Suppression.objects.filter(email=clean.address.email).exists() or Suppression.objects.filter(
                domain=clean.address.domain).exists():
            continue
        Lead.objects.get_or_create(campaign=campaign, email=clean.address.email, defaults=clean.fields)


def naive_score(campaign) -> None:
    from cam.models import Lead
    from cam.pipeline.scoring import score_lead

    for lead in Lead.objects.filter(campaign=campaign):
        result = score_lead(lead, campaign)
        lead.score, lead.score_breakdown = result.value, result.breakdown
        lead.save(update_fields=["score", "score_breakdown"])


def measure(label: str, work) -> tuple[float, int]:
    reset_queries()
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        work()
        took = time.perf_counter() - started
    print(f"  {label:<6} {took:8.2f} s {len(queries):>8} queries")
    return took, len(queries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    args = parser.parse_args()

    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0)
    try:
        from cam.models import Campaign
        from cam.pipeline.intake import leads_intake
        from cam.pipeline.scoring import leads_score
        from cam.sources.base import LeadSourceBackend

        mapper = LeadSourceBackend({}).map_record
        naive = Campaign.objects.create(name="naive", icp_industries=["software"], icp_title_keywords=["cto"],
                                        icp_countries=["DE"], icp_company_size_min=50, icp_company_size_max=500)
        cam = Campaign.objects.create(name="cam", icp_industries=["software"], icp_title_keywords=["cto"],
                                      icp_countries=["DE"], icp_company_size_min=50, icp_company_size_max=500)
        print(f"{args.rows} records on {connection.vendor}")
        for title, slow, fast in [
            ("harvest", lambda: naive_harvest(naive, args.rows),
             lambda: leads_intake(campaign=cam, records=records(args.rows), map_record=mapper)),
            ("score", lambda: naive_score(naive), lambda: leads_score(campaign=cam)),
        ]:
            print(title)
            naive_time, _ = measure("naive", slow)
            cam_time, _ = measure("CAM", fast)
            print(f"  CAM is {naive_time / cam_time:.1f}× faster")
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
