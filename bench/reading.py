"""Reading mail: a first sync of a folder of replies from a real Dovecot on loopback, then processing them.

    .venv/bin/python bench/reading.py --messages 5000                                   # SQLite
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/reading.py

Builds a campaign whose leads were each sent an email (``OutboundEmail`` rows with Message-IDs), then
delivers ``--messages`` answers to them into one Dovecot folder: replies written by people (interested,
asking, declining, unsubscribing; each answering our Message-ID), out-of-office and other automatic
replies, bounces (DSNs carrying our original's headers) and a few messages from strangers. Then times:

- (a) raw imapclient: one connection fetching every message (``BODY.PEEK[]``, ``INTERNALDATE``,
  ``RFC822.SIZE``) in chunks, parsing nothing — the floor;
- (b) CAM's first sync: ``inbox_poll`` of the mailbox, which stores an ``InboundEmail`` per message;
- (c) CAM's reply processing: ``replies_process`` in batches of 200 until ``--process`` replies (default
  1,000, oldest first; 0 for all) are processed (classification, matching, the lead's follow-up).

Each as messages/s, (b) against (a), and the statements per fetch chunk / per processing batch
(counted at the connection, with ``DEBUG`` off as in production). Targets (issue 17): first sync
1,000 messages/s, processing 500 messages/s. The categories the replies got are printed as a
checksum, so that two versions of CAM can be compared on the same messages. Dovecot runs in a throwaway
folder; the database is created as test_<name> (or a scratch SQLite file) and dropped at the end.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aicmo_site.settings")
os.environ.setdefault("DATABASE_URL", f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django

django.setup()

from cpu import process_cpu  # noqa: E402  # bench/cpu.py
from django.db import connection  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from django.urls import reverse  # noqa: E402
from django.utils import timezone  # noqa: E402
from sending import StatementCounter  # noqa: E402  # bench/sending.py's, as bench/worker.py takes dashboard's

PASSWORD_ENV = "CAM_SECRET_BENCH_IMAP_PASSWORD"
DOMAIN = "outreach.example.com"
HUMAN_REPLIES = (
    "Yes, I'm interested. Could we talk on Thursday afternoon?",
    "Thanks for reaching out, but we are not interested at the moment.",
    "How much does it cost for a team of twenty? Do you have a price list?",
    "Please remove me from your mailing list.",
    "Sounds good, let's set up a call next week.",
    "I'm not the right person for this, please contact jane.doe@company{n}.example.com instead.",
)


def our_id(n: int) -> str:
    return f"<cam.{n}.bench@{DOMAIN}>"


def lead_email(n: int) -> str:
    return f"person{n}@company{n}.example.com"


def answer(n: int) -> bytes:
    """The answer to our email number ``n``: which kind depends on ``n``, as a mix a real inbox gets."""
    date = format_datetime(datetime(2026, 12, 3, 9, 0, tzinfo=UTC) + timedelta(seconds=n))
    kind = n % 20
    if kind < 12:  # a person answers
        body = HUMAN_REPLIES[n % len(HUMAN_REPLIES)].format(n=n)
        text = (f"From: Person {n} <{lead_email(n)}>\r\nTo: Bench <bench@{DOMAIN}>\r\n"
                f"Subject: Re: A quick question about Company {n}\r\nDate: {date}\r\n"
                f"Message-ID: <reply.{n}@company{n}.example.com>\r\nIn-Reply-To: {our_id(n)}\r\n"
                f"References: {our_id(n)}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
                f"{body}\r\n\r\nBest,\r\nPerson {n}\r\n\r\n"
                f"On Mon, 1 Dec 2026 at 10:00, Bench <bench@{DOMAIN}> wrote:\r\n"
                f"> Hi Person {n}, a quick question about Company {n}.\r\n")
    elif kind < 15:  # an automatic answer
        text = (f"From: Person {n} <{lead_email(n)}>\r\nTo: Bench <bench@{DOMAIN}>\r\n"
                f"Subject: Automatic reply: A quick question about Company {n}\r\nDate: {date}\r\n"
                f"Message-ID: <auto.{n}@company{n}.example.com>\r\nIn-Reply-To: {our_id(n)}\r\n"
                f"Auto-Submitted: auto-replied\r\nX-Autoreply: yes\r\nMIME-Version: 1.0\r\n"
                f"Content-Type: text/plain; charset=utf-8\r\n\r\n"
                f"I am out of the office until 15 December 2026 with limited access to email.\r\n"
                f"For urgent matters please call the office.\r\n")
    elif kind < 19:  # a bounce carrying our original's headers
        boundary = f"bounce-{n}"
        text = (f"From: Mail Delivery System <MAILER-DAEMON@mx.company{n}.example.com>\r\n"
                f"To: bench@{DOMAIN}\r\nSubject: Undelivered Mail Returned to Sender\r\nDate: {date}\r\n"
                f"Message-ID: <bounce.{n}@mx.company{n}.example.com>\r\nAuto-Submitted: auto-replied\r\n"
                f"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status;\r\n"
                f"\tboundary=\"{boundary}\"\r\n\r\n--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
                f"This is the mail system at host mx.company{n}.example.com.\r\n\r\n"
                f"I'm sorry to have to inform you that your message could not\r\nbe delivered to one or more "
                f"recipients.\r\n\r\n<{lead_email(n)}>: host mx.company{n}.example.com said: 550 5.1.1 "
                f"<{lead_email(n)}>: Recipient address rejected: User unknown\r\n\r\n"
                f"--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
                f"Reporting-MTA: dns; mx.company{n}.example.com\r\n\r\nFinal-Recipient: rfc822; {lead_email(n)}\r\n"
                f"Original-Recipient: rfc822;{lead_email(n)}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
                f"Diagnostic-Code: smtp; 550 5.1.1 <{lead_email(n)}>: Recipient address rejected: User unknown\r\n\r\n"
                f"--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
                f"From: Bench <bench@{DOMAIN}>\r\nTo: {lead_email(n)}\r\n"
                f"Subject: A quick question about Company {n}\r\n"
                f"Message-ID: {our_id(n)}\r\nDate: Mon, 1 Dec 2026 10:00:00 +0000\r\n\r\n--{boundary}--\r\n")
    else:  # someone we never wrote to
        text = (f"From: Stranger {n} <stranger{n}@elsewhere.example.org>\r\nTo: bench@{DOMAIN}\r\n"
                f"Subject: Partnership {n}\r\nDate: {date}\r\nMessage-ID: <s.{n}@elsewhere.example.org>\r\n"
                f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
                f"Hello, we would like to talk about a partnership.\r\n")
    return text.encode()


def setup(server, user: str, messages: int):
    from cam.models import Campaign, Lead, Mailbox, MailboxFolder, OutboundEmail, SequenceStep

    mailbox = Mailbox.objects.create(name="bench", from_email=f"bench@{DOMAIN}", provider="smtp",
                                     smtp_host="127.0.0.1", imap_host=server.host, imap_port=server.port,
                                     imap_security="none", imap_username=user, imap_password_env=PASSWORD_ENV)
    MailboxFolder.objects.create(mailbox=mailbox, name="INBOX", backfill_days=2)
    campaign = Campaign.objects.create(name="bench", status=Campaign.Status.ACTIVE)
    campaign.mailboxes.set([mailbox])
    step = SequenceStep.objects.create(campaign=campaign, position=1, subject_template="A quick question",
                                       body_template="Hi {{ first_name }}.")
    sent_at = timezone.now() - timedelta(days=2)
    leads = Lead.objects.bulk_create([
        Lead(campaign=campaign, email=lead_email(n), first_name=f"Person{n}", company=f"Company {n}",
             status=Lead.Status.IN_SEQUENCE, last_contacted_at=sent_at) for n in range(messages)], batch_size=1000)
    OutboundEmail.objects.bulk_create([
        OutboundEmail(lead=lead, step=step, campaign=campaign, mailbox=mailbox, to_email=lead.email,
                      from_email=f"bench@{DOMAIN}", subject="A quick question", message_id=our_id(n),
                      status=OutboundEmail.Status.SENT, sent_at=sent_at)
        for n, lead in enumerate(leads)], batch_size=1000)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:  # fresh statistics, as autovacuum keeps them on a live table
            cursor.execute("ANALYZE")
    return mailbox


def deliver(server, user: str, messages: int) -> None:
    from imapclient import IMAPClient

    received = datetime.now(UTC) - timedelta(hours=1)
    client = IMAPClient(server.host, port=server.port, ssl=False, timeout=60)
    client.login(user, server.password)
    for first in range(0, messages, 500):
        client.multiappend("INBOX", [{"msg": answer(n), "date": received}
                                     for n in range(first, min(first + 500, messages))])
    client.logout()


def raw_fetch(server, user: str, chunk: int) -> tuple[int, float]:
    from imapclient import IMAPClient

    started = time.perf_counter()
    client = IMAPClient(server.host, port=server.port, ssl=False, timeout=60)
    client.login(user, server.password)
    client.select_folder("INBOX", readonly=True)
    uids = client.search(["ALL"])
    count = 0
    for first in range(0, len(uids), chunk):
        fetched = client.fetch(uids[first:first + chunk], ["BODY.PEEK[]", "INTERNALDATE", "RFC822.SIZE"])
        count += len(fetched)
    client.logout()
    return count, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--process", type=int, default=1000,
                        help="replies processed in (c), oldest first (0: all); processing is the slow part")
    parser.add_argument("--sync-only", action="store_true", help="stop after the first sync")
    parser.add_argument("--profile", choices=("sync", "process"), help="print cProfile's top functions of one step")
    args = parser.parse_args()

    from django.conf import settings

    from tests.servers.imap import DovecotServer

    setup_test_environment(debug=False)
    os.environ[PASSWORD_ENV] = DovecotServer.password
    old_name = connection.creation.create_test_db(verbosity=0)
    try:
        from cam.inbox.polling import inbox_poll
        from cam.inbox.processing import replies_process
        from cam.models import InboundEmail

        with DovecotServer() as server:
            user = server.new_user("bench")
            mailbox = setup(server, user, args.messages)
            started = time.perf_counter()
            deliver(server, user, args.messages)
            print(f"{args.messages} messages delivered to Dovecot in {time.perf_counter() - started:.1f} s; "
                  f"database {connection.vendor}; load average {os.getloadavg()[0]:.1f}")

            chunk = settings.AICMO_CAM_IMAP_FETCH_CHUNK
            count, raw = raw_fetch(server, user, chunk)
            print(f"  (a) raw imapclient fetch, chunks of {chunk:<5} {raw:7.2f} s  {count / raw:8,.0f} msg/s")

            statements = StatementCounter()
            profiler = _profiler(args.profile == "sync")
            with connection.execute_wrapper(statements):
                started = time.perf_counter()
                counts = inbox_poll(mailbox=mailbox)
                sync = time.perf_counter() - started
            _report(profiler)
            stored = InboundEmail.objects.count()
            if stored != args.messages:
                raise SystemExit(f"CAM stored {stored} of {args.messages} messages: {counts}")
            chunks = -(-stored // chunk)
            print(f"  (b) CAM first sync (inbox_poll)       {sync:7.2f} s  {stored / sync:8,.0f} msg/s  "
                  f"{raw / sync:.0%} of raw; {statements.count} statements, {statements.count / chunks:.1f} per chunk "
                  f"of {chunk}")

            if args.sync_only:
                return
            # A worker loads the URLconf once, for the first alert's link to the reply desk (about half a
            # second here): loaded before timing, so that (c) measures the batches.
            reverse("admin:index")
            statements = StatementCounter()
            profiler = _profiler(args.profile == "process")
            batches, processed = 0, 0
            backend = _backend_pid()
            cpu, backend_cpu = process_cpu(os.getpid()), _backend_cpu(backend)
            with connection.execute_wrapper(statements):
                started = time.perf_counter()
                wanted = args.process or args.messages
                while processed < wanted:
                    done = replies_process(limit=min(200, wanted - processed))
                    if not done["processed"] + done["errors"]:
                        break
                    batches += 1
                    processed += done["processed"] + done["errors"]
                process = time.perf_counter() - started
            cpu, backend_cpu = process_cpu(os.getpid()) - cpu, _backend_cpu(backend) - backend_cpu
            _report(profiler)
            print(f"  (c) CAM reply processing              {process:7.2f} s  {processed / process:8,.0f} msg/s  "
                  f"{statements.count} statements, {statements.count / max(batches, 1):.0f} per batch of up to 200")
            # CPU time moves less than wall time on a shared machine: CAM's process, and its database backend.
            print(f"      CPU: CAM {cpu:.2f} s ({processed / max(cpu, 0.01):,.0f} msg per CPU second)"
                  + (f", PostgreSQL {backend_cpu:.2f} s" if backend else ""))
            done = InboundEmail.objects.filter(processed_at__isnull=False)
            categories = collections.Counter(done.values_list("category", flat=True))
            checksum = hashlib.sha256(repr(sorted(done.values_list(
                "message_id", "category", "lead__email", "confirmation"))).encode()).hexdigest()[:12]
            print(f"  categories: {dict(sorted(categories.items()))}; checksum {checksum}")
            print(f"  load average after: {os.getloadavg()[0]:.1f}")
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


def _backend_pid() -> int:
    """The PostgreSQL backend serving this process's connection (0 on SQLite), for its CPU time."""
    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _backend_cpu(pid: int) -> float:
    try:
        return process_cpu(pid) if pid else 0.0
    except OSError:  # a server on another machine
        return 0.0


def _profiler(wanted: bool):
    if not wanted:
        return None
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    return profiler


def _report(profiler) -> None:
    if profiler is None:
        return
    import pstats

    profiler.disable()
    pstats.Stats(profiler).sort_stats(os.environ.get("BENCH_SORT", "cumulative")).print_stats(35)


if __name__ == "__main__":
    main()
