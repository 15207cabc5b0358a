"""Queueing a job to the django-q2 cluster, for doors (admin, API) that must not wait for it."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django_q.tasks import async_task

from cam.jobs.registry import get_job


def job_enqueue(*, job: str, trigger: str, campaign_id: int | None = None, params: dict[str, Any] | None = None,
                force: bool = False, scheduled_for: str | None = None, execution_id: str | None = None) -> None:
    """Queue ``job`` once the current transaction commits. Raises ``UnknownJob`` at once for a bad name.

    The task re-fetches the campaign by id and goes through ``run_job``, so the slot and lease rules
    hold exactly as for a job run in the foreground. ``execution_id`` is passed on to ``run_job`` (a
    forced run's id chosen beforehand, so the caller can be told where to find the outcome).
    """
    get_job(job)
    kwargs: dict[str, Any] = {"job": job, "campaign_id": campaign_id, "params": params or {}, "force": force,
                              "scheduled_for": scheduled_for, "trigger": trigger, "execution_id": execution_id}
    transaction.on_commit(lambda: async_task("cam.jobs.tasks.run_job_task", **kwargs,
                                             q_options={"group": f"cam: {job}"}))
