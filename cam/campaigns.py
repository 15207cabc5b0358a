"""Campaign status changes: the one place that pauses, resumes, activates, degrades or clears a campaign.

The admin, the API and the rules engine all call these, so a status change always carries its
reason and time. Creating a campaign (with its default rules) and editing it live here too (its steps
are ``cam.sequences``'); the rules engine (``cam.decisions``) depends on this module, never the other
way round.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from cam.models import Campaign, CampaignRule, Mailbox
from cam.outreach.pacing import mailboxes_ramp_step_back

Status = Campaign.Status

# Which statuses each change applies to; a campaign in any other status is left as it is.
PAUSABLE = (Status.ACTIVE, Status.DEGRADED)
RESUMABLE = (Status.PAUSED, Status.DEGRADED)
ACTIVATABLE = (Status.DRAFT,)


def _campaigns_set_status(*, campaign_ids: Iterable[int], from_statuses: Iterable[str], to_status: str,
                          reason: str) -> int:
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
CLEARABLE = (Status.DEGRADED,)


@transaction.atomic
def campaign_apply_rule(*, campaign_id: int, action: str, reason: str) -> bool:
    """Apply a rule's decision: ``PAUSE`` pauses an active or degraded campaign, ``DEGRADE`` marks an
    active one degraded, and ``CLEAR`` (the degrade rule no longer holds) sets a degraded one active
    again. Returns whether the status changed; raises ``ValueError`` for another action."""
    if action == "PAUSE":
        paused = bool(campaigns_pause(campaign_ids=[campaign_id], reason=reason))
        if paused:
            # Its mailboxes' mail did badly: they start again lower on their ramp.
            mailboxes_ramp_step_back(mailbox_ids=Mailbox.objects.filter(campaigns=campaign_id)
                                     .values_list("pk", flat=True))
        return paused
    if action == "DEGRADE":
        return bool(_campaigns_set_status(campaign_ids=[campaign_id], from_statuses=DEGRADABLE,
                                          to_status=Status.DEGRADED, reason=reason))
    if action == "CLEAR":
        return bool(_campaigns_set_status(campaign_ids=[campaign_id], from_statuses=CLEARABLE,
                                          to_status=Status.ACTIVE, reason=reason))
    raise ValueError(f"Unknown rule action {action!r}.")


# -- creating and editing campaigns and their steps -------------------------------------------------

# A new campaign's rules (see cam.decisions): a threshold given as a name is read from that guard-rail field
# of the campaign, so the bounce and complaint rules start from what staff set on it.
# The complaint rule looks at 1,000 sends and waits for 100: Gmail's and Yahoo's line is 0.3 %, and on
# fewer sends one complaint alone would cross it (1 in 100 is 1 %), pausing a campaign on noise.
# The positive-reply rule measures only sends at least 5 days old: most replies come within a few days,
# so the newest sends would read as unanswered and pull the rate down in every growing campaign.
Rule = CampaignRule
POSITIVE_REPLY_MIN_AGE_DAYS = 5
DEFAULT_RULES = (
    # (metric, comparison, threshold, window, min_sample, action, min_age_days)
    (Rule.Metric.HARD_BOUNCE_RATE, Rule.Comparison.ABOVE, "max_hard_bounce_rate", 100, 20, Rule.Action.PAUSE, 0),
    (Rule.Metric.COMPLAINT_RATE, Rule.Comparison.ABOVE, "max_complaint_rate", 1000, 100, Rule.Action.PAUSE, 0),
    (Rule.Metric.POSITIVE_REPLY_RATE, Rule.Comparison.BELOW, Decimal("0.5"), 200, 200, Rule.Action.DEGRADE,
     POSITIVE_REPLY_MIN_AGE_DAYS),
)


def campaign_rules_ensure_defaults(campaign: Campaign) -> int:
    """Give ``campaign`` the default rules it has no rule for yet (by metric); returns how many were
    created. The bounce and complaint thresholds come from the campaign's guard-rail fields. Safe to
    call again: a metric that already has a rule (edited or disabled by staff) is left alone."""
    present = set(CampaignRule.objects.filter(campaign=campaign).values_list("metric", flat=True))
    rules = [CampaignRule(campaign=campaign, metric=metric, comparison=comparison,
                          threshold=getattr(campaign, threshold) if isinstance(threshold, str) else threshold,
                          window=window, min_sample=min_sample, action=action, min_age_days=min_age_days)
             for metric, comparison, threshold, window, min_sample, action, min_age_days in DEFAULT_RULES
             if metric not in present]
    CampaignRule.objects.bulk_create(rules)
    return len(rules)


@transaction.atomic
def campaign_create(*, fields: dict[str, Any], mailboxes: Iterable[Mailbox] | None = None) -> Campaign:
    """Create a (draft, unless ``fields`` says otherwise) campaign with the default rules, as the admin
    does. Raises Django's ``ValidationError`` for values the model refuses."""
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
    campaign_save_settings(campaign, fields)
    if mailboxes is not None:
        campaign.mailboxes.set(mailboxes)
    return campaign


# Written only by pause, resume, activate and the rules: a settings edit never writes them back, so an
# edit made while the status changes cannot undo the change with the status it read before.
STATUS_FIELDS = frozenset({"status", "status_reason", "status_changed_at"})


def campaign_save_settings(campaign: Campaign, names: Iterable[str]) -> None:
    """Save the settings ``names`` of an existing campaign (and its ``updated_at``), and nothing else."""
    concrete = {field.name for field in Campaign._meta.concrete_fields if not field.primary_key}
    update_fields = (set(names) & concrete) - STATUS_FIELDS
    campaign.save(update_fields=sorted(update_fields | {"updated_at"}))
