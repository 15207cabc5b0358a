"""How the back office shows stored data to people: JSON in words first with the raw value folded away
beneath, a run's errors as a list, moments on one line.

Every piece of data is escaped by ``format_html``; nothing here marks data as safe.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.contrib import admin
from django.core.serializers.json import DjangoJSONEncoder
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.timezone import localtime

from cam.jobs.summary import errors_lines, value_text, words

# The criteria ``cam.pipeline.scoring`` writes, as staff call them; penalties and the total come after.
CRITERION_WORDS = {
    "industry": "Industry",
    "title": "Title",
    "country": "Country",
    "company_size": "Company size",
    "free_mail": "Free-mail address",
    "role_account": "Role account",
}


def short_datetime(value: datetime | None) -> str:
    """A moment on one line in the site's time zone: "2026-12-02 12:18:49"."""
    return "—" if value is None else date_format(localtime(value), "Y-m-d H:i:s")


def raw_json(value: Any) -> SafeString:
    """The stored value, indented, in a collapsed "raw" section: there for whoever needs the exact data."""
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, cls=DjangoJSONEncoder)
    return format_html('<details class="cam-raw"><summary>raw</summary><pre>{}</pre></details>', text)


def job_errors_html(counts: Mapping[str, Any] | None, error: str, *, otherwise: str = "—") -> SafeString | str:
    """A run's errors (``cam.jobs.summary.errors_lines``): one sentence, a list of them, or ``otherwise``."""
    lines = errors_lines(counts, error)
    if not lines:
        return otherwise or "—"
    if len(lines) == 1:
        return lines[0]
    items = format_html_join("", "<li>{}</li>", ((line,) for line in lines))
    return format_html('<ul class="cam-errors">{}</ul>', items)


def score_breakdown_html(breakdown: Mapping[str, Any] | None) -> SafeString | str:
    """``Lead.score_breakdown`` as a table: each criterion, whether it matched and on what, its points out of its
    weight; the penalties; then the base, the penalties and the score. A key the scorer may add later reads as
    a row of its own."""
    if not breakdown:
        return "Not scored yet."
    rows = []
    for name, entry in breakdown.items():
        if name == "total":
            continue
        label = CRITERION_WORDS.get(name, words(name).capitalize())
        if isinstance(entry, Mapping):
            matched = entry.get("matched")
            outcome = "penalty" if matched is None and "weight" not in entry else ("matched" if matched else "no match")
            points = value_text(entry.get("points"))
            if entry.get("weight") is not None:
                points = f"{points} of {entry['weight']}"
            detail = entry.get("detail") or value_text({k: v for k, v in entry.items()
                                                        if k not in ("matched", "points", "weight")})
            rows.append((label, outcome, detail, points))
        else:
            rows.append((label, "", value_text(entry), ""))
    total = breakdown.get("total")
    if isinstance(total, Mapping):
        footer = format_html(
            "<tfoot><tr><th colspan=\"3\">Total (base {} − penalties {})</th><th class=\"num\">{}</th></tr></tfoot>",
            value_text(total.get("base")), value_text(total.get("penalties")), value_text(total.get("score")))
    else:
        footer = format_html("")
    return format_html(
        '<table class="cam-score-breakdown"><thead><tr><th>Criterion</th><th>Outcome</th><th>Why</th>'
        '<th class="num">Points</th></tr></thead><tbody>{}</tbody>{}</table>',
        format_html_join("", '<tr><td>{}</td><td>{}</td><td>{}</td><td class="num">{}</td></tr>', rows),
        footer,
    )


def raw_field(name: str, description: str) -> Any:
    """An admin display of the JSON field ``name`` folded under "raw", for a ModelAdmin's readonly_fields:
    ``payload_raw = raw_field("payload", "payload")``."""

    @admin.display(description=description)
    def show(model_admin: admin.ModelAdmin, obj: Any) -> SafeString:
        return raw_json(getattr(obj, name))

    return show
