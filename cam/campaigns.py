"""Campaign status changes: the one place that pauses, resumes or activates a campaign.

The admin, the API and the rules engine all call these, so a status change always carries its
reason and time.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from cam.models import Campaign

Status = Campaign.Status

# Which statuses each change applies to; a campaign in any other status is left as it is.
PAUSABLE = (Status.ACTIVE, Status.DEGRADED)
RESUMABLE = (Status.PAUSED, Status.DEGRADED)
ACTIVATABLE = (Status.DRAFT,)


def _campaigns_set_status(*, campaign_ids: Iterable[int], from_statuses, to_status: str, reason: str) -> int:
    return Campaign.objects.filter(pk__in=list(campaign_ids), status__in=from_statuses).update(
        status=to_status, status_reason=reason, status_changed_at=timezone.now(), updated_at=timezone.now()
    )


@transaction.atomic
def campaigns_pause(*, campaign_ids: Iterable[int], reason: str) -> int:
    """Pause active or degraded campaigns; they send nothing until resumed. Returns how many changed."""
    return _campaigns_set_status(campaign_ids=campaign_ids, from_statuses=PAUSABLE, to_status=Status.PAUSED,
                                 reason=reason)


@transaction.atomic
def campaigns_resume(*, campaign_ids: Iterable[int], reason: str) -> int:
    """Set paused or degraded campaigns active again. Returns how many changed."""
    return _campaigns_set_status(campaign_ids=campaign_ids, from_statuses=RESUMABLE, to_status=Status.ACTIVE,
                                 reason=reason)


@transaction.atomic
def campaigns_activate(*, campaign_ids: Iterable[int], reason: str) -> int:
    """Start draft campaigns. Returns how many changed."""
    return _campaigns_set_status(campaign_ids=campaign_ids, from_statuses=ACTIVATABLE, to_status=Status.ACTIVE,
                                 reason=reason)


DEGRADABLE = (Status.ACTIVE,)


@transaction.atomic
def campaign_apply_rule(*, campaign_id: int, action: str, reason: str) -> bool:
    """Apply a rule's action: ``PAUSE`` pauses an active or degraded campaign, ``DEGRADE`` marks an
    active one degraded. Returns whether the status changed; raises ``ValueError`` for another action."""
    if action == "PAUSE":
        return bool(campaigns_pause(campaign_ids=[campaign_id], reason=reason))
    if action == "DEGRADE":
        return bool(_campaigns_set_status(campaign_ids=[campaign_id], from_statuses=DEGRADABLE,
                                          to_status=Status.DEGRADED, reason=reason))
    raise ValueError(f"Unknown rule action {action!r}.")
