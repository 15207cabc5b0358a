"""Sending to a loopback SMTP sink: raw smtplib over one connection, and CAM's send step.

    .venv/bin/python bench/sending.py --emails 2000            # SQLite in a temporary file
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/sending.py

CAM writes each email's outcome and its lead's progress in a transaction of their own right after
the server's answer (so a crash loses at most the one email in flight), and marks the email in flight
(its batch's row in ``outbound_in_flight``) before handing it over. The target: CAM sends at 50 % or
more of raw smtplib's rate over one connection. Both send the same messages (as CAM built them) to the
same sink, aiosmtpd's in a process of its own, taking turns in rounds so that both see the same load on a
shared machine. CAM's round is the worker's send step for the mailbox (``mailbox_send_due``): everything
due, in claims starting at ``--batch`` emails (production's ``AICMO_CAM_SEND_BATCH_SIZE``, 50 by default)
and growing while they come back full, with the later rounds' emails waiting behind. The database is
created in a scratch schema/file and dropped at the end.
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
from contextlib import nullcontext
from datetime import timedelta
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
from django.utils import timezone  # noqa: E402


def setup(server, emails: int):
    from cam.models import Campaign, Lead, Mailbox, SequenceStep
    from cam.outreach.planning import outreach_plan

    mailbox = Mailbox.objects.create(name="bench", from_email="bench@outreach.example.com", provider="smtp",
                                     smtp_host=server.host, smtp_port=server.port, smtp_security="none",
                                     # Warm-up off and a cap whose hourly share (cam.outreach.pacing) takes every
                                     # email now: the benchmark measures sending, not pacing.
                                     daily_cap=emails * 48, min_gap_seconds=0, warmup_enabled=False)
    campaign = Campaign.objects.create(name="bench", status=Campaign.Status.ACTIVE, send_days=[1, 2, 3, 4, 5, 6, 7],
                                       send_start_hour=0, send_end_hour=24, daily_cap=emails * 48)
    campaign.mailboxes.set([mailbox])
    SequenceStep.objects.create(campaign=campaign, position=1, subject_template="{{ company }} and hand-offs",
                                body_template="Hi {{ first_name }}, a quick question about {{ company }}.")
    SequenceStep.objects.create(campaign=campaign, position=2, body_template="Bumping this.", delay_days=2)
    due = timezone.now() - timedelta(minutes=1)
    Lead.objects.bulk_create([
        Lead(campaign=campaign, email=f"person{n}@company{n}.example.com", first_name=f"Anna{n}",
             company=f"Company {n}", status=Lead.Status.IN_SEQUENCE, next_send_at=due) for n in range(emails)])
    while outreach_plan().get("planned"):  # a run plans at most PLAN_LIMIT leads
        pass
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:  # fresh statistics, as autovacuum keeps them on a live table
            cursor.execute("ANALYZE")
    return mailbox


class SinkProcess:
    """aiosmtpd's Sink handler in a process of its own (as a real mail server is): it accepts and discards."""

    host = "127.0.0.1"

    def __init__(self, *, pipelining: bool = False) -> None:
        from tests.servers.smtp import free_port

        self.port = free_port()
        self.pipelining = pipelining
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> SinkProcess:
        handler = "pipelining_sink.PipeliningSink" if self.pipelining else "aiosmtpd.handlers.Sink"
        environment = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent)}
        self.process = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-l", f"{self.host}:{self.port}",
                                         "-c", handler], stderr=subprocess.DEVNULL, env=environment)
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


class CpuMeter:
    """CPU time per email of this process, the database server's process for its connection
    (PostgreSQL) and the sink: what each costs whatever the machine's load, which the rates are not."""

    def __init__(self, sink_pid: int) -> None:
        self.pids = {"sink": sink_pid}
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                self.pids["database"] = cursor.fetchone()[0]
        self.used = {name: 0.0 for name in ("self", *self.pids)}

    def __enter__(self) -> CpuMeter:
        self._started = {"self": time.process_time(), **{name: process_cpu(pid) for name, pid in self.pids.items()}}
        return self

    def __exit__(self, *exc_info) -> None:
        ended = {"self": time.process_time(), **{name: process_cpu(pid) for name, pid in self.pids.items()}}
        for name in self.used:
            self.used[name] += ended[name] - self._started[name]

    def per_email(self, emails: int) -> str:
        parts = [f"{name} {seconds / emails * 1000:.2f}" for name, seconds in self.used.items()]
        return f"CPU ms per email: {', '.join(parts)} (all {sum(self.used.values()) / emails * 1000:.2f})"


class StatementCounter:
    """Counts the statements sent to the database (Django's query log would slow them down)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


def floor_round(client: smtplib.SMTP, mailbox, messages, mode: str, cpu: CpuMeter | None) -> float:
    """Seconds to send ``messages`` with raw smtplib and commit, after each, CAM's outcome statement for an
    email of the bench (its outcome and lead's progress, the next email marked in flight): what recording
    each outcome durably costs at the least. ``serial``: each commit before the next email, as the
    guarantee needs at the least (CAM overlaps the commit with the next envelope only). ``overlapped``:
    each commit runs in a thread of its own during the next email's whole conversation, its data
    included — an upper bound no sender that keeps the guarantee can reach. ``in order``: CAM's own order
    with nothing of CAM around it — the statement recording the email before and marking this one in
    flight sent ahead, this email's envelope meanwhile (to a sink that offers PIPELINING, with the data of
    the email before), its data once the statement answered: the most any sender keeping the guarantee
    can do with one statement an email."""
    import uuid
    from concurrent.futures import ThreadPoolExecutor

    from cam.models import OutboundEmail
    from cam.outreach.outcomes import outcome_of, outcome_write, outcome_write_send
    from cam.outreach.planning import campaign_steps
    from cam.outreach.providers import SendResult
    from cam.outreach.providers.smtp import _envelope_answers, _envelope_group, _finish_data, _open_data
    from cam.outreach.sending import outbound_claim

    holder = f"floor:{uuid.uuid4().hex[:12]}"
    claimed = outbound_claim(mailbox=mailbox, limit=len(messages), now=timezone.now(), holder=holder)
    rows = list(OutboundEmail.objects.filter(pk__in=[row.pk for row in claimed]).select_related("step").order_by("pk"))
    steps = campaign_steps({row.campaign_id for row in rows})
    outcomes = [outcome_of(row, SendResult("SENT", provider_message_id=row.message_id), now=timezone.now(),
                           steps=steps) for row in rows]
    writes = [dict(holder=holder, row=row, outcome=outcome, now=timezone.now(),
                   next_id=rows[index + 1].pk if index + 1 < len(rows) else None)
              for index, (row, outcome) in enumerate(zip(rows, outcomes, strict=True))]

    def write(arguments):
        try:
            return outcome_write(**arguments)
        finally:
            if mode == "overlapped":
                connection.close_if_unusable_or_obsolete()

    started = time.perf_counter()
    if mode == "in order":
        with cpu or nullcontext():
            done, ahead = None, False
            for index, ((sender, recipient, data), row, outcome) in enumerate(zip(messages, rows, outcomes,
                                                                                  strict=True)):
                in_flight = outcome_write_send(holder=holder, row=done and done[0], outcome=done and done[1],
                                               next_id=row.pk, now=timezone.now())
                if ahead:  # its envelope went with the data before: its answers are left to read
                    _envelope_answers(client, sender, [recipient])
                else:
                    _open_data(client, sender, [recipient], len(data))
                _, ours = in_flight.result()
                assert ours, "the email is the floor's to send"
                following = None
                if index + 1 < len(messages):
                    upcoming = messages[index + 1]
                    following = _envelope_group(client, upcoming[0], [upcoming[1]], len(upcoming[2]))
                _finish_data(client, data, None, following or b"")
                done, ahead = (row, outcome), following is not None
            outcome_write(holder=holder, row=done[0], outcome=done[1], next_id=None, now=timezone.now())
    elif mode == "serial":
        with cpu or nullcontext():
            for (sender, recipient, data), arguments in zip(messages, writes, strict=True):
                client.sendmail(sender, [recipient], data)
                write(arguments)
    else:
        with ThreadPoolExecutor(max_workers=1) as pool:  # one connection of its own, kept by the thread
            pending = None
            for (sender, recipient, data), arguments in zip(messages, writes, strict=True):
                client.sendmail(sender, [recipient], data)
                if pending is not None:
                    pending.result()
                pending = pool.submit(write, arguments)
            pending.result()
            pool.submit(lambda: connection.close()).result()  # the thread's own connection
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emails", type=int, default=2000)
    parser.add_argument("--floor", action="store_true",
                        help="also time the floor of durable per-email outcomes: raw smtplib with the outcome "
                             "statement committed after each email, and the same with each commit overlapping the "
                             "next email's whole conversation (more overlap than any sender may allow itself)")
    parser.add_argument("--rounds", type=int, default=10,
                        help="raw smtplib and CAM take turns, each sending emails/rounds emails a round, so "
                             "both see the same load on a shared machine")
    parser.add_argument("--batch", type=int, default=50,
                        help="AICMO_CAM_SEND_BATCH_SIZE: the emails of one claim (production's default: 50); "
                             "a round is the worker's send step for the mailbox, claim after claim")
    parser.add_argument("--pipelining", action="store_true",
                        help="the sink offers PIPELINING (RFC 2920), as Postfix, Exchange and Gmail do: CAM then sends "
                             "each envelope in one write, with the data of the email before; raw smtplib never "
                             "pipelines")
    args = parser.parse_args()
    per_round = -(-args.emails // args.rounds)

    from django.conf import settings

    # As in production (DEBUG off): no query log, whose bookkeeping would cost more than some statements.
    setup_test_environment(debug=False)
    old_name = connection.creation.create_test_db(verbosity=0)
    try:
        from cam.models import OutboundEmail
        from cam.outreach.messages import build_message
        from cam.outreach.sending import mailbox_send_due

        settings.AICMO_CAM_SEND_BATCH_SIZE = args.batch
        with SinkProcess(pipelining=args.pipelining) as server:
            # With --floor, as many emails again for each floor to record outcomes of.
            mailbox = setup(server, args.emails * (4 if args.floor else 1))
            rows = OutboundEmail.objects.select_related("lead", "mailbox").order_by("pk")[:args.emails]
            messages = [(row.from_email, row.to_email, build_message(row).message().as_bytes()) for row in rows]
            # Each round makes its own emails due, so that CAM's round is the worker's whole send step for
            # the mailbox (everything due, claim after claim) with a backlog behind it, as in production.
            queue = list(OutboundEmail.objects.order_by("pk").values_list("pk", flat=True))
            later = timezone.now() + timedelta(days=1)
            OutboundEmail.objects.update(next_attempt_at=later)
            floor_modes = [mode for mode in ("serial", "in order", "overlapped")
                           if args.floor and (mode == "serial" or connection.vendor == "postgresql")]
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("ANALYZE outbound_emails")
            print(f"{args.emails} emails to a loopback aiosmtpd sink"
                  f"{' offering PIPELINING' if args.pipelining else ''} in {args.rounds} rounds, claims of "
                  f"{args.batch}, database {connection.vendor}")

            raw = cam = 0.0
            floors = {"serial": 0.0, "in order": 0.0, "overlapped": 0.0}
            sent, statements, ratios = 0, StatementCounter(), []
            raw_cpu, cam_cpu = CpuMeter(server.process.pid), CpuMeter(server.process.pid)
            # The floors' own, but the overlapped one's (its statements use a connection of their own).
            floor_cpu = {mode: CpuMeter(server.process.pid) for mode in ("serial", "in order")}
            with smtplib.SMTP(server.host, server.port, timeout=30) as client:
                client.ehlo()
                for first in range(0, args.emails, per_round):
                    taken = per_round * (1 + len(floor_modes))
                    due, queue = queue[:taken], queue[taken:]
                    just_due = timezone.now() - timedelta(seconds=1)
                    OutboundEmail.objects.filter(pk__in=due).update(next_attempt_at=just_due)
                    with raw_cpu:
                        started = time.perf_counter()
                        for sender, recipient, data in messages[first:first + per_round]:
                            client.sendmail(sender, [recipient], data)
                        raw_round = time.perf_counter() - started

                    if args.floor:
                        # SQLite writes in this process: a thread of its own cannot overlap them.
                        for mode in floor_modes:
                            floors[mode] += floor_round(client, mailbox, messages[first:first + per_round], mode,
                                                        floor_cpu.get(mode))

                    with connection.execute_wrapper(statements), cam_cpu:
                        started = time.perf_counter()
                        counts = mailbox_send_due(mailbox_id=mailbox.pk)
                        cam_round = time.perf_counter() - started
                    if counts.get("sent") != len(messages[first:first + per_round]):
                        raise SystemExit(f"CAM stopped sending: {counts}")
                    sent += counts["sent"]
                    raw, cam = raw + raw_round, cam + cam_round
                    ratios.append(raw_round / cam_round)
            print(f"  raw smtplib, one connection {raw:8.2f} s  {sent / raw:8.0f} emails/s  "
                  f"{raw_cpu.per_email(sent)}")
            print(f"  CAM send step               {cam:8.2f} s  {sent / cam:8.0f} emails/s  "
                  f"{statements.count / sent:.1f} statements per email  {cam_cpu.per_email(sent)}")
            for mode, seconds in floors.items():
                if seconds:
                    print(f"  floor, outcomes {mode:10} {seconds:8.2f} s  {sent / seconds:8.0f} emails/s  "
                          f"{raw / seconds:.0%} of raw smtplib's rate"
                          + (f"  {floor_cpu[mode].per_email(sent)}" if mode in floor_cpu else ""))
            if floors["in order"]:
                # The most any sender keeping the guarantee reaches with one statement an email: what CAM's own
                # work around it (claims, messages, connections, the loop) leaves of it.
                print(f"  CAM sends at {floors['in order'] / cam:.0%} of the in-order floor's rate")
            print(f"  load average {' '.join(f'{value:.1f}' for value in os.getloadavg())}")
            ratios.sort()
            print(f"  CAM sends at {raw / cam:.0%} of raw smtplib's rate (rounds: {ratios[0]:.0%} to {ratios[-1]:.0%}, "
                  f"median {ratios[len(ratios) // 2]:.0%}; target: 50 % or more)")
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
