"""Scheduled slots: the moment a periodic job's run belongs to, the same in every process."""

from __future__ import annotations

import math
import zoneinfo
from datetime import datetime, timedelta

from django.conf import settings


def slot_for(now: datetime, *, every_seconds: int, offset_seconds: int = 0, tz_name: str | None = None) -> datetime:
    """The start of the period containing ``now``: periods of ``every_seconds`` from local midnight plus
    ``offset_seconds`` (a daily job at 02:00 is ``every_seconds=86400, offset_seconds=7200``).

    Two processes firing the same schedule compute the same slot, so the job runs once.
    """
    tz = zoneinfo.ZoneInfo(tz_name or settings.TIME_ZONE)
    local = now.astimezone(tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    elapsed = (local - midnight).total_seconds() - offset_seconds
    return midnight + timedelta(seconds=offset_seconds + math.floor(elapsed / every_seconds) * every_seconds)


def scheduled_period_seconds(every_seconds: int) -> int:
    """The period django-q2 can keep for one of ``every_seconds``: its schedules repeat in whole minutes,
    so a period is rounded up to the next minute (a cycle never runs more often than asked)."""
    return max(1, math.ceil(every_seconds / 60)) * 60


def worker_interval_seconds() -> int:
    """The seconds between two worker cycles, as the watchdog must count them.

    With the cluster's schedule installed (``AICMO_CAM_WORKER_ENABLED``) a cycle comes at least every
    scheduled period, which is the setting rounded up to whole minutes: counting the setting's 5 s
    would call a worker lost between two scheduled cycles. Without it only ``cam_worker`` runs
    cycles, and it keeps the setting to the second.
    """
    interval = settings.AICMO_CAM_WORKER_INTERVAL_SECONDS
    return scheduled_period_seconds(interval) if settings.AICMO_CAM_WORKER_ENABLED else interval
