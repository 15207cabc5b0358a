"""The dashboard and the busiest admin lists on a large database: server time and queries per page.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python bench/dashboard.py
    DATABASE_URL=… .venv/bin/python bench/dashboard.py --keep --explain   # reuse the data; print the plans

PostgreSQL only. Builds, in a database of its own (``test_<name>``, dropped at the end unless
``--keep``): 200 campaigns with seven steps each and the default rules, 50 mailboxes, 300,000 leads,
2,000,000 outbound emails sent evenly over two years (about 2,700 a day: 50 mailboxes at their daily
cap, DESIGN's "50 inboxes × 50 a day"), 200,000 replies, 100,000 provider events and 60,000 job runs
(a worker cycle a minute for the last week). The big tables are filled with ``INSERT … SELECT
generate_series`` and analysed, as autovacuum would have them on a live database.

Then, with a staff user through ``django.test.Client`` (the whole request: middleware, session, the
queries, the template; DEBUG off as in production), each page is requested once to warm up and then
``--repeat`` times, the pages taking turns so that all see the same load; the median and the fastest
are printed with the CPU time a request costs (this process and its PostgreSQL backend: what the page
would take on a machine of its own), the number of queries and the target. ``get_dashboard()`` and each figure of
``cam.reporting`` are timed on their own too, so a slow page says where its time goes. ``--explain``
prints each reporting query's plan (EXPLAIN ANALYZE) and the indexes it used.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aicmo_site.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django

django.setup()

from cpu import process_cpu  # noqa: E402  # bench/cpu.py
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

CAMPAIGNS, STEPS, MAILBOXES = 200, 7, 50
LEADS, EMAILS, REPLIES, EVENTS = 300_000, 2_000_000, 200_000, 100_000
DAYS = 730  # the emails' time span
WEEK_OF_CYCLES = 7 * 24 * 60

# (what, path or callable, target in ms)
PAGE_TARGETS = [
    ("dashboard GET /admin/", "/admin/", 150),
    ("dashboard, today", "/admin/?period=today", 150),
    ("dashboard, 30 days", "/admin/?period=30d", 150),
    ("leads changelist", "/admin/cam/lead/", 300),
    ("outbound changelist", "/admin/cam/outboundemail/", 300),
    ("replies changelist", "/admin/cam/inboundemail/", 300),
    ("replies inbox (the desk)", "/admin/cam/reply/", 300),
]

BODY = ("Hi Anna,\n\nteams like yours at Brightlane usually lose a day a week to hand-offs between sales and "
        "operations. We built a small tool that cuts that to an hour. Would a 15-minute call next week be "
        "worth it? If not, just say so and I will not write again.\n\nBest,\nAlex\n\n--\nCAM GmbH, "
        "Hauptstraße 1, 10115 Berlin. Unsubscribe: https://outreach.example.com/u/…")


def build() -> None:
    """The small tables through the ORM (so every default is Django's), the big ones in SQL."""
    from django.core.management import call_command
    from django.utils import timezone

    from cam.campaigns import campaign_rules_ensure_defaults
    from cam.jobs.schedules import schedules_install
    from cam.models import Campaign, Mailbox, SequenceStep, WorkerHeartbeat

    call_command("flush", interactive=False, verbosity=0)  # what a half-built earlier run left

    started = time.perf_counter()
    mailboxes = Mailbox.objects.bulk_create([
        Mailbox(name=f"Sales desk {n:02}", from_email=f"desk{n}@outreach.example.com", daily_cap=60,
                min_gap_seconds=0) for n in range(MAILBOXES)])
    campaigns = Campaign.objects.bulk_create([
        Campaign(name=f"Campaign {n:03}", status=Campaign.Status.PAUSED if n % 10 == 9 else Campaign.Status.ACTIVE,
                 icp_industries=["software"], icp_title_keywords=["cto"], icp_countries=["DE"])
        for n in range(CAMPAIGNS)])
    for n, campaign in enumerate(campaigns):
        campaign.mailboxes.set([mailboxes[n % MAILBOXES], mailboxes[(n + 1) % MAILBOXES]])
        campaign_rules_ensure_defaults(campaign)
    steps = SequenceStep.objects.bulk_create([
        SequenceStep(campaign=campaign, position=position, delay_days=3,
                     subject_template="{{ company }} and fewer hand-offs" if position == 1 else "",
                     body_template=BODY) for campaign in campaigns for position in range(1, STEPS + 1)])
    schedules_install()
    for n in (1, 2):
        WorkerHeartbeat.objects.create(worker_id=f"host-{n}", hostname=f"host-{n}", pid=100 + n,
                                       status=WorkerHeartbeat.Status.IDLE, last_seen_at=timezone.now(),
                                       cycles_completed=5000)

    params = {"campaigns": [c.pk for c in campaigns], "mailboxes": [m.pk for m in mailboxes],
              "steps": [s.pk for s in steps], "leads": LEADS, "emails": EMAILS, "replies": REPLIES,
              "events": EVENTS, "days": DAYS, "n_campaigns": CAMPAIGNS, "n_mailboxes": MAILBOXES, "n_steps": STEPS,
              "cycles": WEEK_OF_CYCLES, "body": BODY}
    with connection.cursor() as cursor:
        for label, sql in STATEMENTS:
            began = time.perf_counter()
            cursor.execute(sql, params)
            print(f"  {label:<18} {cursor.rowcount:>10,} rows {time.perf_counter() - began:7.1f} s")
        for table in ("cam_lead", "outbound_emails", "cam_inboundemail", "cam_providerevent", "cam_jobexecution"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    began = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    print(f"  {'vacuum analyze':<18} {'':>15} {time.perf_counter() - began:7.1f} s")
    print(f"  built in {time.perf_counter() - started:.0f} s")


# Lead i belongs to campaign i % 200. Emails go out in order: email j is to lead j % 300,000, step
# j // 300,000 + 1, sent at an even pace from two years ago until now; reply k answers email 10 k + 3,
# provider event m is about email 20 m + 7. Statuses and categories are spread by a multiplicative hash
# of a number that does not repeat with the campaign, so each campaign has leads of every status.
EMAIL_TIME = "(now() - %(days)s * interval '1 day' + (j::float / %(emails)s) * %(days)s * interval '1 day')"
STATEMENTS = [
    ("leads", """
        INSERT INTO cam_lead (id, campaign_id, email, first_name, last_name, company, title, industry, country,
            company_size, website, timezone, is_role_account, is_free_mail, raw_data, score, score_breakdown,
            status, status_reason, status_changed_at, current_step, blocked_reason, last_contacted_at, replied_at,
            created_at, updated_at)
        SELECT i + 1, (%(campaigns)s::bigint[])[1 + i %% %(n_campaigns)s],
               'person' || i || '@company' || (i %% 60000) || '.example.com', 'Anna', 'Schmidt',
               'Company ' || (i %% 60000), 'CTO', 'software', 'DE', 10 + i %% 3000, '', '', false, false, '{}',
               40 + i %% 60, '{}', s.status, '',
               now() - (i %% %(days)s) * interval '1 day' - (i %% 1440) * interval '1 minute',
               CASE WHEN s.contacted THEN 1 + i %% 7 ELSE 0 END, '',
               CASE WHEN s.contacted THEN now() - (i %% %(days)s) * interval '1 day' END,
               CASE WHEN s.replied THEN now() - (i %% %(days)s) * interval '1 day' END,
               now() - %(days)s * interval '1 day', now()
        FROM generate_series(0::bigint, %(leads)s - 1) AS i
        CROSS JOIN LATERAL (SELECT ((i / %(n_campaigns)s) * 7919) %% 100 AS bucket) AS h
        CROSS JOIN LATERAL (SELECT
            CASE WHEN bucket < 10 THEN 'NEW' WHEN bucket < 20 THEN 'DISQUALIFIED' WHEN bucket < 25 THEN 'QUALIFIED'
                 WHEN bucket < 58 THEN 'IN_SEQUENCE' WHEN bucket < 60 THEN 'PAUSED' WHEN bucket < 74 THEN 'NURTURE'
                 WHEN bucket < 82 THEN 'DEAD' WHEN bucket < 88 THEN 'NOT_INTERESTED' WHEN bucket < 92 THEN 'INTERESTED'
                 WHEN bucket < 95 THEN 'BOUNCED' WHEN bucket < 97 THEN 'UNSUBSCRIBED' WHEN bucket < 98 THEN 'LOST'
                 ELSE 'WON' END AS status,
            bucket >= 25 AS contacted,
            bucket >= 82 AND bucket NOT IN (92, 93, 94) AS replied) AS s
    """),
    ("outbound emails", f"""
        INSERT INTO outbound_emails (id, lead_id, step_id, campaign_id, mailbox_id, to_email, from_email, subject,
            body_text, body_html, message_id, in_reply_to, "references", status, attempts, soft_bounces,
            last_error, claimed_by, provider, provider_message_id, sent_at, created_at, updated_at, kind,
            idempotency_key)
        SELECT j + 1, lead + 1,
               (%(steps)s::bigint[])[1 + (lead %% %(n_campaigns)s) * %(n_steps)s + j / %(leads)s],
               (%(campaigns)s::bigint[])[1 + lead %% %(n_campaigns)s],
               (%(mailboxes)s::bigint[])[1 + j %% %(n_mailboxes)s],
               'person' || lead || '@company' || (lead %% 60000) || '.example.com', 'Alex <desk@outreach.example.com>',
               'Company ' || (lead %% 60000) || ' and fewer hand-offs', %(body)s, '',
               '<cam.' || j || '@outreach.example.com>', '', '', s.status, 1, 0, '', '', 'smtp', '',
               CASE WHEN s.status = 'SENT' THEN {EMAIL_TIME} END,
               {EMAIL_TIME} - interval '2 minutes', {EMAIL_TIME}, 'sequence', ''
        FROM generate_series(0::bigint, %(emails)s - 1) AS j
        CROSS JOIN LATERAL (SELECT j %% %(leads)s AS lead) AS l
        CROSS JOIN LATERAL (SELECT CASE
            WHEN j >= %(emails)s - 300 THEN 'PENDING' WHEN (j * 7919) %% 100 < 2 THEN 'FAILED'
            WHEN (j * 7919) %% 100 < 3 THEN 'CANCELLED' ELSE 'SENT' END AS status) AS s
    """),
    ("replies", f"""
        INSERT INTO cam_inboundemail (id, mailbox_id, folder, uidvalidity, uid, message_id, in_reply_to, "references",
            from_email, from_name, subject, received_at, new_text, raw_message, raw_truncated, outbound_email_id,
            lead_id, category, confidence, classification_reasons, classified_at, classified_by, failed_recipients,
            bounce_status_code, referral_email, reported_domain, confirmation, confirmation_by, processed_at,
            alert_sent, created_at)
        SELECT k + 1, (%(mailboxes)s::bigint[])[1 + j %% %(n_mailboxes)s], 'INBOX', 1, k + 1,
               '<reply.' || k || '@company.example.com>', '<cam.' || j || '@outreach.example.com>', '',
               'person' || (j %% %(leads)s) || '@company.example.com', 'Anna Schmidt', 'Re: a quick question',
               at, 'Thanks, this sounds interesting. Could we talk on Tuesday?',
               convert_to(repeat('Received: from mx.company.example.com by mail.outreach.example.com; ', 30), 'UTF8'),
               false, j + 1, (j %% %(leads)s) + 1, c.category, 0.9, '[]', at, 'classifier', '[]', '', '', '',
               CASE WHEN c.category IN ('BOUNCE_HARD', 'COMPLAINT') AND k %% 10 = 0 THEN 'NEEDED' ELSE '' END, '',
               at, false, at
        FROM generate_series(0::bigint, %(replies)s - 1) AS k
        CROSS JOIN LATERAL (SELECT 10 * k + 3 AS j) AS e
        CROSS JOIN LATERAL (SELECT LEAST(now(), {EMAIL_TIME} + (k %% 48) * interval '1 hour') AS at) AS t
        CROSS JOIN LATERAL (SELECT ((k / 20) * 7919) %% 100 AS bucket) AS h
        CROSS JOIN LATERAL (SELECT CASE
            WHEN bucket < 8 THEN 'POSITIVE' WHEN bucket < 23 THEN 'NEGATIVE' WHEN bucket < 33 THEN 'NEUTRAL'
            WHEN bucket < 38 THEN 'QUESTION' WHEN bucket < 40 THEN 'REFERRAL' WHEN bucket < 45 THEN 'UNSUBSCRIBE'
            WHEN bucket < 70 THEN 'OUT_OF_OFFICE' WHEN bucket < 80 THEN 'AUTO_REPLY' WHEN bucket < 95 THEN 'BOUNCE_HARD'
            WHEN bucket < 99 THEN 'BOUNCE_SOFT' ELSE 'COMPLAINT' END AS category) AS c
    """),
    ("provider events", f"""
        INSERT INTO cam_providerevent (id, provider, event_id, event_type, provider_message_id, outbound_email_id,
            recipient, description, payload, occurred_at, received_at)
        SELECT m + 1, 'resend', 'evt_' || m,
               CASE WHEN (m * 7919) %% 100 < 8 THEN 'bounced' WHEN (m * 7919) %% 100 < 10 THEN 'complained'
                    ELSE 'delivered' END,
               're_' || m, j + 1, 'person' || (j %% %(leads)s) || '@company.example.com', '', '{{}}',
               {EMAIL_TIME} + interval '5 minutes', {EMAIL_TIME} + interval '5 minutes'
        FROM generate_series(0::bigint, %(events)s - 1) AS m
        CROSS JOIN LATERAL (SELECT 20 * m + 7 AS j) AS e
    """),
    ("job runs", """
        INSERT INTO cam_jobexecution (id, execution_id, job, status, trigger, reason, params, counts, error, traceback,
            worker_id, holder, scheduled_for, started_at, finished_at)
        SELECT r + 1, 'worker_cycle:global:' || r, 'worker_cycle',
               CASE WHEN r %% 97 = 0 THEN 'FAILED' ELSE 'COMPLETED' END, 'schedule', '', '{}',
               '{"sent": 3, "polled": 12, "classified": 2}',
               CASE WHEN r %% 97 = 0 THEN 'inbox: IMAP login refused' ELSE '' END, '', 'host-1', '',
               at, at, at + (1 + r %% 7) * interval '1 second' + (r %% 1000) * interval '1 millisecond'
        FROM generate_series(0::bigint, 60000 - 1) AS r
        CROSS JOIN LATERAL (SELECT now() - r * interval '1 minute' AS at) AS t
    """),
]


def backend_cpu_seconds() -> float:
    """CPU time the database connection's PostgreSQL backend has used (it runs on this machine)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return process_cpu(cursor.fetchone()[0])


def in_turns(works: list[tuple[str, Callable[[], Any]]], repeat: int) -> dict[str, tuple[float, float, float, int]]:
    """Per work: the median and the fastest of ``repeat`` timed runs, the CPU time a run costs (this
    process and its PostgreSQL backend, averaged over the runs), and the queries of one run.

    The works take turns, one run of each per round, so that all of them see the same load on a shared
    machine; each runs once first to warm up (the first request also loads templates and fills caches).
    The CPU time does not depend on that load: it is what the work costs on a machine of its own,
    less what parallel query workers do, which the dashboard's plans do not use.
    """
    for _, work in works:
        work()
    times: dict[str, list[float]] = {label: [] for label, _ in works}
    cpu: dict[str, float] = {label: 0.0 for label, _ in works}
    for _ in range(repeat):
        for label, work in works:
            backend, process = backend_cpu_seconds(), time.process_time()
            began = time.perf_counter()
            work()
            times[label].append((time.perf_counter() - began) * 1000)
            cpu[label] += time.process_time() - process + backend_cpu_seconds() - backend
    result = {}
    for label, work in works:
        with CaptureQueriesContext(connection) as queries:
            work()
        result[label] = (statistics.median(times[label]), min(times[label]), 1000 * cpu[label] / repeat,
                         len(queries))
    return result


def report(label: str, took: float, fastest: float, cpu: float, queries: int, target: float | None = None) -> None:
    verdict = "" if target is None else ("  within target" if took <= target else "  OVER TARGET")
    goal = "" if target is None else f"  (target {target} ms)"
    print(f"  {label:<32} {took:8.1f} ms  fastest {fastest:7.1f}  CPU {cpu:7.1f} ms {queries:>4} queries"
          f"{goal}{verdict}")


def get(client, path: str) -> Callable[[], Any]:
    def request() -> None:
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
    return request


def explain() -> None:
    """Each reporting query's plan, and the indexes it reads."""
    import re

    from cam import reporting

    print("\nPlans (EXPLAIN ANALYZE) of the reporting queries")
    for name, work in [("kpis 30d", lambda: reporting.kpis("30d")),
                       ("daily_series, past days unread", lambda: (reporting.closed_days.forget(),
                                                                   reporting.daily_series())),
                       ("campaign_funnels, the dozen shown", lambda: reporting.campaign_funnels(limit=12)),
                       ("campaign_funnels, every campaign", reporting.campaign_funnels),
                       ("replies_by_category 30d", lambda: reporting.replies_by_category("30d")),
                       ("mailbox_sends_today", reporting.mailbox_sends_today)]:
        with CaptureQueriesContext(connection) as queries:
            work()
        for number, query in enumerate(queries.captured_queries, 1):
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + query["sql"])
                plan = [row[0] for row in cursor.fetchall()]
            text = "\n".join(plan)
            indexes = sorted(set(re.findall(r"Index (?:Only )?Scan (?:Backward )?using (\w+)", text))
                             | set(re.findall(r"Bitmap Index Scan on (\w+)", text)))
            seq = sorted(set(re.findall(r"Seq Scan on (\w+)", text)))
            print(f"\n-- {name} #{number}: {plan[-1].strip()}; indexes: {', '.join(indexes) or 'none'}"
                  f"{'; seq scans: ' + ', '.join(seq) if seq else ''}")
            print("\n".join(plan))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per page (the median is shown)")
    parser.add_argument("--keep", action="store_true", help="keep the database, and reuse it when it is there")
    parser.add_argument("--explain", action="store_true", help="print the reporting queries' plans")
    parser.add_argument("--metrics-step", action="store_true",
                        help="also time the worker's metrics step (cam.decisions.metrics_compute) once")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("bench/dashboard.py runs on PostgreSQL: set DATABASE_URL=postgres://…")

    from django.conf import settings

    # As in production: DEBUG off (no query log), and the templates not instrumented as the test
    # environment would (its copy of every template's context would be timed with the page).
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["testserver"]
    old_name = connection.creation.create_test_db(verbosity=0, keepdb=args.keep)
    try:
        from django.contrib.auth import get_user_model
        from django.test import Client

        from cam import reporting
        from cam.dashboard import get_dashboard
        from cam.jobs.run_hours import job_run_hours_roll_up
        from cam.models import Lead, OutboundEmail

        if Lead.objects.count() != LEADS:
            print(f"Building {CAMPAIGNS} campaigns, {LEADS:,} leads, {EMAILS:,} emails, {REPLIES:,} replies")
            build()
        with connection.cursor() as cursor:
            cursor.execute("SELECT version()")
            version = cursor.fetchone()[0].split(" on ")[0]
        print(f"{version}; {OutboundEmail.objects.count():,} emails, {os.cpu_count()} CPUs")
        job_run_hours_roll_up()  # as the watchdog does every minute: get_dashboard()'s week of job runs

        client = Client()
        admin = get_user_model().objects.filter(username="bench-admin").first()
        client.force_login(admin or get_user_model().objects.create_superuser("bench-admin", "bench@cam.test", None))
        print(f"\nPages (median of {args.repeat} after a warm-up; load average {os.getloadavg()[0]:.1f})")
        pages = in_turns([(label, get(client, path)) for label, path, _ in PAGE_TARGETS], args.repeat)
        for label, _, target in PAGE_TARGETS:
            report(label, *pages[label], target)
        print(f"\nParts (load average {os.getloadavg()[0]:.1f})")
        def overview_cold() -> None:
            reporting.closed_days.forget()
            reporting.overview("30d")

        parts = in_turns([("get_dashboard()", get_dashboard),
                          ("reporting.overview('30d')", lambda: reporting.overview("30d")),
                          ("overview('30d'), past days unread", overview_cold),
                          ("reporting.kpis('7d')", lambda: reporting.kpis("7d")),
                          ("reporting.kpis('30d')", lambda: reporting.kpis("30d")),
                          ("reporting.daily_series()", reporting.daily_series),
                          ("reporting.campaign_funnels(12)", lambda: reporting.campaign_funnels(limit=12)),
                          ("reporting.campaign_funnels()", reporting.campaign_funnels),
                          ("reporting.replies_by_category", lambda: reporting.replies_by_category("30d")),
                          ("reporting.mailbox_sends_today", reporting.mailbox_sends_today)], args.repeat)
        for label, figures in parts.items():
            report(label, *figures)
        if args.metrics_step:
            from cam.decisions import metrics_compute

            began = time.perf_counter()
            with CaptureQueriesContext(connection) as queries:
                metrics_compute()
            took = (time.perf_counter() - began) * 1000
            report("metrics_compute() (once)", took, took, float("nan"), len(queries))
        if args.explain:
            explain()
    finally:
        if not args.keep:
            connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
