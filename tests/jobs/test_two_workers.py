"""Two worker processes against one database: one holds the cycle, a killed holder is replaced after the TTL.

The TTL is long so that a slow machine starting a process never lets it run out by accident; the test
moves the dead holder's expiry into the past where the TTL is meant to have passed.
"""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from cam.models import JobExecution, Lead, Lease, Mailbox, WorkerHeartbeat
from tests.factories import CampaignFactory, LeadFactory, MailboxFactory, SequenceStepFactory
from tests.servers.smtp import Stall

MANAGE = Path(__file__).resolve().parents[2] / "manage.py"
TTL = 120


def database_url() -> str:
    """The test database, as a URL a second process can use."""
    config = connection.settings_dict
    if connection.vendor == "postgresql":
        return f"postgres://{config['USER'] or 'postgres'}@{config['HOST'] or '127.0.0.1'}:{config['PORT'] or 5432}/" \
               f"{config['NAME']}"
    return f"sqlite:///{config['NAME']}"


def start_worker(name: str) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": database_url(), "AICMO_CAM_WORKER_ID": name,
           "AICMO_CAM_LOCK_TTL_SECONDS": str(TTL), "LOG_LEVEL": "WARNING"}
    return subprocess.Popen([sys.executable, str(MANAGE), "cam_worker", "--once"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def cycles(status: str) -> int:
    return JobExecution.objects.filter(job="worker_cycle", status=status).count()


@pytest.mark.django_db(transaction=True)
def test_one_worker_holds_the_cycle_and_a_killed_holder_is_replaced_after_the_ttl(smtp_server):
    # A cycle that hangs in its send step: the SMTP server holds its answer to the message back.
    smtp_server.answer_data(Stall(60))
    mailbox = MailboxFactory(provider=Mailbox.Provider.SMTP, smtp_host=smtp_server.host, smtp_port=smtp_server.port,
                             smtp_security="none", daily_cap=100, min_gap_seconds=0)
    campaign = CampaignFactory(send_days=[1, 2, 3, 4, 5, 6, 7], send_start_hour=0, send_end_hour=24)
    campaign.mailboxes.set([mailbox])
    SequenceStepFactory(campaign=campaign, position=1)
    LeadFactory(campaign=campaign, status=Lead.Status.IN_SEQUENCE, next_send_at=timezone.now() - timedelta(minutes=1))

    holder = start_worker("worker-a")
    try:
        wait_for(lambda: WorkerHeartbeat.objects.filter(worker_id="worker-a", current_step="send").exists())
        # A second worker finds the cycle held and skips it.
        second = start_worker("worker-b")
        assert second.wait(timeout=60) == 0
        assert cycles("SKIPPED") == 1
        assert "Already running" in JobExecution.objects.get(job="worker_cycle", status="SKIPPED").reason

        # The holder dies without releasing its lease: nobody takes over before the TTL …
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        lease = Lease.objects.get(name="job:worker_cycle:global")
        assert lease.holder.startswith("worker-a")
        assert start_worker("worker-c").wait(timeout=60) == 0
        assert cycles("SKIPPED") == 2
        # … and after it, the next worker runs the cycle: the TTL passes for every lease the dead holder had.
        assert Lease.objects.filter(holder__startswith="worker-a").update(
            expires_at=timezone.now() - timedelta(seconds=1)) >= 1
        smtp_server.answer_data("250 OK")
        assert start_worker("worker-d").wait(timeout=60) == 0
        assert cycles("COMPLETED") == 1
        assert JobExecution.objects.get(job="worker_cycle", status="COMPLETED").worker_id == "worker-d"
    finally:
        if holder.poll() is None:
            holder.kill()
