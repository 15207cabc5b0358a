"""A list's filters, from the query string: each list declares them as a serializer, reads them with
``query_filters`` (which refuses a parameter the serializer does not declare, by name) and applies the
plain ones with ``apply_filters``. The same serializer documents them:
``extend_schema(parameters=[TheFilterSerializer])``. A list with no filters reads ``NoFilters``, so an
unknown parameter is refused there too rather than silently ignored."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import serializers
from rest_framework.request import Request

from cam.api.serializers import MAX_ID, WholeNumberField

__all__ = ["MAX_ID", "NoFilters", "apply_filters", "id_filter", "query_filters", "whole_number_filter"]

# Query-string keys that belong to pagination or rendering, not to a list's filters.
NON_FILTER_PARAMS = frozenset({"page", "page_size", "format"})


def whole_number_filter(help_text: str, **bounds) -> WholeNumberField:
    """An optional filter on a whole number, written in ASCII digits (``7``; not ``7.0``, `` 7`` or ``٧``)."""
    return WholeNumberField(query=True, required=False, help_text=help_text, **bounds)


def id_filter(help_text: str) -> WholeNumberField:
    """An optional filter on an object's id."""
    return whole_number_filter(help_text, min_value=1, max_value=MAX_ID)


class NoFilters(serializers.Serializer):
    """A list with no filters: only pagination."""


def query_filters(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    """A list's filters from the query string, validated: a bad one, an unknown one or one given more
    than once (pagination's too) is a 400 naming it.

    A plain dict is validated, not the QueryDict: DRF reads a missing boolean in form-like data as
    false, which would turn "no filter" into "only the false ones"."""
    repeated = sorted(key for key, values in request.query_params.lists() if len(values) > 1)
    if repeated:
        # A QueryDict answers the last of them, which would silently drop the others.
        raise serializers.ValidationError({name: ["Given more than once; give each query parameter once."]
                                           for name in repeated})
    data = {key: value for key, value in request.query_params.items() if key not in NON_FILTER_PARAMS}
    serializer = serializer_class(data=data, context={"query": True})
    unknown = sorted(set(data) - set(serializer.fields))
    if unknown:
        raise serializers.ValidationError({name: ["Unknown query parameter."] for name in unknown})
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def apply_filters(queryset: QuerySet, filters: dict[str, Any], lookups: dict[str, str]) -> QuerySet:
    """Narrow ``queryset`` by each filter given, through its lookup (``{"created_after": "created_at__gte"}``)."""
    conditions = {lookup: filters[name] for name, lookup in lookups.items() if name in filters}
    return queryset.filter(**conditions) if conditions else queryset
