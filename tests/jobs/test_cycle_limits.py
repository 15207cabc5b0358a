"""The cycle's limits: failing mailboxes named in its errors, a send step bounded in time, and a lease
that lives exactly as long as its holder."""

import pytest
from django.db import connection
from django.utils import timezone

from cam.jobs import cycle
from cam.jobs.cycle import CYCLE_LEASE, worker_cycle_run
from cam.models import JobExecution, Lease, OutboundEmail, WorkerHeartbeat
from tests.outreach.test_sending import due_lead, open_campaign, smtp_mailbox
from tests.servers.smtp import Call, Stall, free_port


@pytest.mark.django_db
def test_a_mailbox_that_cannot_be_polled_is_named_in_the_cycles_errors_and_on_the_heartbeat(monkeypatch):
    problem = "mailbox Sales 2: The IMAP server imap.example.com:993 did not finish logging in within 60 s."
    monkeypatch.setitem(cycle.STEPS, "poll", lambda options: {"mailboxes": 2, "failed": 1, "problems": [problem]})

    result = worker_cycle_run(worker_id="w-poll")
    assert result.errors == {"poll": problem}
    assert result.steps["poll"] == {"mailboxes": 2, "failed": 1}
    heartbeat = WorkerHeartbeat.objects.get(worker_id="w-poll")
    assert (heartbeat.status, heartbeat.last_error) == ("ERROR", f"poll: {problem}")
    assert JobExecution.objects.get(execution_id=result.execution_id).error == f"poll: {problem}"


@pytest.mark.django_db
def test_a_mailbox_that_cannot_send_is_named_in_the_cycles_errors(smtp_server):
    due_lead(open_campaign(smtp_mailbox(smtp_server, name="Sales 3", smtp_port=free_port())))
    result = worker_cycle_run(worker_id="w-send")
    assert result.errors["send"].startswith("mailbox Sales 3: Could not connect to the SMTP server")
    assert list(result.steps) == ["send", "poll", "replies", "no_reply", "metrics", "rules", "alerts", "retention"]


@pytest.mark.django_db
def test_the_send_step_hands_what_it_had_no_time_for_to_the_next_cycle(smtp_server, monkeypatch):
    mailbox = smtp_mailbox(smtp_server)
    owner = open_campaign(mailbox)
    for n in range(4):
        due_lead(owner, email=f"lead{n}@company{n}.example.com")
    monkeypatch.setattr(cycle, "send_seconds", lambda: 0.5)
    smtp_server.answer_data(Stall(0.3))

    result = worker_cycle_run(worker_id="w-time")
    send = result.steps["send"]
    assert (send["sent"], send["stopped"]) == (2, "out of time")
    assert send["handed_back"] == 2
    assert list(result.steps)[-1] == "retention"  # the later steps still ran
    assert OutboundEmail.objects.filter(status=OutboundEmail.Status.PENDING).count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_send_step_longer_than_the_lease_keeps_the_cycle_to_itself(smtp_server, settings):
    settings.AICMO_CAM_LOCK_TTL_SECONDS = 1
    settings.AICMO_CAM_WORKER_INTERVAL_SECONDS = 60
    owner = open_campaign(smtp_mailbox(smtp_server))
    for n in range(5):
        due_lead(owner, email=f"lead{n}@company{n}.example.com")
    second: list = []

    def another_worker_tries():
        second.append(worker_cycle_run(worker_id="w-second"))
        connection.close()

    # About 2 s of sending with a 1 s lease; the other worker tries half-way through.
    smtp_server.answer_data(Stall(0.4), Stall(0.4), Call(another_worker_tries), Stall(0.4))
    first = worker_cycle_run(worker_id="w-first")

    assert (first.status, first.errors, first.steps["send"]["sent"]) == ("completed", {}, 5)
    assert list(first.steps)[-1] == "retention"
    (refused,) = second
    assert refused.status == "skipped" and refused.reason.startswith("Already running")
    assert len(smtp_server.messages) == 5


@pytest.mark.django_db(transaction=True)
def test_a_cycle_that_lost_its_lease_stops_at_once(smtp_server, settings):
    settings.AICMO_CAM_LOCK_TTL_SECONDS = 1
    owner = open_campaign(smtp_mailbox(smtp_server))
    for n in range(4):
        due_lead(owner, email=f"lead{n}@company{n}.example.com")

    def taken_over():  # the lease lapsed and another worker took the cycle
        Lease.objects.filter(name=CYCLE_LEASE).update(holder="other-worker:1", acquired_at=timezone.now())
        connection.close()

    smtp_server.answer_data(Call(taken_over), Stall(0.4))
    result = worker_cycle_run(worker_id="w-lost")

    assert result.errors["lease"].startswith(f"lease {CYCLE_LEASE} lost")
    assert list(result.steps) == ["send"]  # nothing after the send step: the other worker has the cycle
    assert result.steps["send"]["sent"] < 4
    assert Lease.objects.get(name=CYCLE_LEASE).holder == "other-worker:1"
