"""Send windows: open or closed by weekday and hour in the campaign's (or the lead's) time zone."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime

import pytest

from cam.outreach.windows import next_window_opening, window_is_open
from tests.factories import CampaignFactory

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


def campaign(**fields):
    """Monday to Friday, 9 to 17, unless told otherwise. Not saved: windows need no database."""
    return CampaignFactory.build(**{"send_days": [1, 2, 3, 4, 5], "send_start_hour": 9, "send_end_hour": 17,
                                    "timezone": "UTC", **fields})


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    # March 2026: the 2nd is a Monday; the 7th and 8th are a weekend.
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(("at", "is_open"), [
    (utc(2, 8, 59), False),
    (utc(2, 9, 0), True),
    (utc(2, 16, 59), True),
    (utc(2, 17, 0), False),
    (utc(6, 12), True),    # Friday
    (utc(7, 12), False),   # Saturday
    (utc(8, 12), False),   # Sunday
])
def test_it_is_open_on_send_days_between_the_hours(at, is_open):
    assert window_is_open(campaign(), at) is is_open


@pytest.mark.parametrize(("at", "is_open"), [
    (utc(2, 7, 59), False),  # 08:59 in Berlin
    (utc(2, 8, 0), True),    # 09:00 in Berlin
    (utc(2, 15, 59), True),  # 16:59 in Berlin
    (utc(2, 16, 0), False),  # 17:00 in Berlin
    (utc(6, 23, 30), False),  # Saturday 00:30 in Berlin, still Friday in UTC
])
def test_it_reads_day_and_hour_in_the_campaigns_time_zone(at, is_open):
    assert window_is_open(campaign(timezone="Europe/Berlin"), at) is is_open


def test_it_keeps_a_window_that_runs_to_midnight_open_until_then():
    late = campaign(send_start_hour=20, send_end_hour=24)

    assert (window_is_open(late, utc(2, 23, 59)), window_is_open(late, utc(2, 19, 59))) == (True, False)


def test_it_gives_the_moment_itself_when_the_window_is_open():
    assert next_window_opening(campaign(), utc(3, 11, 15)) == utc(3, 11, 15)


def test_it_opens_later_the_same_day_before_the_start_hour():
    assert next_window_opening(campaign(timezone="Europe/Berlin"), utc(3, 5)) == datetime(2026, 3, 3, 9, tzinfo=BERLIN)


def test_it_opens_the_next_morning_after_the_end_hour():
    assert next_window_opening(campaign(), utc(3, 17)) == utc(4, 9)


def test_it_opens_on_monday_after_a_weekend():
    opening = next_window_opening(campaign(timezone="Europe/Berlin"), utc(6, 16, 30))  # Friday 17:30 in Berlin

    assert opening == datetime(2026, 3, 9, 9, tzinfo=BERLIN)
    assert opening.astimezone(UTC) == utc(9, 8)


def test_it_opens_at_local_nine_across_a_daylight_saving_change():
    # New York moves its clocks on Sunday 8 March 2026: Monday's 09:00 is 13:00 UTC, not 14:00.
    opening = next_window_opening(campaign(timezone="America/New_York"), utc(7, 15))

    assert opening.astimezone(UTC) == utc(9, 13)


def test_it_waits_a_whole_week_for_the_only_send_day():
    mondays = campaign(send_days=[1])

    assert next_window_opening(mondays, utc(2, 17)) == utc(9, 9)


def test_it_opens_on_a_weekend_for_a_weekend_campaign():
    assert next_window_opening(campaign(send_days=[6, 7]), utc(6, 12)) == utc(7, 9)


def test_it_follows_the_leads_own_time_zone_when_given():
    berlin = campaign(timezone="Europe/Berlin")
    at = utc(2, 13, 30)  # 14:30 in Berlin, 08:30 in New York

    assert window_is_open(berlin, at) is True
    assert window_is_open(berlin, at, tz_name="America/New_York") is False
    assert next_window_opening(berlin, at, tz_name="America/New_York") == datetime(2026, 3, 2, 9, tzinfo=NEW_YORK)
    assert next_window_opening(berlin, at, tz_name="America/New_York").astimezone(UTC) == utc(2, 14)


def test_it_falls_back_to_the_campaigns_time_zone_for_an_unknown_lead_zone():
    berlin = campaign(timezone="Europe/Berlin")

    assert window_is_open(berlin, utc(2, 8), tz_name="Mars/Olympus") is True
    assert next_window_opening(berlin, utc(2, 5), tz_name="Mars/Olympus") == datetime(2026, 3, 2, 9, tzinfo=BERLIN)


def test_it_refuses_a_campaign_without_a_send_day():
    with pytest.raises(ValueError, match="has no send day; its window never opens"):
        next_window_opening(campaign(send_days=[]), utc(2, 18))
