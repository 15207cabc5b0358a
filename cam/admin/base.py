"""Pieces shared by the CAM model admins."""

from __future__ import annotations

import zoneinfo
from functools import cache

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from unfold.admin import ModelAdmin
from unfold.views import ChangeList
from unfold.widgets import UnfoldAdminSelectWidget

from cam.admin.pagination import EstimatedCountPaginator, whole_table


class AuditAdmin(ModelAdmin):
    """An audit table: staff look, nobody edits. Rows are written by CAM's services only."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    # A status on the record's page reads as the same coloured label as in its list (cam.admin.labels):
    # the field is swapped for the list's label column where the admin has one.
    LABELLED = {"status": "status_label", "category": "category_label"}

    def _labelled(self, field):
        label = self.LABELLED.get(field) if isinstance(field, str) else None
        return label if label and hasattr(self, label) else field

    def get_fields(self, request, obj=None):
        return [self._labelled(field) if isinstance(field, str) else tuple(self._labelled(f) for f in field)
                for field in super().get_fields(request, obj)]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, *(label for label in self.LABELLED.values() if hasattr(self, label) and label not in fields)]


class ListChangeList(ChangeList):
    """The theme's change list, loading for the page's rows only what the list shows: the model admin's
    ``list_defer`` fields (stored emails, raw messages, JSON) are left out of the page's query. Actions and
    exports build their own querysets and still read whole rows."""

    queryset: QuerySet
    result_count: int
    full_result_count: int | None

    def get_results(self, request) -> None:
        deferred = getattr(self.model_admin, "list_defer", ())
        if deferred:
            self.queryset = self.queryset.defer(*deferred)
        super().get_results(request)
        if self.full_result_count is None and whole_table(self.queryset):
            # Unfiltered, the list's count is the table's: without this the theme's header offers "Show all"
            # on a list that already shows everything.
            self.full_result_count = self.result_count


class LongListMixin:
    """For a list over a table that grows to millions of rows (put before ModelAdmin among the bases).

    No second count of the whole table next to the filtered one (``show_full_result_count``); the whole
    table's size is PostgreSQL's estimate once it is large (``cam.admin.pagination``); no per-choice counts
    in the filters; and the page's query leaves out ``list_defer``, the large fields no column shows."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    # "Show counts" beside the filters counts every choice of every filter over the whole table, each time.
    show_facets = admin.ShowFacets.NEVER
    list_defer: tuple[str, ...] = ()
    # An empty cell as CAM's own columns (cam.admin.columns) show one.
    empty_value_display = "—"

    def get_changelist(self, request, **kwargs):
        return ListChangeList


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


class TimezoneSelect(UnfoldAdminSelectWidget):
    """Every time zone, drawn as the theme's other selects."""

    def __init__(self, *, blank: bool = False, attrs=None) -> None:
        choices = timezone_choices()
        super().__init__(attrs=attrs, choices=[("", "—"), *choices] if blank else choices)
