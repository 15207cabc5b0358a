"""Campaign status changes: the one place that pauses, resumes or activates a campaign.

The admin, the API and the rules engine all call these, so a status change always carries its
reason and time.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from cam.models import Campaign, Mailbox, SequenceStep

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


# -- creating and editing campaigns and their steps -------------------------------------------------

@transaction.atomic
def campaign_create(*, fields: dict[str, Any], mailboxes: Iterable[Mailbox] | None = None) -> Campaign:
    """Create a (draft, unless ``fields`` says otherwise) campaign with the default rules, as the admin
    does. Raises Django's ``ValidationError`` for values the model refuses."""
    # Imported here: cam.decisions applies rules through this module, so it imports it first.
    from cam.decisions import campaign_rules_ensure_defaults

    campaign = Campaign(**fields)
    campaign.full_clean()
    campaign.save()
    if mailboxes is not None:
        campaign.mailboxes.set(mailboxes)
    campaign_rules_ensure_defaults(campaign)
    return campaign


@transaction.atomic
def campaign_update(*, campaign: Campaign, fields: dict[str, Any],
                    mailboxes: Iterable[Mailbox] | None = None) -> Campaign:
    """Change ``fields`` (never the status: pause, resume and activate do that) and, when given, the
    mailboxes. Raises Django's ``ValidationError`` for values the model refuses."""
    if "status" in fields:
        raise ValueError("campaign_update does not change the status; use campaigns_pause/resume/activate.")
    for name, value in fields.items():
        setattr(campaign, name, value)
    campaign.full_clean()
    campaign.save()
    if mailboxes is not None:
        campaign.mailboxes.set(mailboxes)
    return campaign


class StepInUse(Exception):
    """A sequence step that emails were sent from (or queued with) cannot be deleted."""


@transaction.atomic
def sequence_step_save(*, step: SequenceStep, fields: dict[str, Any]) -> SequenceStep:
    """Create or change a step. Raises Django's ``ValidationError`` for values the model refuses
    (a position taken in the campaign, a first step without a subject)."""
    for name, value in fields.items():
        setattr(step, name, value)
    step.full_clean()
    step.save()
    return step


@transaction.atomic
def sequence_step_delete(*, step: SequenceStep) -> None:
    """Delete a step no email refers to; raises ``StepInUse`` otherwise (its emails keep their step)."""
    used = step.outbound_emails.count()
    if used:
        raise StepInUse(f"Step {step.position} has {used} email(s) sent or queued from it, so it is kept; "
                        f"change its templates instead.")
    step.delete()
