"""Qualification and enrolment: a scored lead either enters the sequence or is set aside, with why.

Everything here is a handful of set-based UPDATEs per campaign, whatever the number of leads.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import CharField, Exists, OuterRef, Q, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from cam.in_flight import IN_FLIGHT
from cam.models import Campaign, Lead, OutboundEmail
from cam.outreach.windows import next_window_opening

Status = Lead.Status

# A lead in one of these is in an active sequence: its address must not be enrolled anywhere else.
ACTIVE_SEQUENCE_STATUSES = (Status.IN_SEQUENCE, Status.PAUSED)
# Leads the qualify step may (re)decide: scored, never contacted, not yet in a sequence.
UNDECIDED_STATUSES = (Status.NEW, Status.QUALIFIED, Status.DISQUALIFIED)
# An email to the address went out, or may have: its outcome unknown, or in a sender's hands right now.
CONTACTED = Q(status__in=(OutboundEmail.Status.SENT, OutboundEmail.Status.UNKNOWN)) | IN_FLIGHT


def _score_text(prefix: str, suffix: str) -> Concat:
    return Concat(Value(prefix), Cast("score", output_field=CharField()), Value(suffix), output_field=CharField())


@transaction.atomic
def leads_qualify(*, campaign: Campaign, now: datetime | None = None) -> dict[str, int]:
    """Decide every scored, uncontacted lead of ``campaign``; returns the counts.

    Score ≥ ``min_score`` → enrolled (``IN_SEQUENCE``, first step due at the next send-window opening),
    unless the address was already contacted or is in another campaign's active sequence, or the
    campaign has no steps: then it stays ``QUALIFIED`` with the reason. Below → ``DISQUALIFIED``.
    """
    now = now or timezone.now()
    minimum = campaign.min_score
    candidates = Lead.objects.filter(campaign=campaign, status__in=UNDECIDED_STATUSES, current_step=0,
                                     score__isnull=False)

    disqualified = candidates.filter(score__lt=minimum).exclude(status=Status.DISQUALIFIED).update(
        status=Status.DISQUALIFIED, status_changed_at=now, updated_at=now, next_send_at=None,
        status_reason=_score_text("Score ", f" is below the campaign's minimum of {minimum}."))

    passing = candidates.filter(score__gte=minimum)
    elsewhere = Exists(Lead.objects.filter(email=OuterRef("email"), status__in=ACTIVE_SEQUENCE_STATUSES)
                       .exclude(campaign=campaign))
    contacted = Exists(OutboundEmail.objects.filter(CONTACTED, to_email=OuterRef("email")))
    has_steps = campaign.steps.exists()
    held = {
        "in another campaign's active sequence": passing.filter(elsewhere),
        "already contacted by an earlier campaign": passing.filter(~elsewhere, contacted),
    } if has_steps else {"waiting: the campaign has no sequence steps": passing}
    not_enrolled = 0
    for why, leads in held.items():
        reason = _score_text("Score ", f" qualifies; not enrolled: {why}.")
        # A lead held for the same reason as last run keeps its status time: nothing changed for it.
        not_enrolled += leads.count()
        leads.exclude(status=Status.QUALIFIED, status_reason=reason).update(
            status=Status.QUALIFIED, status_changed_at=now, updated_at=now, status_reason=reason)
    enrolled = 0
    if has_steps:
        opening = next_window_opening(campaign, now)
        enrolled = passing.filter(~elsewhere, ~contacted).update(
            status=Status.IN_SEQUENCE, status_changed_at=now, updated_at=now, next_send_at=opening,
            blocked_reason="", status_reason=_score_text("Score ", f" meets the minimum of {minimum}; enrolled."))
    return {"enrolled": enrolled, "qualified_not_enrolled": not_enrolled, "disqualified": disqualified}
