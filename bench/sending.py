"""Sending to a loopback SMTP sink: raw smtplib over one connection, and CAM's send batch.

    .venv/bin/python bench/sending.py --emails 2000            # SQLite in a temporary file
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/sending.py

CAM writes each email's outcome and its lead's progress in a transaction of their own right after
the server's answer (so a crash loses at most the one email in flight), and marks the email SENDING
before handing it over. The target: CAM sends at 50 % or more of raw smtplib's rate over one
connection. Both send the same messages (as CAM built them) to the same sink, aiosmtpd's in a process of its
own; the database is created in a scratch schema/file and dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aicmo_site.settings")
os.environ.setdefault("DATABASE_URL", f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402


def setup(server, emails: int):
    from cam.models import Campaign, Lead, Mailbox, SequenceStep
    from cam.outreach.planning import outreach_plan

    mailbox = Mailbox.objects.create(name="bench", from_email="bench@outreach.example.com", provider="smtp",
                                     smtp_host=server.host, smtp_port=server.port, smtp_security="none",
                                     daily_cap=emails * 2, min_gap_seconds=0)
    campaign = Campaign.objects.create(name="bench", status=Campaign.Status.ACTIVE, send_days=[1, 2, 3, 4, 5, 6, 7],
                                       send_start_hour=0, send_end_hour=24, daily_cap=emails * 2)
    campaign.mailboxes.set([mailbox])
    SequenceStep.objects.create(campaign=campaign, position=1, subject_template="{{ company }} and hand-offs",
                                body_template="Hi {{ first_name }}, a quick question about {{ company }}.")
    SequenceStep.objects.create(campaign=campaign, position=2, body_template="Bumping this.", delay_days=2)
    due = timezone.now() - timedelta(minutes=1)
    Lead.objects.bulk_create([
        Lead(campaign=campaign, email=f"person{n}@company{n}.example.com", first_name=f"Anna{n}",
             company=f"Company {n}", status=Lead.Status.IN_SEQUENCE, next_send_at=due) for n in range(emails)])
    outreach_plan()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:  # fresh statistics, as autovacuum keeps them on a live table
            cursor.execute("ANALYZE")
    return mailbox


class SinkProcess:
    """aiosmtpd's Sink handler in a process of its own (as a real mail server is): it accepts and discards."""

    host = "127.0.0.1"

    def __init__(self) -> None:
        from tests.servers.smtp import free_port

        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> SinkProcess:
        self.process = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-l", f"{self.host}:{self.port}",
                                         "-c", "aiosmtpd.handlers.Sink"], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((self.host, self.port), timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def __exit__(self, *exc_info) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def raw_smtplib(server, messages: list[tuple[str, str, bytes]]) -> None:
    with smtplib.SMTP(server.host, server.port, timeout=30) as client:
        client.ehlo()
        for sender, recipient, data in messages:
            client.sendmail(sender, [recipient], data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emails", type=int, default=2000)
    args = parser.parse_args()

    from django.conf import settings

    settings.AICMO_CAM_SEND_BATCH_SIZE = 1000
    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0)
    try:
        from cam.models import OutboundEmail
        from cam.outreach.messages import build_message
        from cam.outreach.sending import outbound_send_batch

        with SinkProcess() as server:
            mailbox = setup(server, args.emails)
            rows = OutboundEmail.objects.select_related("lead", "mailbox").order_by("pk")
            messages = [(row.from_email, row.to_email, build_message(row).message().as_bytes()) for row in rows]
            print(f"{args.emails} emails to a loopback aiosmtpd sink, database {connection.vendor}")

            started = time.perf_counter()
            raw_smtplib(server, messages)
            raw = time.perf_counter() - started
            print(f"  raw smtplib, one connection {raw:8.2f} s  {args.emails / raw:8.0f} emails/s")

            sent = 0
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                while sent < args.emails:
                    counts = outbound_send_batch(mailbox_id=mailbox.pk)
                    if not counts.get("sent"):
                        raise SystemExit(f"CAM stopped sending: {counts}")
                    sent += counts["sent"]
                cam = time.perf_counter() - started
            print(f"  CAM send batches            {cam:8.2f} s  {sent / cam:8.0f} emails/s  "
                  f"{len(queries) / sent:.1f} statements per email")
            print(f"  CAM sends at {raw / cam:.0%} of raw smtplib's rate (target: 50 % or more)")
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
