"""The worker at scale: the idle cycle, the metrics step, a cycle that sends five emails, one that also
processes three replies, and ``get_dashboard()``, over 200 campaigns and 2,000,000 outbound emails.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python bench/worker.py [--keep] [--repeat 7]

PostgreSQL only. The data is ``bench/dashboard.py``'s (built with ``INSERT … SELECT generate_series`` into
``test_<name>``, reused with ``--keep``), with every lead's next send moved a year ahead so that a cycle
has nothing to send unless this script makes it so; the three replies are stored as a poll stores them
(``InboundEmail`` rows from a message's bytes), answering three of the latest sends, for the cycle's replies
step to classify, match and follow up. Each figure is the median of ``--repeat`` runs after
one to warm up, printed with the target and the ratio to it, the load average at the time (the
development machine is shared) and the fewest and most queries of a run. Then the same works run again
(at least three times) after another 50,000 emails, two campaigns and a week of cycle runs are added: a
fewest query count that grew with the data fails the script.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import redirect_stdout
from typing import Any

# The rules' decisions over this data (campaigns paused and degraded by the dozen) are logged as warnings: left
# out, so that the figures stand out, as are the emails the console mailboxes write out (``timed``).
os.environ.setdefault("LOG_LEVEL", "ERROR")

import dashboard  # the data builder; sets Django up
from django.db import connection
from django.test.utils import CaptureQueriesContext

TARGETS_MS = {"idle cycle": 500, "metrics step": 200, "cycle with 5 sends": 250,
              "cycle with 5 sends and 3 replies": 250, "get_dashboard()": 50}
REPLIES = (  # what three leads answer: an interested one (alerted at once), a question, an absence
    "Sounds interesting - could we talk on Thursday afternoon?",
    "What does it cost for a team of 40?",
    "I am out of the office until Monday with limited access to email.",
)


def timed(work: Callable[[], Any], repeat: int, prepare: Callable[[], Any] | None = None) -> tuple[float, int, int]:
    """The median of ``repeat`` runs (after one to warm up) in ms, and the fewest and most queries of a run.

    A run's queries depend on what changed since the last (a send grown five days old re-measures its
    campaign's rules, an email leaving the metrics window recounts its campaign), never on how much data
    there is: the fewest is the run with nothing of the kind, the one compared after the data grew."""
    times, queries = [], []
    for attempt in range(repeat + 1):
        if prepare is not None:
            prepare()
        connection.queries_log.clear()  # a full log (9,000 entries) would count no new query
        # The data's mailboxes are console mailboxes: the emails a cycle sends are written to a buffer, not
        # between the figures.
        with CaptureQueriesContext(connection) as captured, redirect_stdout(io.StringIO()):
            began = time.perf_counter()
            work()
            took = (time.perf_counter() - began) * 1000
        if attempt:
            times.append(took)
            queries.append(len(captured))
    return statistics.median(times), min(queries), max(queries)


def shown(fewest: int, most: int) -> str:
    return f"{fewest}" if fewest == most else f"{fewest}–{most}"


def nothing_due() -> None:
    """Every lead's next send a year ahead: a cycle sends only what this script makes due (and an idle cycle
    does not plan again the leads a cycle with sends left due but held back by a cap). Every campaign sends
    at any hour of any day, and no mailbox is warming up: what this script makes due is sent whenever it
    runs."""
    with connection.cursor() as cursor:
        cursor.execute("UPDATE cam_campaign SET send_days = '[1, 2, 3, 4, 5, 6, 7]', send_start_hour = 0,"
                       " send_end_hour = 24")
        # Nor held by a cap or the hour's share of one however often the script ran today.
        cursor.execute("UPDATE cam_mailbox SET warmup_enabled = false, daily_cap = 100000")
        cursor.execute("UPDATE cam_campaign SET daily_cap = 100000")
        cursor.execute("UPDATE cam_lead SET next_send_at = now() + interval '1 year' "
                       "WHERE next_send_at IS NULL OR next_send_at < now() + interval '1 day'")
        # As autovacuum would have it: the cycle's lead queries do not wade through the rows just rewritten.
        cursor.execute("VACUUM ANALYZE cam_lead")


def cycle() -> Any:
    from cam.jobs.cycle import worker_cycle_run

    result = worker_cycle_run(worker_id="bench-worker")
    assert result.status == "completed" and not result.errors, result.summary()
    return result


def sends_five() -> None:
    """A cycle with sends: it sent the five emails made due, no fewer."""
    result = cycle()
    sent = result.steps.get("send", {}).get("sent", 0)
    assert sent == 5, f"the cycle sent {sent} emails, not 5: {result.summary()}"


def five_due() -> None:
    """Five leads of one campaign made due for their last step, sent from one mailbox. The data gives most
    leads an email for every step whatever their ``current_step`` (planning one of those again plans nothing);
    the last leads have none for the last step, which these five are moved up to. One campaign and one mailbox:
    a send batch's queries are per mailbox, and the count compared after the data grew must not depend on how
    the five fell."""
    from django.db.models import Exists, OuterRef
    from django.utils import timezone

    from cam.models import Campaign, Lead, Mailbox, OutboundEmail

    last = dashboard.STEPS
    sent = OutboundEmail.objects.filter(lead=OuterRef("pk"), step__position=last)
    ready = (Lead.objects.filter(status=Lead.Status.IN_SEQUENCE, pk__gt=dashboard.EMAILS - (last - 1) * dashboard.LEADS,
                                 campaign__status__in=[Campaign.Status.ACTIVE, Campaign.Status.DEGRADED])
             .exclude(Exists(sent)).order_by("pk"))
    campaign_id = ready.values_list("campaign_id", flat=True).first()
    mailbox_id = Mailbox.objects.filter(campaigns=campaign_id).order_by("pk").values_list("pk", flat=True).first()
    due = ready.filter(campaign_id=campaign_id).values("pk")[:5]
    Lead.objects.filter(pk__in=due).update(current_step=last - 1, mailbox_id=mailbox_id,
                                           next_send_at=timezone.now() - timezone.timedelta(minutes=1))


def five_due_and_three_replies() -> None:
    five_due()
    three_replies()


def measure(repeat: int) -> dict[str, tuple[float, int, int]]:
    from cam.dashboard import get_dashboard
    from cam.decisions import metrics_step
    from cam.jobs.run_hours import job_run_hours_roll_up

    # What the watchdog does every minute: the closed hours of job runs rolled up for get_dashboard().
    job_run_hours_roll_up()
    nothing_due()
    results = {"metrics step": timed(metrics_step, repeat), "idle cycle": timed(cycle, repeat),
               "cycle with 5 sends": timed(sends_five, repeat, prepare=five_due),
               "get_dashboard()": timed(get_dashboard, repeat)}
    return results


def three_replies() -> None:
    """Three replies stored as a poll stores them, each answering one of the latest sends to a lead still in
    its sequence, in a folder of the sending mailbox."""
    from email.message import EmailMessage
    from email.utils import format_datetime

    from django.db.models import Max
    from django.utils import timezone

    from cam.inbox.imap import FetchedMessage
    from cam.inbox.polling import _row
    from cam.models import InboundEmail, Lead, MailboxFolder, OutboundEmail

    answered = list(OutboundEmail.objects.filter(status=OutboundEmail.Status.SENT, lead__status=Lead.Status.IN_SEQUENCE,
                                                 lead__replied_at__isnull=True)
                    .select_related("mailbox").order_by("-sent_at", "-pk")[:3])
    rows, uids = [], {}
    for email, text in zip(answered, REPLIES, strict=True):
        folder, _ = MailboxFolder.objects.get_or_create(mailbox=email.mailbox, name="INBOX",
                                                        defaults={"uidvalidity": 1, "last_uid": 0})
        if email.mailbox_id not in uids:
            uids[email.mailbox_id] = InboundEmail.objects.filter(
                mailbox=email.mailbox, folder="INBOX", uidvalidity=1).aggregate(Max("uid"))["uid__max"] or 0
        uid = uids[email.mailbox_id] = uids[email.mailbox_id] + 1
        message = EmailMessage()
        message["From"], message["To"] = email.to_email, email.mailbox.from_email
        message["Subject"], message["Date"] = f"Re: {email.subject}", format_datetime(timezone.now())
        message["Message-ID"] = f"<bench-{time.time_ns()}-{uid}@example.com>"
        message["In-Reply-To"] = message["References"] = email.message_id
        message.set_content(f"{text}\n\nOn Monday you wrote:\n> {email.body_text[:200]}")
        raw = message.as_bytes()
        rows.append(_row(folder=folder, uidvalidity=1,
                         message=FetchedMessage(uid=uid, raw=raw, size=len(raw), internal_date=timezone.now())))
    InboundEmail.objects.bulk_create(rows)


def changed_campaigns() -> int:
    """How many campaigns sent in the last quarter hour: each cycle measures their rules again."""
    from cam.decisions import LOOK_BACK

    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(DISTINCT campaign_id) FROM outbound_emails WHERE status = 'SENT'"
                       " AND sent_at >= now() - %s", [LOOK_BACK])
        return cursor.fetchone()[0]


def touch_recent() -> None:
    """A few sent emails changed now (their outcome rewritten as it was): a change the cycles look at."""
    with connection.cursor() as cursor:
        cursor.execute("""
            UPDATE outbound_emails SET updated_at = now()
            WHERE id IN (SELECT id FROM outbound_emails WHERE status = 'SENT' ORDER BY id DESC LIMIT 100)""")


def more_data() -> None:
    """50,000 emails more (sent in the last week), two campaigns with their rules, a week of cycle runs."""
    from cam.campaigns import campaign_rules_ensure_defaults
    from cam.models import Campaign

    more = [Campaign(name=f"More {n} {time.time()}", status=Campaign.Status.ACTIVE) for n in range(2)]
    for campaign in Campaign.objects.bulk_create(more):
        campaign_rules_ensure_defaults(campaign)
    with connection.cursor() as cursor:
        # Cancelled emails sent after all: 50,000 more sent in the last week, without new leads. Sent an hour ago
        # or more: a send made now is a change the next cycle counts (the cycle with sends measures that), and
        # these are the data growing, not a cycle's work.
        cursor.execute("""
            UPDATE outbound_emails SET status = 'SENT',
                   sent_at = now() - interval '1 hour' - (random() * 7) * interval '1 day', updated_at = now()
            WHERE id IN (SELECT id FROM outbound_emails WHERE status = 'CANCELLED' ORDER BY id LIMIT 50000)""")
        cursor.execute("""
            INSERT INTO cam_jobexecution (execution_id, job, status, trigger, reason, params, counts, error,
                traceback, worker_id, holder, started_at, finished_at)
            SELECT 'more-' || extract(epoch FROM now())::bigint || '-' || r, 'worker_cycle', 'COMPLETED', 'worker',
                   '', '{}', '{}', '', '', 'host-1', '',
                   now() - r * interval '1 minute', now() - r * interval '1 minute' + interval '2 seconds'
            FROM generate_series(1, 10080) AS r""")
        # Runs written straight into hours already rolled up: those hours are counted again, as they would
        # have been had the runs been recorded as they finished.
        cursor.execute("DELETE FROM cam_jobrunhour")
        cursor.execute("DELETE FROM cam_metriccursor WHERE name = 'job_run_hours'")
        cursor.execute("ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the database, and reuse it when it is there")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("bench/worker.py runs on PostgreSQL: set DATABASE_URL=postgres://…")
    from django.conf import settings

    settings.DEBUG = False
    # The positive reply's alert is sent at once, as in production, to a mailbox kept in memory.
    settings.AICMO_CAM_ALERT_EMAILS = ["sales-lead@example.com"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    # Not serialized: that would read every row into memory, for test cases this script does not run.
    old_name = connection.creation.create_test_db(verbosity=0, keepdb=args.keep, serialize=False)
    try:
        from cam.decisions import metric_days_refresh
        from cam.models import Lead, OutboundEmail

        if Lead.objects.count() != dashboard.LEADS or OutboundEmail.objects.count() < dashboard.EMAILS:
            print(f"Building {dashboard.CAMPAIGNS} campaigns, {dashboard.EMAILS:,} emails (bench/dashboard.py's data)")
            dashboard.build()
        with connection.cursor() as cursor:
            cursor.execute("SHOW jit")
            jit = cursor.fetchone()[0]
        print(f"{OutboundEmail.objects.count():,} emails; {os.cpu_count()} CPUs; jit {jit}")
        began = time.perf_counter()
        metric_days_refresh(full=True)
        print(f"  counting every day once (the first step after the upgrade): {time.perf_counter() - began:.1f} s")
        with connection.cursor() as cursor:
            # As autovacuum would have it (this machine's PostgreSQL runs without it): the tables every cycle
            # rewrites, and the days just counted again, without the dead rows of earlier runs.
            cursor.execute("SHOW autovacuum")
            print(f"  autovacuum {cursor.fetchone()[0]}; vacuuming the tables the cycles rewrite")
            cursor.execute("VACUUM ANALYZE cam_metricday, cam_metricsnapshot, cam_metriccursor, cam_rulemeasurement,"
                           " cam_worker_heartbeats, cam_lease")

        # The growth below is a change every cycle of the next quarter of an hour looks at (as real sends are): so
        # is this, so that both measurements meet the same kind of cycle, whenever the script last ran. Otherwise a
        # run started a quarter of an hour after the last saw no change before the growth and one after it, and
        # took the queries that measuring a change costs for queries grown with the data.
        touch_recent()
        print(f"\nmedian of {args.repeat}, load average {os.getloadavg()[0]:.1f}")
        before = measure(args.repeat)
        for label, (took, fewest, most) in before.items():
            target = TARGETS_MS[label]
            print(f"  {label:<34} {took:8.1f} ms  target {target} ms  ratio {took / target:5.2f} "
                  f"{shown(fewest, most):>7} queries{'' if took <= target else '  OVER TARGET'}")
        more_data()
        after = measure(max(3, args.repeat // 3))
        print(f"\nafter 50,000 emails, 2 campaigns and a week of runs more (load average {os.getloadavg()[0]:.1f})")
        grew = []
        for label, (took, fewest, most) in after.items():
            print(f"  {label:<34} {took:8.1f} ms {shown(fewest, most):>7} queries "
                  f"(before: {shown(*before[label][1:])})")
            if fewest > before[label][1]:
                grew.append(f"{label}: {before[label][1]} → {fewest} queries")
        if grew:
            sys.exit("QUERY COUNT GREW WITH THE DATA: " + "; ".join(grew))
        # Last, as its replies are changes that every cycle of the next quarter of an hour measures again.
        label = "cycle with 5 sends and 3 replies"
        took, fewest, most = timed(sends_five, args.repeat, prepare=five_due_and_three_replies)
        target = TARGETS_MS[label]
        print(f"\n(load average {os.getloadavg()[0]:.1f}; {changed_campaigns()} campaigns changed in the quarter hour "
              "each cycle looks back, whose rules it measures again)\n"
              f"  {label:<34} {took:8.1f} ms  target {target} ms  ratio "
              f"{took / target:5.2f} {shown(fewest, most):>7} queries{'' if took <= target else '  OVER TARGET'}")
    finally:
        if not args.keep:
            connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
