"""Harvest: records from a source become leads — created, updated, duplicate, suppressed or rejected.

Records are handled in batches; each batch costs the same few queries whatever its size (one read of
the suppressions, one of the existing leads, one bulk insert, one bulk update, one insert of the
rejections), and nothing but the current batch is held in memory. A record the database cannot store
as it is (a NUL character, a lone surrogate, NaN — see ``records.unstorable_reason``) is rejected like
any other bad record, by its line, so it never fails the batch it is in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from itertools import islice
from typing import Any

import dns.resolver
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from cam.addresses import mx_resolver
from cam.bulk import bulk_update_values
from cam.models import Campaign, HarvestRejection, JobExecution, Lead, LeadSource
from cam.pipeline.records import (
    CleanRecord,
    RejectedRecord,
    clean_record,
    storable_data,
    storable_text,
    unstorable_reason,
)
from cam.sources import SourceError, SourceRecord, get_backend
from cam.suppressions import suppressed_addresses

logger = logging.getLogger(__name__)

BATCH_SIZE = 1000
OUTCOMES = ("created", "updated", "duplicate", "suppressed", "rejected")
PROFILE_FIELDS = ("first_name", "last_name", "company", "title", "industry", "country", "company_size",
                  "website", "timezone")


def empty_counts() -> dict[str, int]:
    return {"read": 0, **dict.fromkeys(OUTCOMES, 0)}


def harvest_records(
    *,
    campaign: Campaign,
    records: Iterable[SourceRecord],
    map_record: Callable[[Mapping[str, Any]], dict[str, Any]],
    source: LeadSource | None = None,
    execution: JobExecution | None = None,
    max_leads: int | None = None,
    on_batch: Callable[[dict[str, int]], None] | None = None,
) -> dict[str, int]:
    """Turn ``records`` into leads of ``campaign``; returns how many ended each way.

    ``max_leads`` caps the leads created (the rest of the source is not read). ``on_batch`` is
    called with the running counts after each batch (progress bars).
    """
    counts = empty_counts()
    iterator = iter(records)
    # One resolver for the whole run: it caches answers, so each domain is looked up once.
    dns_resolver = mx_resolver() if settings.AICMO_CAM_VERIFY_MX else None
    while max_leads is None or counts["created"] < max_leads:
        batch = list(islice(iterator, BATCH_SIZE))
        if not batch:
            break
        room = None if max_leads is None else max_leads - counts["created"]
        _harvest_batch(campaign=campaign, batch=batch, map_record=map_record, source=source, execution=execution,
                       dns_resolver=dns_resolver, counts=counts, room=room)
        if on_batch:
            on_batch(dict(counts))
    return counts


@transaction.atomic
def _harvest_batch(*, campaign: Campaign, batch: list[SourceRecord],
                   map_record: Callable[[Mapping[str, Any]], dict[str, Any]], source: LeadSource | None,
                   execution: JobExecution | None, counts: dict[str, int], room: int | None,
                   dns_resolver: dns.resolver.Resolver | None) -> None:
    now = timezone.now()
    check_mx = settings.AICMO_CAM_VERIFY_MX
    rejections: list[HarvestRejection] = []
    clean: list[tuple[SourceRecord, CleanRecord]] = []
    seen: set[str] = set()
    for record in batch:
        counts["read"] += 1
        mapped = map_record(record.data)
        try:
            if record.error:
                raise RejectedRecord(record.error)
            # Checked on the whole record, not only the mapped fields: all of it is kept as raw_data.
            unstorable = unstorable_reason(record.data)
            if unstorable:
                raise RejectedRecord(unstorable)
            cleaned = clean_record(mapped, check_mx=check_mx, dns_resolver=dns_resolver)
        except RejectedRecord as exc:
            # The rejection keeps what the record held, made storable: a NUL must not fail the batch.
            rejections.append(HarvestRejection(
                campaign=campaign, source=source, job_execution=execution, line=record.line,
                reason=storable_text(str(exc)), email=storable_text(str(mapped.get("email") or ""))[:320],
                raw_data=storable_data(record.data)))
            continue
        if cleaned.address.email in seen:
            counts["duplicate"] += 1
            continue
        seen.add(cleaned.address.email)
        clean.append((record, cleaned))

    emails = [c.address.email for _, c in clean]
    suppressed = suppressed_addresses(emails)
    existing = {lead.email: lead for lead in Lead.objects.filter(campaign=campaign, email__in=emails)
                .only("pk", "email", *PROFILE_FIELDS, "is_role_account", "is_free_mail")}

    to_create: list[Lead] = []
    to_update: list[Lead] = []
    for record, cleaned in clean:
        address = cleaned.address
        if address.email in suppressed:
            counts["suppressed"] += 1
            continue
        lead = existing.get(address.email)
        if lead is None:
            if room is not None and len(to_create) >= room:
                counts["read"] -= 1  # past the cap: left for a later harvest, so not read this time
                continue
            to_create.append(Lead(
                campaign=campaign, email=address.email, is_role_account=address.is_role_account,
                is_free_mail=address.is_free_mail, source=source, harvested_at=now,
                raw_data=_jsonable(record.data), **cleaned.fields))
            continue
        changes = {name: value for name, value in cleaned.fields.items()
                   if value not in (None, "") and getattr(lead, name) != value}
        if not changes:
            counts["duplicate"] += 1
            continue
        for name, value in changes.items():
            setattr(lead, name, value)
        lead.source, lead.harvested_at, lead.raw_data, lead.updated_at = source, now, _jsonable(record.data), now
        to_update.append(lead)

    Lead.objects.bulk_create(to_create, ignore_conflicts=True)
    bulk_update_values(to_update, [*PROFILE_FIELDS, "source", "harvested_at", "raw_data", "updated_at"])
    HarvestRejection.objects.bulk_create(rejections)
    counts["created"] += len(to_create)
    counts["updated"] += len(to_update)
    counts["rejected"] += len(rejections)


def _jsonable(data: Mapping[str, Any]) -> dict[str, Any]:
    return {str(key): value if isinstance(value, str | int | float | bool | list | dict | None) else str(value)
            for key, value in data.items()}


def harvest_source(*, source: LeadSource, execution: JobExecution | None = None,
                   max_leads: int | None = None) -> dict[str, int]:
    """Harvest one configured source into its campaign; its failure is recorded on it and re-raised."""
    try:
        backend = get_backend(source.kind, source.config)
        counts = harvest_records(campaign=source.campaign, records=backend.records(), map_record=backend.map_record,
                                 source=source, execution=execution, max_leads=max_leads)
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
