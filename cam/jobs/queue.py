"""Queueing a job to the django-q2 cluster, for doors (admin, API) that must not wait for it."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from cam.jobs.registry import get_job
from cam.locks import lease_acquire, lease_release
from cam.models import Lease


def reservation_name(execution_id: str) -> str:
    """The lease that marks a run queued under ``execution_id`` until the cluster has run it."""
    return f"queued:{execution_id}"


def job_is_queued(execution_id: str) -> bool:
    """Whether a run to be recorded under ``execution_id`` is queued and not run yet (one query)."""
    return Lease.objects.filter(name=reservation_name(execution_id), expires_at__gt=timezone.now()).exists()


def job_enqueue(*, job: str, trigger: str, campaign_id: int | None = None, params: dict[str, Any] | None = None,
                force: bool = False, scheduled_for: str | None = None, execution_id: str | None = None,
                reserve_as: str | None = None) -> bool:
    """Queue ``job`` once the current transaction commits. Raises ``UnknownJob`` at once for a bad name.

    The task re-fetches the campaign by id and goes through ``run_job``, so the slot and lease rules
    hold exactly as for a job run in the foreground. ``execution_id`` is passed on to ``run_job`` (a
    forced run's id chosen beforehand, so the caller can be told where to find the outcome).

    ``reserve_as``: the id the run will be recorded under. The run is then queued only if no other run
    under that id is queued: a reservation (a lease named by ``reservation_name``) is taken first, in
    one atomic statement, and False is returned, queueing nothing, when someone else holds it. The
    task gives it back once the run is over (whatever its outcome); if the task never gets to it, it
    lapses after ``Q_TIMEOUT_SECONDS``, the time a task may run. Returns True when queued.
    """
    get_job(job)
    reservation: dict[str, str] | None = None
    if reserve_as is not None:
        reservation = {"name": reservation_name(reserve_as),
                       "holder": f"{settings.AICMO_CAM_WORKER_ID}:{uuid.uuid4().hex[:12]}"}
        if not lease_acquire(**reservation, ttl_seconds=settings.Q_TIMEOUT_SECONDS):
            return False
    kwargs: dict[str, Any] = {"job": job, "campaign_id": campaign_id, "params": params or {}, "force": force,
                              "scheduled_for": scheduled_for, "trigger": trigger, "execution_id": execution_id}
    if reservation is not None:
        kwargs["reservation"] = reservation

    def send() -> None:
        try:
            async_task("cam.jobs.tasks.run_job_task", **kwargs, q_options={"group": f"cam: {job}"})
        except BaseException:
            if reservation is not None:  # nothing was queued: the slot must not stay reserved
                lease_release(**reservation)
            raise

    transaction.on_commit(send)
    return True
