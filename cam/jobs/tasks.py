"""django-q2 entry points. Thin: primitive arguments in, ``run_job`` does the work, a summary out."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from cam.jobs.runner import JobResult, Trigger, run_job
from cam.jobs.slots import slot_for
from cam.locks import lease_release
from cam.models import Campaign

logger = logging.getLogger(__name__)


def _summary(result: JobResult) -> dict[str, Any]:
    return {"execution_id": result.execution_id, "status": result.status, "reason": result.reason,
            "counts": result.counts, "error": result.error}


def run_scheduled_job(*, job: str, every_seconds: int, offset_seconds: int = 0) -> dict[str, Any]:
    """What a schedule calls: the slot is derived from the schedule's period, so a second cluster that
    fires the same schedule finds the slot taken and records a skip."""
    slot = slot_for(timezone.now(), every_seconds=every_seconds, offset_seconds=offset_seconds)
    return _summary(run_job(job, scheduled_for=slot, trigger=Trigger.SCHEDULE))


def run_job_task(*, job: str, campaign_id: int | None = None, scheduled_for: str | None = None,
                 force: bool = False, params: dict[str, Any] | None = None,
                 trigger: str = Trigger.ADMIN, execution_id: str | None = None,
                 reservation: dict[str, str] | None = None) -> dict[str, Any] | None:
    """A job queued by the admin or the API. Returns quietly if its campaign was deleted meanwhile.

    ``execution_id``: the id a forced run was promised under when it was queued (see ``run_job``).
    ``reservation``: the lease ``job_enqueue`` took so the run is queued once (``name`` and ``holder``);
    given back when the run is over, whatever its outcome."""
    try:
        campaign = None
        if campaign_id is not None:
            campaign = Campaign.objects.filter(pk=campaign_id).first()
            if campaign is None:
                logger.info("Job %s not run: campaign %s no longer exists", job, campaign_id)
                return None
        slot: datetime | None = parse_datetime(scheduled_for) if scheduled_for else None
        return _summary(run_job(job, campaign=campaign, scheduled_for=slot, force=force, params=params,
                                trigger=trigger, execution_id=execution_id))
    finally:
        if reservation:
            lease_release(name=reservation["name"], holder=reservation["holder"])
