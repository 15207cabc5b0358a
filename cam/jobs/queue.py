"""Queueing a job to the django-q2 cluster, for doors (admin, API) that must not wait for it."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils.dateparse import parse_datetime
from django_q.tasks import async_task

from cam.jobs.registry import get_job
from cam.jobs.runner import run_job
from cam.jobs.tasks import _summary
from cam.models import Campaign

logger = logging.getLogger(__name__)


def job_enqueue(*, job: str, trigger: str, campaign_id: int | None = None, params: dict[str, Any] | None = None,
                force: bool = False, scheduled_for: str | None = None, execution_id: str | None = None) -> None:
    """Queue ``job`` once the current transaction commits. Raises ``UnknownJob`` at once for a bad name.

    The task re-fetches the campaign by id and goes through ``run_job``, so the slot and lease rules
    hold exactly as for a job run in the foreground. ``execution_id`` is passed on to ``run_job`` (a
    forced run's id chosen beforehand, so the caller can be told where to find the outcome).
    """
    get_job(job)
    kwargs: dict[str, Any] = {"job": job, "campaign_id": campaign_id, "params": params or {}, "force": force,
                              "scheduled_for": scheduled_for, "trigger": trigger}
    # Tasks already queued under the old entry point keep working; only an assigned id needs the new one.
    func = "cam.jobs.queue.run_assigned_job_task" if execution_id else "cam.jobs.tasks.run_job_task"
    if execution_id:
        kwargs["execution_id"] = execution_id
    transaction.on_commit(lambda: async_task(func, **kwargs, q_options={"group": f"cam: {job}"}))


def run_assigned_job_task(*, job: str, execution_id: str, campaign_id: int | None = None,
                          scheduled_for: str | None = None, force: bool = False,
                          params: dict[str, Any] | None = None, trigger: str) -> dict[str, Any] | None:
    """The task of a queued run whose id was handed out beforehand. Returns quietly if its campaign was
    deleted meanwhile, like ``cam.jobs.tasks.run_job_task``."""
    campaign = None
    if campaign_id is not None:
        campaign = Campaign.objects.filter(pk=campaign_id).first()
        if campaign is None:
            logger.info("Job %s not run: campaign %s no longer exists", job, campaign_id)
            return None
    slot = parse_datetime(scheduled_for) if scheduled_for else None
    return _summary(run_job(job, campaign=campaign, scheduled_for=slot, force=force, params=params,
                            trigger=trigger, execution_id=execution_id))
