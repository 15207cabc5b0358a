"""Send windows: the days and hours a campaign may send, in its time zone or the lead's own."""

from __future__ import annotations

import zoneinfo
from datetime import datetime, time, timedelta

from cam.models import Campaign


def _zone(campaign: Campaign, tz_name: str = "") -> zoneinfo.ZoneInfo:
    for name in (tz_name, campaign.timezone, "UTC"):
        if name:
            try:
                return zoneinfo.ZoneInfo(name)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                continue
    return zoneinfo.ZoneInfo("UTC")


def local_time(campaign: Campaign, at: datetime, *, tz_name: str = "") -> datetime:
    """``at`` in the campaign's time zone (or ``tz_name`` when given and valid)."""
    return at.astimezone(_zone(campaign, tz_name))


def window_is_open(campaign: Campaign, at: datetime, *, tz_name: str = "") -> bool:
    """Whether ``at`` falls inside the campaign's send window (in ``tz_name`` when given and valid)."""
    local = at.astimezone(_zone(campaign, tz_name))
    return (local.isoweekday() in campaign.send_days
            and campaign.send_start_hour <= local.hour < campaign.send_end_hour)


def next_window_opening(campaign: Campaign, after: datetime, *, tz_name: str = "") -> datetime:
    """The first moment at or after ``after`` when the window is open (``after`` itself if it is)."""
    if window_is_open(campaign, after, tz_name=tz_name):
        return after
    zone = _zone(campaign, tz_name)
    local = after.astimezone(zone)
    for days_ahead in range(8):
        day = local.date() + timedelta(days=days_ahead)
        if day.isoweekday() not in campaign.send_days:
            continue
        opening = datetime.combine(day, time(campaign.send_start_hour), tzinfo=zone)
        if opening >= local:
            return opening
    raise ValueError(f"Campaign {campaign.pk} has no send day; its window never opens.")
