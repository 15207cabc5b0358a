"""What every API serializer shares."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from rest_framework import serializers

from cam.models.fields import validate_timezone

# The largest primary key. Ids arrive as JSON numbers or in query strings; past this no row can exist,
# and the databases refuse such a number in a query (SQLite outright, PostgreSQL with an overflow), so a
# bigger one is a 400 naming it.
MAX_ID = 2**63 - 1
ASCII_DIGITS = re.compile(r"[0-9]+")
# An id in a path (a viewset's ``lookup_value_converter``, its router built with ``use_regex_path=False``):
# Django's ``int`` converter, which matches ASCII digits only (``[0-9]+``). Python's ``int()`` would also
# read " 1" or "١" (an Arabic-Indic digit) as 1; such a path matches no route, a JSON 404. The schema
# states these ids as integers.
PATH_ID_CONVERTER = "int"


class WholeNumberField(serializers.IntegerField):
    """A whole number as JSON sends one (``3``): DRF's ``IntegerField`` also takes ``3.0``, ``"3"``,
    ``" 3"`` and digits of other scripts, so a value a client did not mean as a number could pass.
    In a query string (``query=True``), where every value is text, only ASCII digits are a number."""

    default_error_messages = {
        "invalid": "A whole number is required (a JSON integer such as 3; not 3.0 or \"3\").",
        "invalid_query": "A whole number is required (the digits 0-9 only).",
    }

    def __init__(self, *, query: bool = False, **kwargs) -> None:
        self.query = query
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if self.query and isinstance(data, str):
            if not ASCII_DIGITS.fullmatch(data):
                self.fail("invalid_query")
            data = int(data)
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


def _wrong_json_type(field: serializers.Field, value: object) -> list | dict | None:
    """The messages for ``value`` where ``field`` takes a JSON string or a JSON boolean and ``value`` is
    something else, or None when it is of the field's type (or the field takes another type).

    DRF's ``CharField`` (and so ``EmailField``, ``URLField``, ``RegexField``) turns a number into its
    digits, and its ``BooleanField`` reads 0, 1, "yes" or "off" as booleans: ``"reason": 0`` would be the
    reason ``"0"`` and ``"wait": 0`` false, though the schema says a string and a boolean. A list is
    checked item by item, its messages keyed by position as DRF's ``ListField`` keys its own."""
    if value is None:
        return None  # allow_null decides
    if isinstance(field, serializers.CharField):
        return None if isinstance(value, str) else [field.error_messages["invalid"]]
    if isinstance(field, serializers.BooleanField):
        return None if isinstance(value, bool) else [field.error_messages["invalid"]]
    if isinstance(field, serializers.ListField) and isinstance(value, list):
        errors = {index: messages for index, item in enumerate(value)
                  if (messages := _wrong_json_type(field.child, item)) is not None}
        return errors or None
    return None


if TYPE_CHECKING:  # the mixin below is only ever mixed into a serializer
    _SerializerBase = serializers.Serializer
else:
    _SerializerBase = object


class StrictMixin(_SerializerBase):
    """What a client sends is taken as it is written, or refused by name:

    - a field the serializer does not know is refused instead of silently ignored (a typo such as
      ``max_lead`` would otherwise do nothing and look accepted);
    - in a JSON body, a text field takes a JSON string only and a yes/no field a JSON boolean only, not
      a number or a word DRF would read as one (``_wrong_json_type``). This holds for every such field of
      every strict serializer, declared or derived from a model, so no field needs its own rule. A query
      string's values are all text: filters read them with ``context={"query": True}`` (``query_filters``)
      and their fields parse them."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            # Read-only fields a client echoes back (``id``, times) are ignored, as DRF does.
            errors: dict[str, Any] = {name: ["Unknown field."] for name in sorted(set(data) - set(self.fields))}
            if not self.context.get("query"):
                for name, field in self.fields.items():
                    if name in data and not field.read_only:
                        messages = _wrong_json_type(field, data[name])
                        if messages is not None:
                            errors[name] = messages
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class StrictSerializer(StrictMixin, serializers.Serializer):
    pass


class StrictModelSerializer(StrictMixin, serializers.ModelSerializer):
    # Integer columns are written as JSON integers only (``WholeNumberField``).
    serializer_field_mapping = {
        model_field: WholeNumberField if field is serializers.IntegerField else field
        for model_field, field in serializers.ModelSerializer.serializer_field_mapping.items()
    }


class IdRelatedField(serializers.PrimaryKeyRelatedField):
    """An object by its id, which must be a JSON integer: DRF's field passes the value to the query as
    it comes, where ``1.5``, ``true`` or ``" 1"`` would quietly become the object with id 1."""

    default_error_messages = {
        "incorrect_type": "Incorrect type. Expected an id (a whole number), received {data_type}.",
    }

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("incorrect_type", data_type=type(data).__name__)
        if not 1 <= data <= MAX_ID:
            self.fail("does_not_exist", pk_value=data)
        return super().to_internal_value(data)


# The longest IANA time zone name is 32 characters; a longer value is no zone, whatever it holds.
TIMEZONE_MAX_LENGTH = 64
# What the schema says of a time zone field: the zone database's names are too many for an enum.
TIMEZONE_HELP = "An IANA time zone name, e.g. Europe/Berlin or UTC; a name the zone database does not know is a 400."


def validate_timezone_name(value: str) -> None:
    """A time zone the API accepts: ``validate_timezone``, after refusing what is too long to be a zone
    name (the zone database is looked up as a file: an overlong name fails there, not as unknown)."""
    if len(value) > TIMEZONE_MAX_LENGTH or "\x00" in value:
        raise serializers.ValidationError("This is not a known time zone (use a name such as Europe/Berlin).")
    try:
        validate_timezone(value)
    except OSError:
        raise serializers.ValidationError("This is not a known time zone (use a name such as Europe/Berlin).") from None


ModelT = TypeVar("ModelT", bound=models.Model)


def model_validated(instance: ModelT, attrs: Mapping[str, Any]) -> ModelT:
    """A copy of ``instance`` with ``attrs`` applied, validated as the model validates itself for the admin
    and the services (``full_clean``: its fields, the cross-field rules of its ``clean()``, uniqueness and
    constraints), so the API refuses the same input with the same messages. For a PATCH, ``instance`` holds
    the stored values of what the request leaves out; for a create, pass a new instance.

    Django's ``ValidationError`` becomes DRF's, keyed by field (``non_field_errors`` for a rule of no one
    field). Values of ``attrs`` that are no column of the row (many-to-many) are left out. Nothing is saved,
    and ``instance`` itself is left as it was."""
    candidate = copy.copy(instance)
    columns = {field.name for field in instance._meta.concrete_fields}
    for name, value in attrs.items():
        if name in columns:
            setattr(candidate, name, value)
    try:
        candidate.full_clean()
    except DjangoValidationError as exc:
        raise serializers.ValidationError(serializers.as_serializer_error(exc)) from None
    return candidate
