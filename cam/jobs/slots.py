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
