"""The CAM dashboard: ``/admin/`` opens on it (django-unfold's DASHBOARD_CALLBACK fills the index page's
context) and ``/admin/dashboard/`` shows the same page.

The sales figures are live (``cam.reporting``: a send counts the moment it is recorded); the machinery's
health, workers, schedules and runs are what the API's metrics endpoint serves (``cam.dashboard``). This
module only shapes them for the template: the period picked, the charts' data as JSON, each campaign's
funnel beside its stored rates, and the degraded campaigns, which send at half their caps.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils.http import urlencode

from cam import reporting
from cam.admin import labels
from cam.admin.domains import CHECK_TITLES
from cam.dashboard import get_dashboard
from cam.domains.services import domains_needing_attention
from cam.models import Campaign, JobExecution, WorkerHeartbeat

DEFAULT_PERIOD = "7d"
# Funnels shown on the page; the rest are a click away on the campaigns' list.
FUNNELS_SHOWN = 12
FUNNEL_LABELS = {"harvested": "Harvested", "qualified": "Qualified", "contacted": "Contacted",
                 "replied": "Replied", "positive": "Positive", "won": "Won"}

# The label colours of cam/admin/cam.css, for the charts (Chart.js needs the colour itself).
TONE_COLOURS = {labels.GREEN: "#16a34a", labels.BLUE: "#2563eb", labels.VIOLET: "#7c3aed",
                labels.AMBER: "#d97706", labels.ORANGE: "#ea580c", labels.RED: "#dc2626",
                labels.GREY: "#94a3b8"}
SENT_COLOUR, REPLY_COLOUR, POSITIVE_COLOUR, BOUNCE_COLOUR = "#c7d2fe", "#4f46e5", "#16a34a", "#dc2626"
AXIS = {"color": "#9ca3af"}


def may_view_dashboard(request) -> bool:
    # The page shows job runs, their errors and the worker's state: it asks what the job runs' own list
    # asks (view or change job execution), as GET /api/cam/metrics/ does.
    return admin.site.get_model_admin(JobExecution).has_view_permission(request)


def _period(request) -> str:
    period = request.GET.get("period", DEFAULT_PERIOD)
    return period if period in reporting.PERIOD_DAYS else DEFAULT_PERIOD


def _daily_chart(series: list[reporting.Day]) -> tuple[str, str]:
    """Sends as bars on the left axis; replies, positive replies and bounces as lines on the right one
    (a few a day beside a hundred sends would lie flat on one axis)."""
    data = {
        "labels": [entry["day"].strftime("%-d %b") for entry in series],
        "datasets": [
            {"type": "bar", "label": "Sent", "data": [e["sent"] for e in series], "backgroundColor": SENT_COLOUR,
             "yAxisID": "y", "order": 4},
            {"type": "line", "label": "Replies", "data": [e["replies"] for e in series], "borderColor": REPLY_COLOUR,
             "backgroundColor": REPLY_COLOUR, "yAxisID": "y1", "order": 1},
            {"type": "line", "label": "Positive", "data": [e["positive"] for e in series],
             "borderColor": POSITIVE_COLOUR, "backgroundColor": POSITIVE_COLOUR, "yAxisID": "y1", "order": 2},
            {"type": "line", "label": "Hard bounces", "data": [e["bounces"] for e in series],
             "borderColor": BOUNCE_COLOUR, "backgroundColor": BOUNCE_COLOUR, "yAxisID": "y1", "order": 3},
        ],
    }
    options = {
        "animation": False, "responsive": True, "maintainAspectRatio": False,
        "interaction": {"mode": "index", "intersect": False},
        "datasets": {"bar": {"borderRadius": 3, "maxBarThickness": 16},
                     "line": {"borderWidth": 2, "pointRadius": 0, "pointHoverRadius": 3,
                              "cubicInterpolationMode": "monotone"}},
        "plugins": {"legend": {"display": True, "position": "top", "align": "end",
                               "labels": {"usePointStyle": True, "boxWidth": 6, "boxHeight": 6, **AXIS}},
                    "tooltip": {"enabled": True}},
        "scales": {
            "x": {"grid": {"display": False}, "ticks": {**AXIS, "maxTicksLimit": 10, "maxRotation": 0}},
            "y": {"beginAtZero": True, "position": "left", "ticks": {**AXIS, "precision": 0},
                  "title": {"display": True, "text": "sent", **AXIS}},
            "y1": {"beginAtZero": True, "position": "right", "grid": {"drawOnChartArea": False},
                   "ticks": {**AXIS, "precision": 0}, "title": {"display": True, "text": "replies", **AXIS}},
        },
    }
    return json.dumps(data), json.dumps(options)


def _categories_chart(categories: list[reporting.CategoryCount]) -> tuple[str, str]:
    tones = {str(category): tone for category, tone in labels.REPLY.items()}
    data = {
        "labels": [row["label"] for row in categories],
        "datasets": [{"label": "Messages", "data": [row["count"] for row in categories],
                      "backgroundColor": [TONE_COLOURS[tones.get(row["category"], labels.GREY)]
                                          for row in categories]}],
    }
    options = {
        "animation": False, "responsive": True, "maintainAspectRatio": False, "indexAxis": "y",
        "datasets": {"bar": {"borderRadius": 3, "maxBarThickness": 14}},
        "plugins": {"legend": {"display": False}, "tooltip": {"enabled": True}},
        "scales": {"x": {"beginAtZero": True, "ticks": {**AXIS, "precision": 0}, "grid": {"color": "#f1f5f9"}},
                   "y": {"grid": {"display": False}, "ticks": {"color": "#475569"}}},
    }
    return json.dumps(data), json.dumps(options)


def _share(part: int, whole: int) -> float:
    return round(100 * part / whole, 1) if whole else 0.0


def _funnels(funnels: list[reporting.Funnel], snapshots: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each campaign's stages with their share of its leads, beside the rates the rules last measured."""
    stored = {row["id"]: row for row in snapshots}
    rows = []
    for funnel in funnels:
        counts: dict[str, Any] = dict(funnel)
        stages = []
        for name, text in FUNNEL_LABELS.items():
            share = _share(counts[name], funnel["harvested"])
            stages.append({"name": name, "label": text, "count": counts[name], "share": share})
        summary = stored.get(funnel["campaign_id"]) or {}
        rows.append({**counts, "stages": stages, "snapshot": stored.get(funnel["campaign_id"]),
                     "cap_note": summary.get("cap_note", ""),
                     "status_label": labels.label(funnel["status"], Campaign.Status(funnel["status"]).label,
                                                  labels.CAMPAIGN)})
    return rows


def _mailboxes(sends: list[reporting.MailboxSends], snapshots: list[dict[str, Any]]) -> list[dict[str, Any]]:
    stored = {row["id"]: row for row in snapshots}
    rows = []
    for mailbox in sends:
        level = "over" if mailbox["cap_percent"] >= 100 else "near" if mailbox["cap_percent"] >= 80 else "ok"
        # unfold's progress component draws its track only when given items: an idle mailbox keeps its track.
        rows.append({**mailbox, "level": level, "snapshot": stored.get(mailbox["mailbox_id"]),
                     "bar": [{"value": mailbox["cap_percent"], "title": "Of the daily cap"}]})
    return rows


LEVEL_TEXT = {"ok": "OK", "near": "Near the limit", "over": "Over the limit"}
RATE_CARDS = [("hard_bounce_rate", "Hard-bounce rate", "hard_bounces", "bounced"),
              ("complaint_rate", "Complaint rate", "complaints", "complaints")]
SCHEDULE_HEALTH = {"ok": ("On time", labels.GREEN), "failing": ("Last run failed", labels.RED),
                   "overdue": ("Overdue", labels.RED), "not_installed": ("Not installed", labels.AMBER)}


def _rate_cards(figures: reporting.Kpis) -> list[dict[str, Any]]:
    values: dict[str, Any] = dict(figures)
    cards = []
    for key, title, count, what in RATE_CARDS:
        rate = values[key]
        cards.append({"key": key, "title": title, "rate": rate, "count": values[count], "what": what,
                      "css": f"cam-kpi cam-level-{rate['level']}",
                      "pill": labels.label(rate["level"], LEVEL_TEXT[rate["level"]], labels.HEALTH)})
    return cards


def _in_words(dashboard: dict[str, Any]) -> None:
    """Labels and durations for this request's copy of the dashboard (get_dashboard builds it afresh)."""
    for worker in dashboard["worker"]["workers"]:
        worker["status_label"] = labels.label(worker["status"], WorkerHeartbeat.Status(worker["status"]).label,
                                              labels.WORKER)
        started, finished = worker["last_cycle_started_at"], worker["last_cycle_finished_at"]
        worker["cycle_seconds"] = ((finished - started).total_seconds()
                                   if started and finished and finished >= started else None)
    for entry in dashboard["scheduler_status"]:
        text, tone = SCHEDULE_HEALTH.get(entry["health"], (entry["health"], labels.GREY))
        entry["health_label"] = labels.label(entry["health"], text, {entry["health"]: tone})
    for run in dashboard["recent_jobs"]:
        run["status_label"] = labels.label(run["status"], JobExecution.Status(run["status"]).label, labels.JOB)


DOMAINS_SHOWN = 5


def _sending_domains() -> dict[str, Any]:
    """The domains that warn or fail, each with the checks that do: one query."""
    rows = domains_needing_attention(limit=DOMAINS_SHOWN)
    return {"sending_domains": [
        {"domain": row, "label": labels.label(row.verdict, row.get_verdict_display(), labels.DOMAIN),
         "problems": ", ".join(CHECK_TITLES.get(check["name"], check["name"]) for check in row.checks
                               if check["verdict"] != "pass")}
        for row in rows[:DOMAINS_SHOWN]], "sending_domains_more": len(rows) > DOMAINS_SHOWN}


def dashboard_context(request) -> dict[str, Any]:
    """Everything the dashboard's template shows, for the period the request picks (``?period=``)."""
    period = _period(request)
    dashboard = get_dashboard()
    _in_words(dashboard)
    read = reporting.overview(period)
    figures, series, categories = read["kpis"], read["series"], read["categories"]
    daily_data, daily_options = _daily_chart(series)
    categories_data, categories_options = _categories_chart(categories)
    funnels = _funnels(reporting.campaign_funnels(limit=FUNNELS_SHOWN), dashboard["campaigns"])
    path = reverse("admin:index")
    return {
        "title": "Dashboard",
        "cam_dashboard": True,
        "dashboard": dashboard,
        "job_metrics": sorted(dashboard["job_metrics"].items()),
        "period": period,
        "periods": [{"title": text, "link": f"{path}?{urlencode({'period': value})}", "active": value == period}
                    for value, text in reporting.PERIOD_LABELS.items()],
        "kpis": figures,
        "rate_cards": _rate_cards(figures),
        "series_sent": sum(entry["sent"] for entry in series),
        "daily_chart": daily_data, "daily_chart_options": daily_options,
        "categories": categories, "categories_chart": categories_data,
        "categories_chart_options": categories_options,
        "categories_height": 40 + 30 * max(len(categories), 3),
        "funnels": funnels, "funnels_more": max(0, len(dashboard["campaigns"]) - len(funnels)),
        # Every degraded campaign, named above the funnels even when its own funnel is not among those shown.
        "degraded_campaigns": [row for row in dashboard["campaigns"] if row["status"] == Campaign.Status.DEGRADED],
        "mailboxes": _mailboxes(reporting.mailbox_sends_today(), dashboard["mailboxes"]),
        **_sending_domains(),
        "health_label": labels.label(dashboard["health_status"], dashboard["health_status"].capitalize(),
                                     labels.HEALTH),
    }


def dashboard_callback(request, context: dict[str, Any]) -> dict[str, Any]:
    """The index page's context: the dashboard for who may see it, the app list for everyone else."""
    if not may_view_dashboard(request):
        return context
    return {**context, **dashboard_context(request)}


def dashboard_view(request):
    """The dashboard's own address, kept for bookmarks and links in alerts: the same page as the index."""
    if not may_view_dashboard(request):
        raise PermissionDenied
    return admin.site.index(request)


def campaign_figures(campaign: Campaign, period: str = "30d") -> dict[str, Any]:
    """A campaign's own KPI cards and 30-day chart, for its Performance tab: the dashboard's figures for
    one campaign (cam.reporting reads each of them with a campaign filter)."""
    read = reporting.overview(period, campaign=campaign)
    figures, series = read["kpis"], read["series"]
    daily_data, daily_options = _daily_chart(series)
    return {"kpis": figures, "rate_cards": _rate_cards(figures), "series_sent": sum(e["sent"] for e in series),
            "daily_chart": daily_data, "daily_chart_options": daily_options}
