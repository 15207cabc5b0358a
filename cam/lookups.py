"""Lookups of many values in one condition.

``column__in=values`` writes a parameter for every value, which Django prepares one by one and the
driver writes into the statement's text each time: for hundreds of values that costs more than the
lookup itself. On PostgreSQL ``one_of`` passes them as one array (``= ANY``), the same short text for
any number of values; elsewhere it is ``__in``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import connection, models
from django.db.models import BooleanField, Q
from django.db.models.expressions import RawSQL


def one_of(model: type[models.Model], name: str, values: Iterable[Any], *, array_type: str) -> Q:
    """Rows of ``model`` whose field ``name`` holds one of ``values``; ``array_type`` is the SQL type of the
    array the values make on PostgreSQL (``bigint``, ``text``). For the queryset's own table, not a join."""
    values = list(values)
    if connection.vendor != "postgresql":
        return Q(**{f"{name}__in": values})
    quote = connection.ops.quote_name
    field = model._meta.get_field(name)
    assert isinstance(field, models.Field) and field.column is not None  # a column of the model's own table
    column = f"{quote(model._meta.db_table)}.{quote(field.column)}"
    return Q(RawSQL(f"{column} = ANY(%s::{array_type}[])", [values], output_field=BooleanField()))
