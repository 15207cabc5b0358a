"""Pieces shared by the CAM model admins."""

from __future__ import annotations

import zoneinfo
from functools import cache

from django import forms
from unfold.admin import ModelAdmin


class AuditAdmin(ModelAdmin):
    """An audit table: staff look, nobody edits. Rows are written by CAM's services only."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class CommaSeparatedListField(forms.CharField):
    """A JSON list of strings edited as "a, b, c" — friendlier than raw JSON for staff."""

    def prepare_value(self, value):
        if isinstance(value, list):
            return ", ".join(value)
        return value

    def to_python(self, value) -> list[str]:  # type: ignore[override]  # a list, cleaned as text first
        value = super().to_python(value)
        if isinstance(value, list):
            return value
        seen: dict[str, None] = {}
        for part in (value or "").split(","):
            if part.strip():
                seen.setdefault(part.strip(), None)
        return list(seen)

    def has_changed(self, initial, data) -> bool:
        return self.to_python(self.prepare_value(initial)) != self.to_python(data)


@cache
def timezone_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in sorted(zoneinfo.available_timezones())]


class TimezoneSelect(forms.Select):
    def __init__(self, *, blank: bool = False, attrs=None) -> None:
        choices = timezone_choices()
        super().__init__(attrs=attrs, choices=[("", "—"), *choices] if blank else choices)
