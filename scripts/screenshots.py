"""`make screenshots`: the back office's main pages over the demo data, at 1440 x 900, into docs/img/.

It builds a throw-away SQLite database, runs the demo (`cam_demo`), adds thirty days of believable
history (sends, replies of every kind, a bounce-paused campaign, leads held back for the usual reasons,
a worker, job runs), serves it with `runserver` on 127.0.0.1 and photographs the pages in Debian's
Chromium through Playwright. Nothing leaves the machine; every request a page makes off 127.0.0.1 is
reported and fails the run.

    .venv/bin/python scripts/screenshots.py [--out docs/img]
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "screenshots-only-password"


def reply_words() -> dict[str, str]:
    from cam.models import InboundEmail

    return {
        InboundEmail.Category.POSITIVE: "Sounds interesting — could we talk on Thursday afternoon?",
        InboundEmail.Category.NEGATIVE: "Not for us at the moment, thanks.",
        InboundEmail.Category.OUT_OF_OFFICE: "I am out of the office until Monday with limited access to email.",
        InboundEmail.Category.QUESTION: "What does it cost for a team of 40?",
        InboundEmail.Category.UNSUBSCRIBE: "Please remove me from your list.",
        InboundEmail.Category.REFERRAL: "Maria Weber runs this for us — maria.weber@example.com.",
        InboundEmail.Category.BOUNCE_HARD: "550 5.1.1 The email account that you tried to reach does not exist.",
        InboundEmail.Category.AUTO_REPLY: "Thank you for your message. We will get back to you shortly.",
    }


def seed_history() -> dict[str, int]:
    """Thirty days of activity on top of the demo, through the factories the tests use."""
    from django.contrib.auth import get_user_model
    from django.db.models import F
    from django.utils import timezone

    from cam.decisions import metrics_compute
    from cam.demo import DEMO_CAMPAIGN_NAME
    from cam.jobs.retention import job_runs_prune
    from cam.models import Campaign, InboundEmail, JobExecution, Lead, OutboundEmail, SendingDomain
    from tests import factories

    rng = random.Random(7)
    words = reply_words()
    now = timezone.now()
    demo = Campaign.objects.get(name=DEMO_CAMPAIGN_NAME)
    mailbox = demo.mailboxes.first()
    mailbox.daily_cap = 120
    mailbox.save(update_fields=["daily_cap"])
    second_mailbox = factories.MailboxFactory(name="Nordics desk", from_email="anna@nordics.example.com",
                                              daily_cap=40)
    nordic = factories.CampaignFactory(name="Nordic CFOs — finance automation", status=Campaign.Status.ACTIVE,
                                       daily_cap=60)
    nordic.mailboxes.add(second_mailbox)
    # A mailbox added last week, still warming up: Diagnose shows its allowance under the caps.
    demo.mailboxes.add(factories.MailboxFactory(name="Fresh desk", from_email="leo@outreach.example.com", daily_cap=50,
                                                warmup_enabled=True, warmup_started_on=timezone.localdate()
                                                - timedelta(days=4)))
    # Its domain lost its DMARC record: the mailbox list says its leads are held.
    SendingDomain.objects.create(domain="nordics.example.com", verdict=SendingDomain.Verdict.FAIL, holds_mail=True,
                                 checked_at=timezone.now())
    paused = factories.CampaignFactory(name="UK retail — store ops", status=Campaign.Status.PAUSED,
                                       status_reason="Paused by rule hard-bounce rate: 6.2 % over 210 sends")
    paused.mailboxes.add(mailbox)
    campaigns = [(demo, mailbox), (nordic, second_mailbox), (paused, mailbox)]
    steps = {c.pk: list(c.steps.order_by("position")) or [factories.SequenceStepFactory(campaign=c, position=1)]
             for c, _ in campaigns}

    categories = [InboundEmail.Category.POSITIVE] * 5 + [InboundEmail.Category.NEGATIVE] * 4 + [
        InboundEmail.Category.OUT_OF_OFFICE] * 3 + [InboundEmail.Category.QUESTION] * 2 + [
        InboundEmail.Category.BOUNCE_HARD, InboundEmail.Category.UNSUBSCRIBE, InboundEmail.Category.REFERRAL,
        InboundEmail.Category.NEUTRAL, InboundEmail.Category.AUTO_REPLY]
    sent = replies = 0
    for day in range(30, 0, -1):
        for campaign, campaign_mailbox in campaigns:
            if campaign is paused and day < 9:
                continue
            for _ in range(rng.randint(4, 14)):
                lead = factories.LeadFactory(campaign=campaign, status=Lead.Status.IN_SEQUENCE,
                                             score=rng.randint(40, 100), mailbox=campaign_mailbox)
                when = now - timedelta(days=day, hours=rng.randint(0, 8), minutes=rng.randint(0, 59))
                email = factories.OutboundEmailFactory(
                    lead=lead, campaign=campaign, step=rng.choice(steps[campaign.pk]), mailbox=campaign_mailbox,
                    status=OutboundEmail.Status.SENT, sent_at=when, attempts=1)
                sent += 1
                if rng.random() < 0.16:
                    category = rng.choice(categories)
                    factories.InboundEmailFactory(
                        mailbox=campaign_mailbox, lead=lead, outbound_email=email, category=category,
                        confidence=rng.choice([0.72, 0.86, 0.93, 0.98]), from_email=lead.email,
                        received_at=when + timedelta(hours=rng.randint(1, 30)), processed_at=now,
                        new_text=words.get(category, "Thanks for your note."))
                    replies += 1
                    lead.status = {InboundEmail.Category.POSITIVE: Lead.Status.INTERESTED,
                                   InboundEmail.Category.NEGATIVE: Lead.Status.NOT_INTERESTED,
                                   InboundEmail.Category.UNSUBSCRIBE: Lead.Status.UNSUBSCRIBED,
                                   InboundEmail.Category.BOUNCE_HARD: Lead.Status.BOUNCED}.get(category, lead.status)
                    lead.save(update_fields=["status"])
    # Today: some sent, some held back for the reasons Diagnose explains.
    for _ in range(18):
        lead = factories.LeadFactory(campaign=demo, status=Lead.Status.IN_SEQUENCE, mailbox=mailbox)
        factories.OutboundEmailFactory(lead=lead, campaign=demo, step=steps[demo.pk][0], mailbox=mailbox,
                                       status=OutboundEmail.Status.SENT, attempts=1,
                                       sent_at=now - timedelta(minutes=rng.randint(5, 300)))
    for reason, count in [(Lead.BlockedReason.MAILBOX_CAP, 7), (Lead.BlockedReason.OUTSIDE_WINDOW, 4),
                          (Lead.BlockedReason.SUPPRESSED, 2)]:
        for _ in range(count):
            factories.LeadFactory(campaign=demo, status=Lead.Status.IN_SEQUENCE, mailbox=mailbox,
                                  blocked_reason=reason, next_send_at=now - timedelta(minutes=10))
    for lead in Lead.objects.filter(campaign=paused, status=Lead.Status.IN_SEQUENCE)[:25]:
        lead.blocked_reason = Lead.BlockedReason.CAMPAIGN_PAUSED
        lead.next_send_at = now
        lead.save(update_fields=["blocked_reason", "next_send_at"])
    rule = factories.CampaignRuleFactory(campaign=paused, threshold=5)
    factories.RuleDecisionFactory(rule=rule, measured_value=6.2, sample_size=210)
    factories.WorkerHeartbeatFactory(worker_id="worker-1", hostname="cam-app", status="IDLE",
                                     current_step="", cycles_completed=1432, last_seen_at=now,
                                     last_cycle_started_at=now - timedelta(seconds=31),
                                     last_cycle_finished_at=now - timedelta(seconds=30))
    for minutes in range(1, 11):
        started = now - timedelta(minutes=minutes)
        factories.JobExecutionFactory(
            job="worker_cycle", execution_id=f"worker_cycle:shot-{minutes}", started_at=started,
            finished_at=started + timedelta(milliseconds=420 + 37 * minutes), trigger=JobExecution.Trigger.WORKER,
            counts={"steps": {"send": {"planned": 3, "sent": 3}, "poll": {"fetched": 1, "mailboxes": 2},
                              "alerts": {"sent": 1 if minutes == 4 else 0}}})
    # A month of cycles older than the retention, folded into days as the daily prune would.
    for day in range(15, 45):
        for hour in range(0, 24, 3):
            started = now - timedelta(days=day, hours=hour)
            factories.JobExecutionFactory(
                job="worker_cycle", execution_id=f"worker_cycle:old-{day}-{hour}", started_at=started,
                status="FAILED" if (day, hour) in {(17, 6), (31, 3)} else "COMPLETED",
                finished_at=started + timedelta(milliseconds=380 + rng.randrange(400)),
                trigger=JobExecution.Trigger.WORKER)
    job_runs_prune(now=now)
    # The history is backdated: an email was planned when it went out and a reply read when it arrived, as
    # the dashboard counts them (a reply by when it was read, a mailbox's cap by when its emails were planned).
    OutboundEmail.objects.filter(sent_at__isnull=False).update(created_at=F("sent_at"))
    InboundEmail.objects.filter(received_at__lte=now).update(created_at=F("received_at"))
    admin = get_user_model().objects.create_superuser("admin", "admin@example.com", PASSWORD)
    # The older replies were answered long ago: the reply desk holds the last few days'.
    InboundEmail.objects.filter(received_at__lt=now - timedelta(days=3)).update(
        handled_at=F("received_at") + timedelta(hours=2), handled_by=admin)
    # As the worker's last metrics step left them: the campaign list's figures come from the snapshots.
    metrics_compute()
    return {"sent": sent, "replies": replies}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


PAGES = [
    ("dashboard", "/admin/", None),
    ("campaigns", "/admin/cam/campaign/", None),
    ("campaign", "/admin/cam/campaign/{demo}/change/", None),
    ("campaign-diagnose", "/admin/cam/campaign/{demo}/change/", "Diagnose"),
    ("campaign-performance", "/admin/cam/campaign/{demo}/change/", "Performance"),
    ("leads", "/admin/cam/lead/", None),
    ("mailboxes", "/admin/cam/mailbox/", None),
    ("outbound-emails", "/admin/cam/outboundemail/", None),
    ("replies", "/admin/cam/reply/", None),
    ("reply-thread", "/admin/cam/reply/{reply}/thread/", None),
    ("lead-import", "/admin/cam/lead/import/", None),
    ("job-executions", "/admin/cam/jobexecution/", None),
    ("job-run-days", "/admin/cam/jobrunday/", None),
]


def photograph(base: str, out: Path, ids: dict[str, int]) -> list[str]:
    from playwright.sync_api import sync_playwright

    offsite: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                             args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.on("request", lambda request: offsite.append(request.url)
                if not request.url.startswith((base, "data:", "blob:")) else None)
        page.goto(f"{base}/admin/login/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/admin/")
        for name, path, tab in PAGES:
            page.goto(base + path.format(**ids))
            if tab:
                link = page.get_by_role("link", name=tab, exact=True)
                if not link.count():
                    print(f"  {name}: no {tab!r} tab on the page, skipped")
                    continue
                link.first.click()
            page.wait_for_timeout(700)  # the charts' animation
            page.screenshot(path=str(out / f"{name}.png"))
            print(f"  {out / f'{name}.png'}")
        browser.close()
    return offsite


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "img"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    workdir = Path(tempfile.mkdtemp(prefix="cam-screenshots-"))
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}", "DEBUG": "true",
           "EMAIL_URL": "consolemail://", "DJANGO_SETTINGS_MODULE": "aicmo_site.settings"}
    env.pop("REDIS_URL", None)
    os.environ.update(env)
    manage = [sys.executable, str(ROOT / "manage.py")]
    for command in (["migrate", "--noinput", "-v0"], ["createcachetable"], ["cam_demo"]):
        subprocess.run([*manage, *command], check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)

    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from cam.demo import DEMO_CAMPAIGN_NAME
    from cam.models import Campaign, Reply
    from cam.models.mail import DESK_ORDER, DESK_WAITING

    print("history:", seed_history())
    demo_id = Campaign.objects.get(name=DEMO_CAMPAIGN_NAME).pk
    # The warm reply on top of the desk, for its conversation's picture.
    warm = (Reply.objects.filter(DESK_WAITING, lead__isnull=False, outbound_email__isnull=False)
            .order_by(*DESK_ORDER).first())

    port = free_port()
    server = subprocess.Popen([*manage, "runserver", f"127.0.0.1:{port}", "--noreload"], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90  # a busy machine takes a while to import Django and the checks
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"runserver did not start on 127.0.0.1:{port}") from None
                time.sleep(0.2)
        offsite = photograph(f"http://127.0.0.1:{port}", out, {"demo": demo_id, "reply": warm.pk if warm else 0})
    finally:
        server.terminate()
        server.wait(timeout=10)
    if offsite:
        print("requests that left 127.0.0.1:", *offsite, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
