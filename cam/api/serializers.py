"""What every API serializer shares."""

from __future__ import annotations

from rest_framework import serializers


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
