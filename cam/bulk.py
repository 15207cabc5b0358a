"""One-statement bulk updates of many rows with different values.

Django's ``bulk_update`` builds a ``CASE WHEN pk = … THEN …`` per field, which grows quadratically:
updating 2,000 scored leads takes seconds. ``UPDATE … FROM (VALUES …)`` joins the new values
instead, in one statement, on PostgreSQL and on SQLite (3.33 and later).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from django.db import connections, models, router
from django.db.backends.base.base import BaseDatabaseWrapper

# SQLite learned UPDATE … FROM in 3.33.
_SQLITE_HAS_UPDATE_FROM = sqlite3.sqlite_version_info >= (3, 33)


def bulk_update_values(objs: Sequence[models.Model], fields: Sequence[str]) -> int:
    """Write ``fields`` of every object in ``objs`` (all of one model) in as few statements as the
    database's parameter limit allows — one for thousands of rows. Returns the rows updated."""
    if not objs:
        return 0
    model = type(objs[0])
    connection = connections[router.db_for_write(model)]
    if connection.vendor not in ("postgresql", "sqlite") or (
            connection.vendor == "sqlite" and not _SQLITE_HAS_UPDATE_FROM):
        return model._default_manager.bulk_update(objs, fields)
    meta = model._meta
    columns = [meta.pk, *(meta.get_field(name) for name in fields)]
    per_statement = max(1, (connection.features.max_query_params or 65535) // len(columns))
    updated = 0
    with connection.cursor() as cursor:
        for start in range(0, len(objs), per_statement):
            chunk = objs[start:start + per_statement]
            sql, params = _statement(connection, meta, columns, chunk)
            cursor.execute(sql, params)
            updated += cursor.rowcount
    return updated


def _statement(connection: BaseDatabaseWrapper, meta: Any, columns: list[Any],
               chunk: Sequence[models.Model]) -> tuple[str, list[Any]]:
    quote = connection.ops.quote_name
    table, pk = quote(meta.db_table), quote(meta.pk.column)
    params: list[Any] = []
    for obj in chunk:
        for field in columns:
            params.append(field.get_db_prep_save(getattr(obj, field.attname), connection))
    if connection.vendor == "postgresql":
        # Casts give the VALUES columns the table's types (psycopg sends untyped parameters).
        row = "(" + ", ".join(f"%s::{field.db_type(connection)}" for field in columns) + ")"
        names = ", ".join(quote(field.column) for field in columns)
        assignments = ", ".join(f"{quote(f.column)} = v.{quote(f.column)}" for f in columns[1:])
        sql = (f"UPDATE {table} SET {assignments} FROM (VALUES {', '.join([row] * len(chunk))}) "
               f"AS v({names}) WHERE {table}.{pk} = v.{pk}")
    else:
        # SQLite names VALUES columns column1, column2, …
        row = "(" + ", ".join(["%s"] * len(columns)) + ")"
        assignments = ", ".join(f"{quote(f.column)} = v.column{i}" for i, f in enumerate(columns[1:], start=2))
        sql = (f"UPDATE {table} SET {assignments} FROM (VALUES {', '.join([row] * len(chunk))}) AS v "
               f"WHERE {table}.{pk} = v.column1")
    return sql, params
