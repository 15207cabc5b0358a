"""List columns that keep to one line, so a list fits the window (1440 x 900 with the sidebar open) without
scrolling sideways: a long value is cut with an ellipsis at its column's width and shown whole on hover, a
moment is short ("Dec 3, 14:05"), a status label is cut like text. The widths are CAM's style sheet's
(``.cam-cut-<width>`` in cam/static/cam/admin/cam.css).

Every value is escaped by ``format_html``; nothing here marks data as safe.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal

from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timezone import localtime, now
from unfold.decorators import display

from cam.admin.labels import label
from cam.admin.readable import short_datetime

# xs 6rem, s 7.5rem, m 10.5rem, l 14rem, xl 20rem (see cam.css); "fill": the width the other columns leave,
# at least 12rem, for the one column that says most (a reply's words, a subject).
Width = Literal["xs", "s", "m", "l", "xl", "fill"]
EMPTY = "—"


def one_line(value: Any, *, width: Width = "m") -> SafeString | str:
    """``value`` as text on one line, cut at ``width`` with an ellipsis; the whole of it on hover."""
    text = "" if value is None else " ".join(str(value).split())
    if not text:
        return EMPTY
    return format_html('<span class="cam-cut cam-cut-{}" title="{}">{}</span>', width, text, text)


def when(value: datetime | None) -> SafeString | str:
    """A moment in a short form on one line: "Dec 3, 14:05" this year, "Dec 3, 2025" another year; the exact
    moment (``short_datetime``) on hover."""
    if value is None:
        return EMPTY
    local = localtime(value)
    text = date_format(local, "M j, H:i" if local.year == localtime(now()).year else "M j, Y")
    return format_html('<span class="cam-when" title="{}">{}</span>', short_datetime(value), text)


def text_column(description: str, value: Callable[[Any], Any], *, width: Width = "m",
                ordering: str | None = None) -> Callable:
    """A list column showing ``value(obj)`` on one line (``one_line``), sortable by ``ordering`` when given."""

    def column(model_admin, obj) -> SafeString | str:
        return one_line(value(obj), width=width)

    return display(description=description, ordering=ordering)(column)


def when_column(field: str, description: str) -> Callable:
    """A list column showing the moment in ``field`` in its short form (``when``), sortable by the field."""

    def column(model_admin, obj) -> SafeString | str:
        return when(getattr(obj, field))

    return display(description=description, ordering=field)(column)


def status_column(field: str, tones: Mapping[Any, str], description: str | None = None, *,
                  hover: Callable[[Any], str] | None = None, note: Callable[[Any], str] | None = None) -> Callable:
    """``field`` (a choices field) as its coloured label (``cam.admin.labels``), cut at the column's width with the
    whole label (or ``hover(obj)``) on hover; ``note(obj)``, when it says something (the error that held an email
    back), is marked "⚠" beside the label and shown on hover."""

    def column(model_admin, obj) -> SafeString | str:
        text = getattr(obj, f"get_{field}_display")()
        shown = format_html('<span class="cam-cut-label" title="{}">{}</span>', hover(obj) if hover else text,
                            label(getattr(obj, field), text, tones))
        said = note(obj) if note is not None else ""
        if not said:
            return shown
        return format_html('<span class="cam-status-note">{}<span class="cam-note" title="{}">⚠</span></span>',
                           shown, " ".join(said.split()))

    return display(description=description or field.replace("_", " ").capitalize(), ordering=field)(column)
