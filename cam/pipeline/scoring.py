"""Scoring a lead against its campaign's ideal-customer profile.

``score_lead`` is pure: it reads a lead and a campaign and returns a 0–100 score with a breakdown
per criterion, so staff can see why a lead scored what it did. A criterion the profile leaves empty
is not counted; points earned are scaled to the weights of the criteria that are configured, then
the free-mail and role-account penalties are taken off.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from cam.bulk import bulk_update_values
from cam.models import Campaign, Lead

BATCH_SIZE = 2000


@dataclass(frozen=True)
class Score:
    value: int
    breakdown: dict[str, Any]


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _industry(lead: Lead, campaign: Campaign) -> tuple[bool, str]:
    industry = _norm(lead.industry)
    for wanted in campaign.icp_industries:
        if industry and (_norm(wanted) in industry or industry in _norm(wanted)):
            return True, f"industry {lead.industry!r} matches {wanted!r}"
    return False, f"industry {lead.industry!r} is not in the profile" if industry else "industry unknown"


def _title(lead: Lead, campaign: Campaign) -> tuple[bool, str]:
    title = _norm(lead.title)
    for keyword in campaign.icp_title_keywords:
        if title and re.search(rf"(?<!\w){re.escape(_norm(keyword))}(?!\w)", title):
            return True, f"title {lead.title!r} contains {keyword!r}"
    return False, f"title {lead.title!r} has no profile keyword" if title else "title unknown"


def _country(lead: Lead, campaign: Campaign) -> tuple[bool, str]:
    country = _norm(lead.country)
    if country and country in {_norm(c) for c in campaign.icp_countries}:
        return True, f"country {lead.country!r} is in the profile"
    return False, f"country {lead.country!r} is not in the profile" if country else "country unknown"


def _company_size(lead: Lead, campaign: Campaign) -> tuple[bool, str]:
    low, high = campaign.icp_company_size_min, campaign.icp_company_size_max
    if lead.company_size is None:
        return False, "company size unknown"
    fits = (low is None or lead.company_size >= low) and (high is None or lead.company_size <= high)
    bounds = f"{low if low is not None else 0}–{high if high is not None else '∞'}"
    return fits, f"company size {lead.company_size} {'is' if fits else 'is not'} within {bounds}"


CRITERIA: list[tuple[str, str, Callable[[Campaign], bool], Callable[[Lead, Campaign], tuple[bool, str]]]] = [
    # (name, weight field, "is this criterion configured?", matcher)
    ("industry", "weight_industry", lambda c: bool(c.icp_industries), _industry),
    ("title", "weight_title", lambda c: bool(c.icp_title_keywords), _title),
    ("country", "weight_country", lambda c: bool(c.icp_countries), _country),
    ("company_size", "weight_company_size",
     lambda c: c.icp_company_size_min is not None or c.icp_company_size_max is not None, _company_size),
]


def score_lead(lead: Lead, campaign: Campaign) -> Score:
    breakdown: dict[str, Any] = {}
    earned = possible = 0
    for name, weight_field, configured, matcher in CRITERIA:
        weight = getattr(campaign, weight_field)
        if not configured(campaign) or weight == 0:
            continue
        matched, detail = matcher(lead, campaign)
        possible += weight
        earned += weight if matched else 0
        breakdown[name] = {"matched": matched, "points": weight if matched else 0, "weight": weight,
                           "detail": detail}
    base = round(100 * earned / possible) if possible else 100
    penalties = 0
    if lead.is_free_mail and campaign.penalty_free_mail:
        penalties += campaign.penalty_free_mail
        breakdown["free_mail"] = {"points": -campaign.penalty_free_mail, "detail": "free-mail address"}
    if lead.is_role_account and campaign.penalty_role_account:
        penalties += campaign.penalty_role_account
        breakdown["role_account"] = {"points": -campaign.penalty_role_account, "detail": "role account"}
    value = max(0, min(100, base - penalties))
    breakdown["total"] = {"base": base, "penalties": penalties, "score": value}
    return Score(value=value, breakdown=breakdown)


# Leads past these statuses have been contacted or decided on; re-scoring them would change nothing.
SCORABLE_STATUSES = (Lead.Status.NEW, Lead.Status.QUALIFIED, Lead.Status.DISQUALIFIED)


def leads_score(*, campaign: Campaign, only_unscored: bool = False, batch_size: int = BATCH_SIZE) -> dict[str, int]:
    """Score the campaign's leads that have not been contacted yet, in batches.

    Each batch costs one read and one bulk update, whatever its size. Returns the counts.
    """
    leads = Lead.objects.filter(campaign=campaign, status__in=SCORABLE_STATUSES, current_step=0).only(
        "pk", "industry", "title", "country", "company_size", "is_free_mail", "is_role_account", "score",
        "score_breakdown")
    if only_unscored:
        leads = leads.filter(score__isnull=True)
    counts = {"scored": 0, "changed": 0}
    now = timezone.now()
    last_pk = 0
    while True:
        batch = list(leads.filter(pk__gt=last_pk).order_by("pk")[:batch_size])
        if not batch:
            return counts
        changed = []
        for lead in batch:
            result = score_lead(lead, campaign)
            if (lead.score, lead.score_breakdown) != (result.value, result.breakdown):
                lead.score, lead.score_breakdown, lead.scored_at = result.value, result.breakdown, now
                changed.append(lead)
        bulk_update_values(changed, ["score", "score_breakdown", "scored_at"])
        counts["scored"] += len(batch)
        counts["changed"] += len(changed)
        last_pk = batch[-1].pk
        if len(batch) < batch_size:
            return counts
