"""job_enqueue: a run queued under an id is queued once until the cluster has run it."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from django_q.models import OrmQ

from cam.jobs import queue
from cam.jobs.queue import job_enqueue, job_is_queued, reservation_name
from cam.jobs.runner import execution_id_for
from cam.jobs.tasks import run_job_task
from cam.models import JobExecution, Lease

pytestmark = pytest.mark.django_db

SLOT = datetime(2026, 11, 3, 2, 0, tzinfo=UTC)
SLOT_ID = execution_id_for(job="qualify", campaign_id=None, slot=SLOT)


def enqueue(**kwargs) -> bool:
    return job_enqueue(job="qualify", trigger="api", scheduled_for=SLOT.isoformat(), **kwargs)


def test_it_queues_a_reserved_id_once(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert enqueue(reserve_as=SLOT_ID)
        assert not enqueue(reserve_as=SLOT_ID)
    assert OrmQ.objects.count() == 1
    assert job_is_queued(SLOT_ID)
    # Without a reservation (a forced run, the admin) nothing is held back.
    with django_capture_on_commit_callbacks(execute=True):
        assert enqueue()
    assert OrmQ.objects.count() == 2


def test_the_reservation_lasts_as_long_as_a_task_may_run(settings, django_capture_on_commit_callbacks):
    settings.Q_TIMEOUT_SECONDS = 120
    with django_capture_on_commit_callbacks(execute=True):
        enqueue(reserve_as=SLOT_ID)
    lease = Lease.objects.get(name=reservation_name(SLOT_ID))
    assert timedelta(seconds=119) < lease.expires_at - lease.acquired_at <= timedelta(seconds=120)
    # A task that never got to run does not hold the id for ever.
    Lease.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert not job_is_queued(SLOT_ID)
    with django_capture_on_commit_callbacks(execute=True):
        assert enqueue(reserve_as=SLOT_ID)


def test_the_task_gives_the_reservation_back_whatever_the_outcome(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        enqueue(reserve_as=SLOT_ID)
    reservation = {"name": reservation_name(SLOT_ID), "holder": Lease.objects.get().holder}
    summary = run_job_task(job="qualify", scheduled_for=SLOT.isoformat(), trigger="api", reservation=reservation)
    assert (summary["execution_id"], summary["status"]) == (SLOT_ID, "COMPLETED")
    assert not Lease.objects.exists()
    # A campaign deleted meanwhile: nothing runs, the reservation is given back all the same.
    held = {"name": reservation_name("qualify:999:x"), "holder": "web:1"}
    Lease.objects.create(**held, acquired_at=timezone.now(), expires_at=timezone.now() + timedelta(minutes=5))
    assert run_job_task(job="qualify", campaign_id=999, trigger="api", reservation=held) is None
    assert not Lease.objects.exists()
    assert JobExecution.objects.count() == 1


def test_a_reservation_taken_over_after_it_lapsed_is_not_given_back_by_the_old_task():
    Lease.objects.create(name=reservation_name(SLOT_ID), holder="web:new", acquired_at=timezone.now(),
                         expires_at=timezone.now() + timedelta(minutes=5))
    run_job_task(job="qualify", scheduled_for=SLOT.isoformat(), trigger="api",
                 reservation={"name": reservation_name(SLOT_ID), "holder": "web:old"})
    assert Lease.objects.get().holder == "web:new"


def test_it_gives_the_reservation_back_when_the_task_cannot_be_queued(monkeypatch,
                                                                      django_capture_on_commit_callbacks):
    def broker_down(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(queue, "async_task", broker_down)
    with pytest.raises(ConnectionError), django_capture_on_commit_callbacks(execute=True):
        enqueue(reserve_as=SLOT_ID)
    assert not job_is_queued(SLOT_ID)
