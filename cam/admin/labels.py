"""Status values as coloured labels, the same colour for the same meaning on every list and page:
green for going well, amber for waiting or paused, orange for degraded or uncertain, red for failed,
blue for at work, grey for not started or over. The colours are CAM's style sheet's (cam/admin/cam.css)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django.utils.html import format_html
from django.utils.safestring import SafeString
from unfold.decorators import display

from cam.models import Campaign, InboundEmail, JobExecution, Lead, OutboundEmail, WorkerHeartbeat

GREEN, AMBER, ORANGE, RED, BLUE, GREY, VIOLET = "green", "amber", "orange", "red", "blue", "grey", "violet"

CAMPAIGN = {
    Campaign.Status.DRAFT: GREY, Campaign.Status.ACTIVE: GREEN, Campaign.Status.PAUSED: AMBER,
    Campaign.Status.DEGRADED: ORANGE, Campaign.Status.COMPLETED: GREY,
}
LEAD = {
    Lead.Status.NEW: GREY, Lead.Status.QUALIFIED: BLUE, Lead.Status.DISQUALIFIED: GREY,
    Lead.Status.IN_SEQUENCE: BLUE, Lead.Status.PAUSED: AMBER, Lead.Status.INTERESTED: GREEN,
    Lead.Status.REFERRED: VIOLET, Lead.Status.MEETING_BOOKED: GREEN, Lead.Status.NOT_INTERESTED: GREY,
    Lead.Status.NURTURE: AMBER,
    Lead.Status.DEAD: GREY, Lead.Status.BOUNCED: RED, Lead.Status.UNSUBSCRIBED: RED,
    Lead.Status.WON: GREEN, Lead.Status.LOST: GREY,
}
OUTBOUND = {
    OutboundEmail.Status.PENDING: GREY, OutboundEmail.Status.CLAIMED: BLUE,
    OutboundEmail.Status.SENT: GREEN, OutboundEmail.Status.RETRY: AMBER, OutboundEmail.Status.FAILED: RED,
    OutboundEmail.Status.UNKNOWN: ORANGE, OutboundEmail.Status.CANCELLED: GREY,
}
DOMAIN = {"pass": GREEN, "warn": AMBER, "fail": RED, "unchecked": GREY}
REPLY = {
    InboundEmail.Category.POSITIVE: GREEN, InboundEmail.Category.QUESTION: BLUE,
    InboundEmail.Category.REFERRAL: VIOLET, InboundEmail.Category.NEUTRAL: GREY,
    InboundEmail.Category.NEGATIVE: GREY, InboundEmail.Category.UNSUBSCRIBE: RED,
    InboundEmail.Category.OUT_OF_OFFICE: AMBER, InboundEmail.Category.AUTO_REPLY: GREY,
    InboundEmail.Category.BOUNCE_HARD: RED, InboundEmail.Category.BOUNCE_SOFT: ORANGE,
    InboundEmail.Category.COMPLAINT: RED, InboundEmail.Category.AUTH_FAILURE: AMBER,
}
JOB = {
    JobExecution.Status.RUNNING: BLUE, JobExecution.Status.COMPLETED: GREEN, JobExecution.Status.FAILED: RED,
    JobExecution.Status.SKIPPED: GREY,
}
WORKER = {
    WorkerHeartbeat.Status.STARTING: BLUE, WorkerHeartbeat.Status.RUNNING: BLUE, WorkerHeartbeat.Status.IDLE: GREEN,
    WorkerHeartbeat.Status.STOPPED: GREY, WorkerHeartbeat.Status.ERROR: RED, WorkerHeartbeat.Status.LOST: RED,
}
HEALTH = {"healthy": GREEN, "ok": GREEN, "degraded": AMBER, "near": AMBER, "unhealthy": RED, "over": RED}


def label(value: Any, text: Any, tones: Mapping[Any, str]) -> SafeString | str:
    """``text`` in a coloured pill; the value's tone, grey when it has none. Nothing for an empty value."""
    if value in (None, ""):
        return "—"
    return format_html('<span class="cam-label cam-label-{}" data-value="{}">{}</span>',
                       tones.get(value, GREY), value, text)


def label_column(field: str, tones: Mapping[Any, str], description: str | None = None) -> Callable:
    """A list or read-only column showing ``field`` (a choices field) as a label, sortable by the field."""

    def column(model_admin, obj) -> SafeString | str:
        value = getattr(obj, field)
        return label(value, getattr(obj, f"get_{field}_display")(), tones)

    column.__name__ = f"{field}_label"
    return display(description=description or field.replace("_", " ").capitalize(), ordering=field)(column)
