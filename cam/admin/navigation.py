"""The admin's sidebar, grouped by the work rather than by app: what staff use every day first (Outreach),
then what they set up once (Setup), then how CAM is running (Operations), and the internal tables last.

django-unfold draws it (settings.UNFOLD["SIDEBAR"]); each link shows only to a user who may view its model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.apps import apps
from django.contrib import admin
from django.urls import NoReverseMatch, reverse

from cam.admin.desk import positive_waiting_badge


@dataclass(frozen=True)
class Link:
    title: str
    icon: str
    model: str = ""  # "app_label.ModelName": the link goes to its list and shows only to who may view it
    url_name: str = ""  # or a named URL, shown to everyone who may see the group's first model
    # A count beside the title (an empty text shows none), read only for who sees the link.
    badge: Callable[..., str] | None = None

    def item(self, request) -> dict | None:
        if self.url_name:
            return {"title": self.title, "icon": self.icon, "link": reverse(self.url_name)}
        try:
            model = apps.get_model(self.model)
        except LookupError:
            return None
        model_admin = admin.site.get_model_admin(model) if admin.site.is_registered(model) else None
        if model_admin is None or not model_admin.has_view_or_change_permission(request):
            return None
        try:
            link = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        except NoReverseMatch:
            return None
        item = {"title": self.title, "icon": self.icon, "link": link}
        count = self.badge(request) if self.badge is not None else ""
        if count:
            item.update(badge=count, badge_variant="success")
        return item


GROUPS: list[tuple[str, bool, list[Link]]] = [
    ("Outreach", False, [
        Link("Campaigns", "campaign", "cam.Campaign"),
        Link("Leads", "group", "cam.Lead"),
        # The reply desk (cam.admin.desk); the badge counts the positive replies nobody has handled yet.
        Link("Replies", "mark_email_unread", "cam.Reply", badge=positive_waiting_badge),
        Link("Outbound emails", "outgoing_mail", "cam.OutboundEmail"),
        Link("Suppressions", "block", "cam.Suppression"),
    ]),
    ("Setup", False, [
        Link("Mailboxes", "inbox", "cam.Mailbox"),
        Link("Sending domains", "verified_user", "cam.SendingDomain"),
        Link("Mailbox folders", "folder_open", "cam.MailboxFolder"),
        Link("Lead sources", "input", "cam.LeadSource"),
        Link("Sequence steps", "format_list_numbered", "cam.SequenceStep"),
        Link("Campaign rules", "rule", "cam.CampaignRule"),
        Link("Saved answers", "quickreply", "cam.AnswerSnippet"),
        Link("Alert channels", "notifications", "cam.AlertChannel"),
        Link("API keys", "key", "cam.CamAPIKey"),
        Link("Users", "person", "auth.User"),
        Link("Groups", "groups", "auth.Group"),
    ]),
    ("Operations", False, [
        Link("Job executions", "manufacturing", "cam.JobExecution"),
        Link("Job run days", "calendar_month", "cam.JobRunDay"),
        Link("Schedules", "schedule", "django_q.Schedule"),
        Link("Worker", "monitor_heart", "cam.WorkerHeartbeat"),
        Link("Alerts sent", "campaign", "cam.HumanAlertLog"),
        # Every message read from the mailboxes, as read: held bounces, unmatched mail, the raw message.
        Link("Inbound emails", "all_inbox", "cam.InboundEmail"),
        Link("Provider events", "webhook", "cam.ProviderEvent"),
        Link("Rule decisions", "gavel", "cam.RuleDecision"),
    ]),
    # The tables CAM keeps for itself: open when something needs explaining, folded otherwise.
    ("Records", True, [
        Link("Lead events", "history", "cam.LeadEvent"),
        Link("Harvest rejections", "playlist_remove", "cam.HarvestRejection"),
        Link("Metric snapshots", "monitoring", "cam.MetricSnapshot"),
        Link("Secret setting changes", "lock", "cam.SecretSettingChange"),
        Link("Leases", "lock_clock", "cam.Lease"),
        Link("Task queue", "queue", "django_q.OrmQ"),
        Link("Successful tasks", "task_alt", "django_q.Success"),
        Link("Failed tasks", "error", "django_q.Failure"),
        Link("Login attempts", "login", "axes.AccessAttempt"),
        Link("Login failures", "no_accounts", "axes.AccessFailureLog"),
        Link("Logins", "how_to_reg", "axes.AccessLog"),
    ]),
]


def dashboard_item(request) -> dict | None:
    from cam.admin.dashboard import may_view_dashboard

    if not may_view_dashboard(request):
        return None
    return {"title": "Dashboard", "icon": "dashboard", "link": reverse("admin:index")}


def sidebar_navigation(request) -> list[dict]:
    groups = []
    for title, collapsible, links in GROUPS:
        items = [item for link in links if (item := link.item(request)) is not None]
        if title == "Outreach" and (dashboard := dashboard_item(request)) is not None:
            items.insert(0, dashboard)
        if items:
            groups.append({"title": title, "separator": True, "collapsible": collapsible, "items": items})
    return groups
