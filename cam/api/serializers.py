"""What every API serializer shares."""

from __future__ import annotations

from rest_framework import serializers

from cam.api.filters import MAX_ID
from cam.models.fields import validate_timezone


class StrictMixin:
    """Refuse fields the serializer does not know, each named, instead of silently ignoring them
    (a typo such as ``max_lead`` would otherwise do nothing and look accepted)."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            # Read-only fields a client echoes back (``id``, times) are ignored, as DRF does.
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class StrictSerializer(StrictMixin, serializers.Serializer):
    pass


class StrictModelSerializer(StrictMixin, serializers.ModelSerializer):
    pass


class IdRelatedField(serializers.PrimaryKeyRelatedField):
    """An object by its id, which must be a whole number: DRF's field passes the value to the query as
    it comes, where ``1.5`` or ``true`` would quietly become the object with id 1. A string of digits
    is accepted, as DRF's ``IntegerField`` accepts one."""

    default_error_messages = {
        "incorrect_type": "Incorrect type. Expected an id (a whole number), received {data_type}.",
    }

    def to_internal_value(self, data):
        if isinstance(data, str) and data.strip().isascii() and data.strip().isdigit():
            data = int(data)
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("incorrect_type", data_type=type(data).__name__)
        if not 1 <= data <= MAX_ID:
            self.fail("does_not_exist", pk_value=data)
        return super().to_internal_value(data)


# The longest IANA time zone name is 32 characters; a longer value is no zone, whatever it holds.
TIMEZONE_MAX_LENGTH = 64


def validate_timezone_name(value: str) -> None:
    """A time zone the API accepts: ``validate_timezone``, after refusing what is too long to be a zone
    name (the zone database is looked up as a file: an overlong name fails there, not as unknown)."""
    if len(value) > TIMEZONE_MAX_LENGTH or "\x00" in value:
        raise serializers.ValidationError("This is not a known time zone (use a name such as Europe/Berlin).")
    try:
        validate_timezone(value)
    except OSError:
        raise serializers.ValidationError("This is not a known time zone (use a name such as Europe/Berlin).") from None
