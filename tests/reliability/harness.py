"""The reliability suite's world: real worker processes against the test's PostgreSQL database, real
servers on loopback, and a killer.

A ``World`` holds one campaign whose leads are all due, its mailboxes, and the processes that work on
them (``cam_worker``s or ``qcluster``s, started as real subprocesses). ``World.kill_randomly`` sends
``kill -9`` to one of them at random moments and starts a new one in its place; ``World.drain``
waits until every email has reached its end; ``World.verdict`` checks the promises and returns the
figures that docs/reliability.md reports.

How many kills: ``CAM_CHAOS_KILLS`` (``make test`` runs 5 per mode, ``make chaos`` 20).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from django.db import connection
from django.utils import timezone

from cam.models import Campaign, Lead, Mailbox, OutboundEmail, SequenceStep

ROOT = Path(__file__).resolve().parents[2]
MANAGE = ROOT / "manage.py"
KILLS = int(os.environ.get("CAM_CHAOS_KILLS", "5"))
TTL = 10  # AICMO_CAM_LOCK_TTL_SECONDS: the smallest the settings allow, so dead holders are replaced soon
INTERVAL = 5  # AICMO_CAM_WORKER_INTERVAL_SECONDS, likewise
Status = OutboundEmail.Status
OPEN = (Status.PENDING, Status.CLAIMED, Status.RETRY)
# Terminal without being sent: each must say why.
EXPLAINED = (Status.RETRY, Status.FAILED, Status.UNKNOWN, Status.CANCELLED)


def database_url(*, host: str | None = None, port: int | None = None) -> str:
    """The test database as a URL another process can use (optionally through a proxy)."""
    config = connection.settings_dict
    return (f"postgres://{config['USER'] or 'postgres'}@{host or config['HOST'] or '127.0.0.1'}:"
            f"{port or config['PORT'] or 5432}/{config['NAME']}")


def wait_until(condition: Callable[[], object], *, timeout: float, what: str, step: float = 0.25) -> float:
    """Seconds it took; AssertionError naming ``what`` after ``timeout``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(step)
    return time.monotonic() - started


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None


@dataclass
class World:
    """One campaign, ``leads`` due leads spread over ``mailboxes``, and the processes working on them."""

    tmp: Path
    mailboxes: list[Mailbox]
    leads: int
    env: dict[str, str] = field(default_factory=dict)
    processes: list[Process] = field(default_factory=list)
    kills: int = 0
    started: float = field(default_factory=time.monotonic)
    rng: random.Random = field(default_factory=lambda: random.Random(int(os.environ.get("CAM_CHAOS_SEED", "0"))
                                                                      or None))

    @classmethod
    def build(cls, *, tmp: Path, mailboxes: list[dict], leads: int, extra_env: dict[str, str] | None = None,
              readers: list[dict] = ()) -> World:
        """``mailboxes`` send the campaign; ``readers`` are mailboxes that are only polled."""
        # No warm-up and a cap far above the leads: every lead's first email is due now, so every kill
        # lands on a sender with work in hand (a warming mailbox would send ten a day).
        boxes = [Mailbox.objects.create(**{"daily_cap": 10_000, "min_gap_seconds": 0, "warmup_enabled": False,
                                           **fields})
                 for fields in mailboxes]
        for fields in readers:
            Mailbox.objects.create(**fields)
        campaign = Campaign.objects.create(name="Chaos", status=Campaign.Status.ACTIVE, daily_cap=100_000,
                                           send_days=[1, 2, 3, 4, 5, 6, 7], send_start_hour=0, send_end_hour=24)
        campaign.mailboxes.set(boxes)
        SequenceStep.objects.create(campaign=campaign, position=1, subject_template="{{ company }}, a question",
                                    body_template="Hi {{ first_name }}, one question about {{ company }}.")
        SequenceStep.objects.create(campaign=campaign, position=2, body_template="Bumping this.", delay_days=3)
        due = timezone.now() - timedelta(minutes=1)
        Lead.objects.bulk_create([
            Lead(campaign=campaign, email=f"lead{n}@company{n}.example.com", first_name=f"Anna{n}",
                 company=f"Company {n}", status=Lead.Status.IN_SEQUENCE, next_send_at=due) for n in range(leads)])
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "aicmo_site.settings", "DATABASE_URL": database_url(),
               "AICMO_CAM_LOCK_TTL_SECONDS": str(TTL), "AICMO_CAM_WORKER_INTERVAL_SECONDS": str(INTERVAL),
               "AICMO_CAM_SEND_BATCH_SIZE": "20", "AICMO_CAM_SEND_RETRY_SECONDS": "1", "LOG_LEVEL": "WARNING"}
        env.pop("REDIS_URL", None)
        env.update(extra_env or {})
        return cls(tmp=tmp, mailboxes=boxes, leads=leads, env=env)

    # --- processes ------------------------------------------------------------------------------

    def start(self, name: str, *command: str) -> Process:
        log = self.tmp / f"{name}.log"
        with log.open("a") as out:
            popen = subprocess.Popen([sys.executable, str(MANAGE), *command],
                                     env={**self.env, "AICMO_CAM_WORKER_ID": name}, cwd=ROOT,
                                     stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        process = Process(name=name, popen=popen, log=log)
        self.processes.append(process)
        return process

    def start_worker(self, name: str) -> Process:
        return self.start(name, "cam_worker")

    def living(self) -> list[Process]:
        return [process for process in self.processes if process.alive()]

    def kill(self, process: Process) -> None:
        """``kill -9`` of the process and everything it started, as an out-of-memory kill or a lost host."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.popen.pid, signal.SIGKILL)
        process.popen.wait(timeout=10)
        self.kills += 1

    def kill_randomly(self, *, kills: int, restart: Callable[[Process], object],
                      pause: tuple[float, float] = (0.5, 2.5),
                      pick: Callable[[list[Process]], Process] | None = None) -> None:
        """``kills`` times: wait a random while, kill one living process at random, start its replacement."""
        for _ in range(kills):
            time.sleep(self.rng.uniform(*pause))
            living = self.living()
            assert living, "every process died on its own:\n" + self.logs()
            victim = (pick or self.rng.choice)(living)
            self.kill(victim)
            restart(victim)

    def endure(self, storm: Callable[[], object], *, drain: float) -> float:
        """Run ``storm`` (start the processes, kill them, cut things), wait until every email has
        reached its end, then stop every process; seconds the draining took. A failure carries the
        processes' logs."""
        try:
            storm()
            return self.drain(timeout=drain)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.logs()}") from exc
        finally:
            self.stop_all()

    def stop_all(self) -> None:
        for process in self.living():
            os.killpg(process.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in self.processes:
            try:
                process.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.popen.pid, signal.SIGKILL)
                process.popen.wait(timeout=10)

    def logs(self, tail: int = 30) -> str:
        parts = []
        for process in self.processes:
            lines = process.log.read_text(errors="replace").splitlines()[-tail:] if process.log.exists() else []
            parts.append(f"--- {process.name} (exit {process.popen.poll()})\n" + "\n".join(lines))
        return "\n".join(parts)

    # --- the outcome ----------------------------------------------------------------------------

    def settled(self) -> bool:
        """Every lead has had its first email sent or stopped with a reason, and nothing is in hand."""
        unplanned = Lead.objects.filter(status=Lead.Status.IN_SEQUENCE, current_step=0, blocked_reason="").exclude(
            outbound_emails__status__in=EXPLAINED)
        return not OutboundEmail.objects.filter(status__in=OPEN).exists() and not unplanned.exists()

    def drain(self, *, timeout: float) -> float:
        return wait_until(self.settled, timeout=timeout, what="every email to be sent or stopped with a reason",
                          step=0.5)

    def verdict(self, *, delivered: list[str], interruptions: int | None = None) -> dict:
        """Check the promises against what the servers received (``delivered``: one recipient per
        accepted message) and return the figures. ``interruptions``: kills and cuts (default: kills)."""
        interruptions = self.kills if interruptions is None else interruptions
        counts = Counter(OutboundEmail.objects.values_list("status", flat=True))
        duplicates = {address: n for address, n in Counter(delivered).items() if n > 1}
        unexplained = list(OutboundEmail.objects.filter(status__in=EXPLAINED, last_error="")
                           .values_list("to_email", "status"))
        stranded = list(Lead.objects.filter(status=Lead.Status.IN_SEQUENCE, next_send_at__isnull=True,
                                            blocked_reason="", current_step=0)
                        .exclude(outbound_emails__status__in=[*OPEN, *EXPLAINED]).values_list("email", flat=True))
        sent = counts.get(Status.SENT, 0)
        figures = {"leads": self.leads, "kills": self.kills, "interruptions": interruptions,
                   "delivered": len(delivered), "sent": sent, "unknown": counts.get(Status.UNKNOWN, 0),
                   "retry": counts.get(Status.RETRY, 0), "failed": counts.get(Status.FAILED, 0),
                   "duplicates": len(duplicates), "lost": len(stranded) + len(unexplained),
                   "seconds": round(time.monotonic() - self.started, 1)}
        # A run in which caps or pacing held the leads back would prove nothing: every lead's first email
        # must have been planned and taken to its end.
        first_emails = OutboundEmail.objects.filter(step__position=1).values("lead_id").distinct().count()
        assert first_emails == self.leads, f"only {first_emails} of {self.leads} leads had their first email planned"
        assert not duplicates, f"sent twice: {duplicates}"
        assert not unexplained, f"not sent, and no reason given: {unexplained[:10]}"
        assert not stranded, f"leads in their sequence with nothing planned and no reason: {stranded[:10]}"
        assert figures["unknown"] <= interruptions, f"more UNKNOWN than interruptions: {figures}"
        assert sent + figures["unknown"] + figures["failed"] + figures["retry"] + counts.get(Status.CANCELLED, 0) \
            == OutboundEmail.objects.count()
        # Each delivered message is a SENT email, or the one UNKNOWN email a kill caught in flight.
        assert sent <= len(set(delivered)) <= sent + figures["unknown"], figures
        return figures


def report(mode: str, figures: dict) -> None:
    """Print the figures (``-s`` shows them) and add them to test-results/chaos.jsonl when it exists."""
    import json

    line = json.dumps({"mode": mode, **figures})
    print(f"\nCHAOS {line}")
    results = ROOT / "test-results"
    if results.is_dir():
        with (results / "chaos.jsonl").open("a") as out:
            out.write(line + "\n")
