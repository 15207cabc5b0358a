"""Writing a batch of new leads: by COPY on PostgreSQL, a bulk insert elsewhere.

A million-row import spends most of its time writing if each batch goes through ``bulk_create``:
Django builds every value through the field's preparation, psycopg quotes them into one statement of
megabytes and the server parses it again. On PostgreSQL a batch is instead streamed with ``COPY``
into a temporary staging table holding what the records bring (``STAGED_FIELDS``), where the intake
looks up suppressions and existing leads by joining it, and moved across by one set-based ``INSERT …
SELECT … ON CONFLICT DO NOTHING`` that fills in the columns all the batch's leads share from one
prepared template of the model's defaults (a lead another intake added meanwhile is left to it, as
``ignore_conflicts`` does). No model instance is made per lead.

The COPY's text is made whole by ``staged_rows``, on the thread that judges the records, so that the
thread writing it only hands it over; and a CSV row's raw record is staged as its values, the names
once per batch, and made JSON by the database in the move (``jsonb_object``), not encoded in Python.

Both ways give the same leads (tests/pipeline/test_lead_insert.py holds them to it).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import chain, islice
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models

from cam.models import Campaign, Lead, LeadSource
from cam.sources.row_values import RowValues

STAGING_TABLE = "cam_lead_intake"
# The staged addresses, and every other spelling of those not in plain ASCII (see ``leads_stage``): what a
# lookup of suppressions or existing leads reads as ``… IN (STAGED_ADDRESSES)``.
STAGED_ADDRESSES = (f"SELECT email FROM {STAGING_TABLE} "
                    f"UNION ALL SELECT unnest(intake_spellings) FROM {STAGING_TABLE}")
# Each staged address's domain and every domain above it that still has a dot (as
# ``cam.addresses.domain_and_parents``), and the other spellings staged with it.
STAGED_DOMAINS = (f"SELECT array_to_string(labels[i:], '.') FROM (SELECT string_to_array("
                  f"substring(email from '[^@]*$'), '.') AS labels FROM {STAGING_TABLE}) AS staged, "
                  f"generate_series(1, greatest(cardinality(labels) - 1, 1)) AS i "
                  f"UNION ALL SELECT unnest(intake_spellings) FROM {STAGING_TABLE}")
# What a record brings to a new lead, staged row by row; every other column is the same for a whole batch.
STAGED_FIELDS = ("email", "is_role_account", "is_free_mail", "raw_data", "first_name", "last_name", "company",
                 "title", "industry", "country", "company_size", "website", "timezone")
# The staged fields but the raw record, which is staged after them, with the intake's own columns.
_PLAIN_FIELDS = tuple(name for name in STAGED_FIELDS if name != "raw_data")
_ENCODER = DjangoJSONEncoder()
# What no COPY text may hold: a NUL or a lone surrogate (the intake refuses a record holding one anywhere,
# ``records.unstorable_reason``; ``staged_rows`` checks its text once more).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


@dataclass(frozen=True)
class StagedRows:
    """A batch of new leads as ``leads_stage`` writes them: the COPY's text, the number of rows, and the
    column names of the raw records staged as values (see ``staged_rows``)."""

    text: bytes
    count: int
    raw_names: tuple[str, ...] = ()


def _columns() -> list[models.Field[Any, Any]]:
    return [field for field in Lead._meta.concrete_fields
            if not field.primary_key and not getattr(field, "generated", False)]


def staging_supported() -> bool:
    """Whether new leads are staged (``leads_stage``, ``leads_move``): on PostgreSQL."""
    return connection.vendor == "postgresql"


def leads_insert(*, campaign: Campaign, source: LeadSource | None, now: datetime,
                 rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert a ``NEW`` lead of ``campaign`` for each of ``rows`` (field name → value: the address and
    its flags, the raw data and the profile fields); every other field takes its default. Rows whose
    address is already a lead of the campaign are skipped."""
    if not rows:
        return
    if not staging_supported():
        Lead.objects.bulk_create([Lead(campaign=campaign, source=source, harvested_at=now, **{
            **row, **({"raw_data": dict(row["raw_data"])} if isinstance(row.get("raw_data"), RowValues) else {})})
            for row in rows], ignore_conflicts=True)
        return
    unknown = {name for row in rows for name in row} - set(STAGED_FIELDS)
    if unknown:
        raise ValueError(f"leads_insert sets only {', '.join(STAGED_FIELDS)}, not {', '.join(sorted(unknown))}")
    staged = staged_rows(rows)
    leads_stage(staged)
    leads_move(campaign=campaign, source=source, now=now, skip=(), raw_names=staged.raw_names)


def staged_rows(rows: Sequence[Mapping[str, Any]], spellings: Sequence[Sequence[str] | None] = ()) -> StagedRows:
    """``rows`` (field name → value, only ``STAGED_FIELDS``) as ``leads_stage`` writes them, each numbered by
    its position for ``leads_move``. Made apart from the COPY so that a caller may prepare a batch while
    the database is busy with the one before.

    ``spellings`` gives, by position, the other spellings of a row's address and of the domains it sits
    under (``None`` for a plain ASCII address, whose only spellings are itself and its domains as the
    database splits them), so that ``STAGED_ADDRESSES`` and ``STAGED_DOMAINS`` cover every spelling a
    suppression or lead may have been stored under.

    A raw record that is a ``RowValues`` (a CSV row) is staged as its list of values when it has the
    columns of the batch's first such row, and becomes JSON in the move; any other is encoded here."""
    columns = next((row["raw_data"].columns for row in rows if isinstance(row.get("raw_data"), RowValues)), None)
    if not rows:
        return StagedRows(text=b"", count=0, raw_names=())
    # Made a column at a time: each column's values are converted, checked for what COPY escapes and (only
    # when they hold any) escaped in one piece, then the rows are joined.
    texts = [_copy_column([row.get(name) for row in rows]) for name in _PLAIN_FIELDS]
    raws = [row.get("raw_data") for row in rows]
    staged_values = [raw for raw in raws if isinstance(raw, RowValues) and raw.columns is columns]
    arrays = iter(_arrays([raw.cells for raw in staged_values]))
    json = [None if raw is None or (isinstance(raw, RowValues) and raw.columns is columns)
            else _ENCODER.encode(dict(raw) if isinstance(raw, RowValues) else raw) for raw in raws]
    values = [next(arrays) if isinstance(raw, RowValues) and raw.columns is columns else None for raw in raws]
    other = [None if spelled is None else _array(spelled) for spelled in spellings] if spellings else [None] * len(rows)
    texts += [_copy_column(json), list(map(str, range(len(rows)))), _copy_column(other), _copy_column(values)]
    text = "\n".join(map("\t".join, zip(*texts, strict=True))) + "\n"
    if "\x00" in text or (not text.isascii() and _UNSTORABLE.search(text)):
        raise ValueError("A staged value holds a NUL character or a lone surrogate, which cannot be stored.")
    return StagedRows(text=text.encode(), count=len(rows), raw_names=columns.names if columns is not None else ())


def _copy_column(values: list[Any]) -> list[str]:
    """``values`` as COPY's text format writes them: ``\\N`` for None, ``t``/``f``, and text with its
    backslashes, tabs, line feeds and carriage returns escaped."""
    texts = [value if value.__class__ is str else "" if value is None
             else ("t" if value else "f") if value is True or value is False else str(value) for value in values]
    joined = "\x00".join(texts)
    if "\\" in joined or "\t" in joined or "\n" in joined or "\r" in joined:
        escaped = joined.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
        if escaped.count("\x00") != len(texts) - 1:  # a value held a NUL: left to the check of the whole
            return [_escape(text) for text in texts]
        texts = escaped.split("\x00")
    if None in values:
        texts = ["\\N" if value is None else text for value, text in zip(values, texts, strict=True)]
    return texts


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _arrays(rows: Sequence[Sequence[str]]) -> list[str]:
    """``_array`` of each of ``rows``, the values of all escaped in one piece."""
    if not rows:
        return []
    joined = "\x00".join(chain.from_iterable(rows))
    escaped = joined.replace("\\", "\\\\").replace('"', '\\"')
    cells = escaped.split("\x00")
    if len(cells) != sum(map(len, rows)):  # a value held a NUL: escaped one row at a time instead
        return [_array(values) for values in rows]
    it = iter(cells)
    return ['{"' + '","'.join(islice(it, len(values))) + '"}' if values else "{}" for values in rows]


def _array(values: Sequence[str]) -> str:
    """``values`` as a PostgreSQL array of text: each element quoted, its backslashes and quotes escaped."""
    if not values:
        return "{}"
    return '{"' + '","'.join(value.replace("\\", "\\\\").replace('"', '\\"') for value in values) + '"}'


def leads_stage(staged: StagedRows) -> None:
    """Stream ``staged`` (from ``staged_rows``) into the staging table by COPY (PostgreSQL only).

    Only the fields a record brings are staged; the columns every new lead of the batch shares (its
    campaign, source, status, times, …) are filled in by ``leads_move``, so COPY writes a dozen values
    a row rather than every column."""
    fields = [field for name in (*_PLAIN_FIELDS, "raw_data")
              if isinstance(field := Lead._meta.get_field(name), models.Field)]
    with connection.cursor() as cursor:
        # Shaped by the table itself; kept for the connection, and emptied by every commit (so it never
        # grows by the rows a long import moved through it).
        cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {STAGING_TABLE} ON COMMIT DELETE ROWS AS "
                       f"SELECT {_names(fields)}, 0::integer AS intake_row, NULL::text[] AS intake_spellings, "
                       f"NULL::text[] AS intake_values FROM {Lead._meta.db_table} WITH NO DATA")
        with cursor.cursor.copy(f"COPY {STAGING_TABLE} ({_names(fields)}, intake_row, intake_spellings, "
                                f"intake_values) FROM STDIN") as copy:
            copy.write(staged.text)


def leads_move(*, campaign: Campaign, source: LeadSource | None, now: datetime, skip: Collection[int],
               raw_names: Sequence[str] = (), created: bool = False) -> set[str] | None:
    """Insert the staged rows as ``NEW`` leads of ``campaign``, but those at the positions in ``skip``, and
    empty the staging table. A staged field left empty (a record without it) takes the field's default,
    as does every column not staged; a raw record staged as values (``staged_rows``) is made JSON under
    ``raw_names``. A row whose address is already a lead of the campaign is left out
    (``ON CONFLICT DO NOTHING``, as ``ignore_conflicts`` does), so a lead another intake added meanwhile is
    left to it. With ``created``, returns the addresses of the leads inserted, else ``None``."""
    columns = _columns()
    template = _template(columns, campaign=campaign, source=source, now=now)
    select, params = [], []
    for field, value in zip(columns, template, strict=True):
        column = connection.ops.quote_name(str(field.column))
        if field.name == "raw_data":
            select.append(f"COALESCE(staged.{column}, jsonb_object(%s::text[], staged.intake_values), %s::jsonb)")
            params += [list(raw_names), value]
        elif field.name in STAGED_FIELDS and value is None:
            select.append(f"staged.{column}")
        elif field.name in STAGED_FIELDS:
            select.append(f"COALESCE(staged.{column}, %s::{field.db_type(connection)})")
            params.append(value)
        else:
            select.append(f"%s::{field.db_type(connection)}")
            params.append(value)
    if len(connection.atomic_blocks) == 1:
        # The batch's transaction is the outermost: its commit empties the table (ON COMMIT DELETE ROWS),
        # at less cost than deleting each row.
        staged = f"WITH staged AS (SELECT * FROM {STAGING_TABLE}) "
    else:
        # Emptied by the same statement that moves its rows, so a batch inside a longer transaction
        # never sees the previous batch's rows.
        staged = f"WITH staged AS (DELETE FROM {STAGING_TABLE} RETURNING *) "
    with connection.cursor() as cursor:
        cursor.execute(f"{staged}"
                       f"INSERT INTO {Lead._meta.db_table} ({_names(columns)}) SELECT {', '.join(select)} "
                       f"FROM staged WHERE intake_row <> ALL(%s::integer[]) ON CONFLICT DO NOTHING"
                       f"{' RETURNING email' if created else ''}",
                       [*params, sorted(skip)])
        return {email for email, in cursor.fetchall()} if created else None


def _names(columns: Sequence[models.Field[Any, Any]]) -> str:
    return ", ".join(connection.ops.quote_name(str(field.column)) for field in columns)


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
    return None if value is None else _ENCODER.encode(value)


def statistics_refresh() -> None:
    """Refresh PostgreSQL's statistics of the leads table (a no-op elsewhere).

    A large import grows the table faster than autovacuum's statistics follow, and a query planned for a
    campaign thought to hold a few hundred leads reads every lead of it instead of probing an index. The
    intake's own lookups name their addresses (or are the insert itself), so they do not depend on it;
    the intake calls this once at its end, for what runs next."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {Lead._meta.db_table}")
