"""The lead page's *Timeline* tab: ``cam.timeline``'s story of the lead, as the page shows it — each entry
with its label in the list's colours, the score as its table, and a link to the record it comes from."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.urls import NoReverseMatch, reverse

from cam import timeline
from cam.admin import labels
from cam.admin.readable import score_breakdown_html
from cam.models import Lead

LEAD_TAB, TIMELINE_TAB = "general", "timeline"

# Which colours an entry's status takes, by the kind of entry.
TONES: dict[str, Mapping[Any, str]] = {
    timeline.STATUS: labels.LEAD, timeline.SENT: labels.OUTBOUND, timeline.NOT_SENT: labels.OUTBOUND,
    timeline.REPLY: labels.REPLY}


def lead_tabs(request) -> list[dict[str, Any]]:
    """The tab bar of an existing lead's page: its fields, and its timeline."""
    match = getattr(request, "resolver_match", None)
    if match is None or match.url_name != "cam_lead_change":
        return []
    return [{"models": [{"name": "cam.lead", "detail": True}],
             "items": [{"title": "Lead", "link": "", "inline": LEAD_TAB},
                       {"title": "Timeline", "link": "", "inline": TIMELINE_TAB}]}]


def _link(record: Any) -> str:
    if record is None or not hasattr(record, "_meta") or record.pk is None:
        return ""
    try:
        return reverse(f"admin:{record._meta.app_label}_{record._meta.model_name}_change", args=[record.pk])
    except NoReverseMatch:
        return ""


def timeline_entries(lead: Lead) -> list[dict[str, Any]]:
    """The entries of ``lead``'s timeline, newest first, ready for ``admin/cam/lead_timeline.html``."""
    shown = []
    for entry in timeline.lead_timeline(lead):
        tones = TONES.get(entry.kind)
        shown.append({
            "at": entry.at, "kind": entry.kind, "title": entry.title, "detail": entry.detail, "body": entry.body,
            "actor": entry.actor,
            "label": labels.label(entry.status, entry.status_text, tones) if tones and entry.status else "",
            "table": score_breakdown_html(entry.record) if entry.kind == timeline.SCORED else "",
            "link": "" if entry.kind == timeline.SCORED else _link(entry.record),
        })
    return shown
