"""How fast a mailbox sends: its warm-up ramp, the jitter on its minimum gap, and the hour's share.

- **Ramp**: a mailbox whose warm-up is on may send ``warmup_start`` emails on its first day (the day of
  its first send, ``warmup_started_on``), ``warmup_increment`` more on each day after, up to its
  ``daily_cap`` (``warmup_allowance``). A campaign rule that pauses a campaign sets the ramp of each of its
  mailboxes back to half of where it was (``mailboxes_ramp_step_back``).
- **Jitter**: each gap between two sends is the mailbox's ``min_gap_seconds`` give or take up to
  ``AICMO_CAM_SEND_GAP_JITTER_PERCENT`` %, drawn from a hash of the mailbox and its last send, so it is the
  same for every worker that asks and for every run of a test (``gap_seconds``).
- **Hour's share**: a day's allowance is spread over the hours of the send window that are left, so the
  emails do not all leave in the window's first minutes (``hour_share``); what an hour does not use is
  carried into the hours after it.

The planner (``cam.outreach.planning``) applies these; a lead held by the ramp or the hour's share gets
``blocked_reason=mailbox_pace``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from cam.models import Mailbox


def warmup_allowance(mailbox: Mailbox, day: date) -> int:
    """The most emails ``mailbox`` may send on ``day``: its daily cap, or less while it warms up."""
    if not mailbox.warmup_enabled:
        return mailbox.daily_cap
    days = max(0, (day - mailbox.warmup_started_on).days) if mailbox.warmup_started_on else 0
    return min(mailbox.daily_cap, mailbox.warmup_start + mailbox.warmup_increment * days)


def warmup_full_on(mailbox: Mailbox, *, today: date) -> date | None:
    """The day ``mailbox`` may first send its whole daily cap (None: its warm-up is off). A mailbox that has
    not sent yet starts its ramp ``today`` at the earliest."""
    if not mailbox.warmup_enabled:
        return None
    first = mailbox.warmup_started_on or today
    steps = math.ceil(max(0, mailbox.daily_cap - mailbox.warmup_start) / mailbox.warmup_increment)
    return first + timedelta(days=steps)


def warmup_words(mailbox: Mailbox, *, today: date) -> str:
    """"18 today of 50; the full 50 from 12 March 2026" — what the mailbox page says about the ramp."""
    allowance = warmup_allowance(mailbox, today)
    full_on = warmup_full_on(mailbox, today=today)
    if full_on is None:
        return f"{allowance:,} a day (warm-up off)"
    if full_on <= today:
        return f"{allowance:,} today: warmed up, the full daily cap"
    started = "" if mailbox.warmup_started_on else " once it first sends"
    cap = mailbox.daily_cap
    return f"{allowance:,} today of {cap:,}; the full {cap:,} from {full_on.day} {full_on:%B %Y}{started}"


def _unit(*parts: object) -> float:
    """A number in [0, 1) drawn from ``parts``: the same parts always give the same number."""
    digest = hashlib.sha256("|".join(str(part) for part in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def gap_seconds(mailbox: Mailbox) -> float:
    """The gap ``mailbox`` keeps after its last send: ``min_gap_seconds`` give or take the jitter. The
    jitter comes from the mailbox and the time of its last send, so each send draws a new one and every
    worker draws the same."""
    if not mailbox.min_gap_seconds:
        return 0.0
    spread = settings.AICMO_CAM_SEND_GAP_JITTER_PERCENT / 100
    stamp = mailbox.last_sent_at.isoformat() if mailbox.last_sent_at else ""
    return mailbox.min_gap_seconds * (1 + spread * (2 * _unit("gap", mailbox.pk, stamp) - 1))


def gap_ends_at(mailbox: Mailbox) -> datetime | None:
    """When ``mailbox``'s gap since its last send has passed (None: it has no gap, or never sent)."""
    if not mailbox.min_gap_seconds or mailbox.last_sent_at is None:
        return None
    return mailbox.last_sent_at + timedelta(seconds=gap_seconds(mailbox))


def hour_share(*, allowance: int, used_before_this_hour: int, hours_left: int) -> int:
    """How many of today's ``allowance`` this hour may take: what is left of it when the hour began,
    divided over the ``hours_left`` of the window (this one included), rounded up — so what an hour leaves
    unused is carried into the next ones, and the last hour may take all that is left."""
    left = max(0, allowance - used_before_this_hour)
    return math.ceil(left / max(1, hours_left))


@transaction.atomic
def mailboxes_ramp_step_back(*, mailbox_ids: Iterable[int], today: date | None = None) -> int:
    """Set the ramp of each mailbox back to half of today's allowance (not below its first day's), by
    moving its day one: a campaign rule found the mail it sent doing badly. A mailbox whose warm-up was off
    has it turned on from half its daily cap. Returns how many mailboxes changed."""
    today = today or timezone.localdate()
    changed = []
    for mailbox in Mailbox.objects.select_for_update().filter(pk__in=list(mailbox_ids)):
        half = warmup_allowance(mailbox, today) // 2
        days_in = max(0, half - mailbox.warmup_start) // mailbox.warmup_increment
        mailbox.warmup_enabled, mailbox.warmup_started_on = True, today - timedelta(days=days_in)
        changed.append(mailbox)
    Mailbox.objects.bulk_update(changed, ["warmup_enabled", "warmup_started_on"])
    return len(changed)
