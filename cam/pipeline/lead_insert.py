"""Writing a batch of new leads: by COPY on PostgreSQL, a bulk insert elsewhere.

A million-row import spends most of its time writing if each batch goes through ``bulk_create``:
Django builds every value through the field's preparation, psycopg quotes them into one statement of
megabytes and the server parses it again. On PostgreSQL a batch is instead streamed with ``COPY``
into a temporary staging table shaped like ``cam_lead`` and moved across by one set-based
``INSERT … SELECT … ON CONFLICT DO NOTHING`` (a lead another intake added meanwhile is left to it, as
``ignore_conflicts`` does). Each row is a tuple built from one prepared template of the model's
defaults, so no model instance is made per lead.

Both ways give the same leads (tests/pipeline/test_lead_insert.py holds them to it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models

from cam.models import Campaign, Lead, LeadSource

STAGING_TABLE = "cam_lead_staging"


def _columns() -> list[models.Field[Any, Any]]:
    return [field for field in Lead._meta.concrete_fields
            if not field.primary_key and not getattr(field, "generated", False)]


def leads_insert(*, campaign: Campaign, source: LeadSource | None, now: datetime,
                 rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert a ``NEW`` lead of ``campaign`` for each of ``rows`` (field name → value: the address and
    its flags, the raw data and the profile fields); every other field takes its default. Rows whose
    address is already a lead of the campaign are skipped."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        Lead.objects.bulk_create([Lead(campaign=campaign, source=source, harvested_at=now, **row) for row in rows],
                                 ignore_conflicts=True)
        return
    columns = _columns()
    template = _template(columns, campaign=campaign, source=source, now=now)
    position = {field.name: index for index, field in enumerate(columns)}
    json_columns = {field.name for field in columns if isinstance(field, models.JSONField)}
    names = ", ".join(connection.ops.quote_name(str(field.column)) for field in columns)
    with connection.cursor() as cursor:
        # Shaped by the table itself, so a new column needs no change here; kept for the connection.
        cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {STAGING_TABLE} AS "
                       f"SELECT {names} FROM {Lead._meta.db_table} WITH NO DATA")
        with cursor.cursor.copy(f"COPY {STAGING_TABLE} ({names}) FROM STDIN") as copy:
            for row in rows:
                values = list(template)
                for name, value in row.items():
                    values[position[name]] = _json(value) if name in json_columns else value
                copy.write_row(values)
        # Emptied by the same statement that moves its rows, so a batch inside a longer transaction
        # never sees the previous batch's rows.
        cursor.execute(f"WITH staged AS (DELETE FROM {STAGING_TABLE} RETURNING {names}) "
                       f"INSERT INTO {Lead._meta.db_table} ({names}) SELECT {names} FROM staged "
                       f"ON CONFLICT DO NOTHING")


def _template(columns: list[models.Field[Any, Any]], *, campaign: Campaign, source: LeadSource | None,
              now: datetime) -> list[Any]:
    """Each column's value for a new lead before its own fields are set, as COPY writes it."""
    lead = Lead(campaign=campaign, source=source, harvested_at=now)
    values = []
    for field in columns:
        value = field.pre_save(lead, add=True)
        if isinstance(field, models.DateTimeField) and (field.auto_now or field.auto_now_add):
            value = now
        if isinstance(field, models.JSONField):
            value = _json(value)
        values.append(value)
    return values


def _json(value: Any) -> str | None:
    # None is SQL NULL, as Django stores it, not the JSON null.
    return None if value is None else json.dumps(value, cls=DjangoJSONEncoder)


def statistics_refresh() -> None:
    """Refresh PostgreSQL's statistics of the leads table (a no-op elsewhere).

    A large import grows the table faster than autovacuum's statistics follow: with a campaign thought
    to hold a few hundred leads, the planner answers each batch's "which of these addresses are leads
    already" by reading every lead of the campaign instead of probing the index, and the import turns
    quadratic. The intake calls this each time the leads it created double."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {Lead._meta.db_table}")
