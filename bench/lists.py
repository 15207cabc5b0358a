"""The back office's big lists at scale, with Django's defaults and CAM's way, on the same data (PostgreSQL).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python bench/lists.py --leads 1000000

Builds a scratch database of 200 campaigns, ``--leads`` leads, two emails each, a reply to one email in
nineteen (one raw message in five hundred a megabyte), an event per lead and 300,000 job runs, then opens
each list as staff would and prints the page's time, its queries and their time. Django's defaults: the
whole table counted twice, a date drill-down, whole rows, none of the lists' indexes (migration 0010).
Building the data takes a few minutes at a million leads.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aicmo_site.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib import admin  # noqa: E402
from django.core.paginator import Paginator  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402

LISTS = ["lead/", "lead/?status__exact=WON", "outboundemail/", "outboundemail/?status__exact=FAILED",
         "inboundemail/", "campaign/", "leadevent/", "jobexecution/"]
DRILL_DOWN = {"Lead": "created_at", "OutboundEmail": "created_at", "InboundEmail": "created_at",
              "LeadEvent": "created_at", "JobExecution": "started_at"}

DATA = [
    """INSERT INTO cam_lead (email, first_name, last_name, company, title, industry, country, website, timezone,
         is_role_account, is_free_mail, raw_data, score, score_breakdown, status, status_reason, current_step,
         blocked_reason, created_at, updated_at, campaign_id, next_send_at)
       SELECT 'lead' || g || '@company' || (g % 50000) || '.example.com', 'First' || g, 'Last' || g,
         'Company ' || (g % 50000), 'CTO', 'software', 'DE', '', '', false, false, '{"row": 1}'::jsonb, g % 101,
         '{}'::jsonb, (ARRAY['NEW','QUALIFIED','IN_SEQUENCE','IN_SEQUENCE','IN_SEQUENCE','DEAD','NURTURE',
         'INTERESTED','BOUNCED','WON'])[1 + g % 10], '', 1, '', now() - (g || ' seconds')::interval, now(),
         (SELECT min(id) FROM cam_campaign) + g % 200,
         CASE WHEN g % 3 = 0 THEN now() + (g % 1000 || ' minutes')::interval END
       FROM generate_series(1, %(leads)s) g""",
    """INSERT INTO outbound_emails (to_email, from_email, subject, body_text, body_html, message_id, in_reply_to,
         "references", status, attempts, soft_bounces, last_error, claimed_by, provider, provider_message_id,
         sent_at, created_at, updated_at, campaign_id, lead_id, mailbox_id, step_id, kind, idempotency_key)
       SELECT l.email, 'sender@outreach.test', 'Quick question ' || l.id, repeat('Hi there, fewer chores? ', 60),
         repeat('<p>Hi there</p>', 60), '<cam.' || l.id || '.' || s.n || '@outreach.test>', '', '',
         CASE WHEN (l.id + s.n) % 20 = 0 THEN 'FAILED' WHEN (l.id + s.n) % 20 = 1 THEN 'PENDING' ELSE 'SENT' END,
         1, 0, '', '', 'smtp', '', l.created_at + interval '1 hour', l.created_at + (s.n || ' hours')::interval,
         now(), l.campaign_id, l.id, (SELECT min(id) FROM cam_mailbox) + l.id % 20,
         (SELECT st.id FROM cam_sequencestep st WHERE st.campaign_id = l.campaign_id AND st.position = s.n),
         'sequence', ''
       FROM cam_lead l CROSS JOIN (VALUES (1), (2)) s(n)""",
    """INSERT INTO cam_inboundemail (folder, uidvalidity, uid, message_id, in_reply_to, "references", from_email,
         from_name, subject, received_at, new_text, raw_message, raw_truncated, category, confidence,
         classification_reasons, classified_by, failed_recipients, bounce_status_code, referral_email,
         processed_at, alert_sent, created_at, lead_id, mailbox_id, outbound_email_id, confirmation, confirmation_by,
         reported_domain)
       SELECT 'INBOX', 1, o.id, '<r.' || o.id || '@lead.test>', o.message_id, '', o.to_email, '', 'Re: ' || o.subject,
         o.sent_at, 'Sounds interesting, let us talk next week.',
         convert_to(repeat('x', CASE WHEN o.id %% 500 = 0 THEN 1048576 ELSE 3000 END), 'UTF8'), false,
         (ARRAY['POSITIVE','NEGATIVE','NEUTRAL','OUT_OF_OFFICE','BOUNCE_HARD','AUTO_REPLY','QUESTION',
         'UNSUBSCRIBE'])[1 + o.id %% 8], 0.9, '["phrase"]'::jsonb, 'classifier', '[]'::jsonb, '', '', now(), false,
         o.sent_at + interval '1 day', o.lead_id, o.mailbox_id, o.id, '', '', ''
       FROM outbound_emails o WHERE o.status = 'SENT' AND o.id %% 19 = 0""",
    """INSERT INTO cam_leadevent (from_status, to_status, actor, reason, created_at, lead_id)
       SELECT 'NEW', 'QUALIFIED', 'system:qualify', 'score 70', created_at, id FROM cam_lead""",
    """INSERT INTO cam_jobexecution (execution_id, job, status, trigger, reason, params, counts, error, traceback,
         worker_id, holder, started_at, finished_at)
       SELECT 'worker_cycle:' || g, 'worker_cycle', 'COMPLETED', 'schedule', '', '{}'::jsonb,
         '{"steps": {"send": {"sent": 3}}}'::jsonb, '', '', 'w1', 'w1', now() - (g || ' minutes')::interval,
         now() - (g || ' minutes')::interval + interval '2 seconds' FROM generate_series(1, 300000) g""",
]


def build(leads: int) -> None:
    from cam.decisions import metrics_compute
    from tests import factories

    factories.SuperuserFactory(username="bench")
    for n in range(200):
        campaign = factories.CampaignFactory(name=f"Campaign {n:03d}: enterprise logistics decision makers")
        factories.SequenceStepFactory(campaign=campaign, position=1)
        factories.SequenceStepFactory(campaign=campaign, position=2)
    factories.MailboxFactory.create_batch(20)
    with connection.cursor() as cursor:
        for statement in DATA:
            cursor.execute(statement.replace("%(leads)s", str(leads)).replace("%%", "%"))
    started = time.perf_counter()
    metrics_compute()
    print(f"  the worker's metrics step over this data: {time.perf_counter() - started:.1f} s")


def list_indexes() -> list[tuple[str, str]]:
    """The indexes migration 0010 added, as (name, definition)."""
    names = ["lead_created_idx", "lead_status_created_idx", "lead_event_created_idx", "outbound_created_idx",
             "provider_event_received_idx", "suppression_created_idx", "inbound_triage_idx"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE indexname = ANY(%s)", [names])
        return cursor.fetchall()


def analyse() -> None:
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def django_defaults() -> None:
    """Each list admin as Django would have it: counted twice and exactly, a date drill-down, whole rows."""
    for model, model_admin in admin.site._registry.items():
        if getattr(model_admin, "list_defer", None) is None:
            continue
        model_admin.paginator = Paginator
        model_admin.show_full_result_count = True
        model_admin.list_defer = ()
        model_admin.date_hierarchy = DRILL_DOWN.get(model.__name__)


def open_lists(client: Client) -> None:
    for url in LISTS:
        best = float("inf")
        for _ in range(3):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(f"/admin/cam/{url}")
                best = min(best, time.perf_counter() - started)
            assert response.status_code == 200, (url, response.status_code)
        sql = sum(float(query["time"]) for query in queries.captured_queries)
        print(f"  {url:<38} {best:6.2f} s   {len(queries):>2} queries, {sql:6.3f} s of them")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("The lists' figures are PostgreSQL's: set DATABASE_URL to a PostgreSQL database.")

    setup_test_environment()
    settings.ALLOWED_HOSTS = ["*"]
    old_name = connection.creation.create_test_db(verbosity=0)
    try:
        print(f"building {args.leads:,} leads, {2 * args.leads:,} emails …")
        build(args.leads)
        client = Client()
        from django.contrib.auth import get_user_model

        client.force_login(get_user_model().objects.get(username="bench"))
        indexes = list_indexes()
        with connection.cursor() as cursor:
            for name, _ in indexes:
                cursor.execute(f"DROP INDEX {name}")
        analyse()
        saved = {model_admin: dict(vars(model_admin)) for model_admin in admin.site._registry.values()}
        django_defaults()
        print("Django's defaults")
        open_lists(client)
        for model_admin, attributes in saved.items():
            for name in ("paginator", "show_full_result_count", "list_defer", "date_hierarchy"):
                if name in attributes:
                    setattr(model_admin, name, attributes[name])
                elif name in vars(model_admin):
                    delattr(model_admin, name)
        with connection.cursor() as cursor:
            for _, definition in indexes:
                cursor.execute(definition)
        analyse()
        print("CAM")
        open_lists(client)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
