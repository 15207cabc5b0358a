"""Harvest: a configured source's records go through the lead intake (``cam.pipeline.intake``), which
decides for each whether it is created, updated, a duplicate, suppressed or rejected. This module owns
what is the harvest's own: reading each enabled source, and recording on the source how its last
harvest went.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone

from cam.models import Campaign, JobExecution, LeadSource
from cam.pipeline.intake import empty_counts, leads_intake
from cam.sources import SourceError, get_backend

logger = logging.getLogger(__name__)


def harvest_source(*, source: LeadSource, execution: JobExecution | None = None,
                   max_leads: int | None = None) -> dict[str, int]:
    """Harvest one configured source into its campaign; its failure is recorded on it and re-raised."""
    try:
        backend = get_backend(source.kind, source.config)
        counts = leads_intake(campaign=source.campaign, records=backend.records(), map_record=backend.map_record,
                              source=source, execution=execution, max_leads=max_leads).counts
    except (SourceError, ValidationError) as exc:
        message = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
        LeadSource.objects.filter(pk=source.pk).update(last_harvest_at=timezone.now(), last_error=message)
        raise SourceError(f"{source.name}: {message}") from exc
    LeadSource.objects.filter(pk=source.pk).update(last_harvest_at=timezone.now(), last_harvest_counts=counts,
                                                   last_error="")
    return counts


def harvest_campaign(*, campaign: Campaign, execution: JobExecution | None = None,
                     max_leads: int | None = None) -> dict[str, Any]:
    """Harvest every enabled source of ``campaign``. A failing source is reported, the others still run."""
    totals: dict[str, Any] = {**empty_counts(), "sources": 0, "sources_failed": 0}
    errors: list[str] = []
    for source in campaign.sources.filter(enabled=True).order_by("pk"):
        room = None if max_leads is None else max_leads - totals["created"]
        if room is not None and room <= 0:
            break
        totals["sources"] += 1
        try:
            counts = harvest_source(source=source, execution=execution, max_leads=room)
        except SourceError as exc:
            logger.warning("Harvest of source %s failed: %s", source.pk, exc)
            totals["sources_failed"] += 1
            errors.append(str(exc))
            continue
        for key, value in counts.items():
            totals[key] += value
    if errors:
        totals["errors"] = errors
    return totals
