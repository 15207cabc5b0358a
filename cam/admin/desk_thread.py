"""A conversation's thread on the reply desk: the page an inbox row (and a warm reply's alert) opens.

Every email we sent the lead, as it went out (its step, when, from and to), and every message it sent us (its
own words, the whole message folded), oldest first (``cam.inbox.thread``). Beside them, the reply the page was
opened on: how CAM read it and why, one click to read it as something else (``reply_reclassify``: the follow-up
engine applies the new category, recorded as the person's), *Mark handled* and *Assign to* (``cam.inbox.desk``),
and the conversation's outcome — *Meeting booked*, *Won*, *Lost* — through ``lead_change_status``, the service the
lead's page and the API call. Under the thread, the composer's place (``admin/cam/reply_composer.html``).

The page costs the same queries for a conversation of one message or fifty. Its buttons post to small views
here that call the services and come back with a message: a refusal names what was wrong.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from cam.admin import answers, labels
from cam.admin.answers import composer_context
from cam.admin.columns import EMPTY
from cam.inbox.desk import NotAssignable, desk_staff, reply_assign, reply_mark_handled
from cam.inbox.processing import reply_reclassify
from cam.inbox.thread import IN, reply_thread
from cam.leads import (
    FINAL_STATUSES,
    TransitionRefused,
    lead_change_status,
    lead_statuses_allowed,
    lead_stop_covering,
    staff_actor,
)
from cam.models import InboundEmail, Lead, Reply

# How many of a conversation's latest messages show whole; the older ones show a line each until opened.
MESSAGES_OPEN = 3
FILTERS = "_changelist_filters"  # the inbox's filters, carried to the thread and back (as Django's admin does)
Category = InboundEmail.Category
CATEGORY_NAMES = dict(Category.choices)
# The conversation's outcomes, one button each on the thread (the lead's page has the same three).
OUTCOMES = (Lead.Status.MEETING_BOOKED, Lead.Status.WON, Lead.Status.LOST)
OUTCOME_REASON_MAX = 1000


def may_read_replies(request) -> bool:
    return request.user.has_perm("cam.view_inboundemail") or request.user.has_perm("cam.change_inboundemail")


def may_work_replies(request) -> bool:
    """Marking handled, assigning and reclassifying: the replies' change permission, as in the API."""
    return request.user.has_perm("cam.change_inboundemail")


def may_change_leads(request) -> bool:
    """The outcome buttons change the lead: the leads' change permission, as on the lead's page."""
    return request.user.has_perm("cam.change_lead")


def outcomes_context(lead: Lead | None) -> dict[str, Any]:
    """The outcome card: the outcomes the lead may take from its status now, or why it may take none."""
    if lead is None:
        return {"outcomes": [], "outcome_note": ""}
    allowed = lead_statuses_allowed(lead.status)
    covering = lead_stop_covering(lead=lead) if lead.status in FINAL_STATUSES else ""
    if covering:
        return {"outcomes": [], "outcome_note": f"Its address is suppressed ({covering}): remove the suppression, on "
                                                f"its own page under Suppressions, before marking an outcome."}
    outcomes = [{"value": status, "label": Lead.Status(status).label, "tone": labels.LEAD.get(status, labels.GREY)}
                for status in OUTCOMES if status in allowed]
    note = "" if outcomes else f"A lead that is {lead.get_status_display().lower()} takes no outcome from here."
    return {"outcomes": outcomes, "outcome_note": note}


def waited(since: datetime | None, now: datetime) -> str:
    """How long a reply has waited, in the largest whole unit: "just now", "12 min", "3 h", "2 d", "5 wk"."""
    if since is None:
        return EMPTY
    seconds = max(0, int((now - since).total_seconds()))
    for unit, size in (("wk", 7 * 86400), ("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and (unit != "wk" or seconds >= 2 * size):
            return f"{seconds // size} {unit}"
    return "just now"


def _kept(request: HttpRequest) -> str:
    """The inbox's filters as a query string for the thread's own links and forms ("" when there are none)."""
    filters = request.GET.get(FILTERS, "")
    return f"?{urlencode({FILTERS: filters})}" if filters else ""


def _inbox(request: HttpRequest) -> str:
    filters = request.GET.get(FILTERS, "")
    return reverse("admin:cam_reply_changelist") + (f"?{filters}" if filters else "")


def _thread(request: HttpRequest, reply_id: int) -> str:
    return reverse("admin:cam_reply_thread", args=[reply_id]) + _kept(request)


def thread_view(model_admin, request: HttpRequest, reply_id: int) -> HttpResponse:
    if not may_read_replies(request):
        raise PermissionDenied
    try:
        thread = reply_thread(reply_id=reply_id)
    except InboundEmail.DoesNotExist:
        raise Http404(f"No reply #{reply_id}.") from None
    reply, lead = thread.reply, thread.lead
    may_work = may_work_replies(request)
    shown = []
    for index, message in enumerate(thread.messages):
        category = getattr(message.record, "category", "") if message.direction == IN else ""
        shown.append({"message": message, "incoming": message.direction == IN,
                      "label": labels.label(category, CATEGORY_NAMES.get(category, category), labels.REPLY)
                      if category else "",
                      # The latest messages and the reply itself open; the older ones a line each, a click away.
                      "open": message.current or index >= len(thread.messages) - MESSAGES_OPEN})
    kept = _kept(request)
    context: dict[str, Any] = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "original": _Crumb(reply.pk, _title(reply, lead)),
        "title": _title(reply, lead),
        "reply": reply, "lead": lead, "thread": shown,
        "lead_status": labels.label(lead.status, lead.get_status_display(), labels.LEAD) if lead else "",
        "category": labels.label(reply.category, reply.get_category_display(), labels.REPLY) if reply.category else "",
        "confidence": round(100 * reply.confidence) if reply.confidence is not None else None,
        "reasons": [str(reason) for reason in reply.classification_reasons],
        "waited": waited(reply.received_at or reply.created_at, timezone.now()),
        "may_work": may_work,
        "categories": [{"value": value, "label": label, "tone": labels.REPLY.get(Category(value), labels.GREY),
                        "current": value == reply.category} for value, label in Category.choices],
        "staff": list(desk_staff()) if may_work else [],
        "may_mark_outcome": may_change_leads(request) and lead is not None,
        **(outcomes_context(lead) if may_change_leads(request) else {"outcomes": [], "outcome_note": ""}),
        "outcome_url": reverse("admin:cam_reply_outcome", args=[reply.pk]) + kept,
        "inbox_url": _inbox(request),
        "record_url": reverse("admin:cam_inboundemail_change", args=[reply.pk]),
        "handled_url": reverse("admin:cam_reply_handled", args=[reply.pk]) + kept,
        "assign_url": reverse("admin:cam_reply_assign", args=[reply.pk]) + kept,
        "reclassify_url": reverse("admin:cam_reply_reclassify", args=[reply.pk]) + kept,
        # The composer (answering from CAM, in the same thread): admin/cam/reply_composer.html draws it.
        "composer": composer_context(request, reply, action=reverse("admin:cam_reply_answer", args=[reply.pk]))
        if may_work else None,
    }
    if lead is not None:
        context["lead_url"] = reverse("admin:cam_lead_change", args=[lead.pk])
        context["campaign_url"] = reverse("admin:cam_campaign_change", args=[lead.campaign_id])
    return TemplateResponse(request, "admin/cam/reply_thread.html", context)


class _Crumb:
    """The conversation in the page's header (CAM › Replies › who wrote): the theme names a page's object by its
    ``str()`` and links it by its ``_meta`` and ``pk``."""

    _meta = Reply._meta

    def __init__(self, pk: int, title: str) -> None:
        self.pk, self.title = pk, title

    def __str__(self) -> str:
        return self.title


def _title(reply: InboundEmail, lead: Lead | None) -> str:
    if lead is not None:
        who = lead.full_name or lead.email
        return f"{who} ({lead.company})" if lead.company else who
    return reply.from_name or reply.from_email or f"Reply #{reply.pk}"


def _person(request: HttpRequest) -> AbstractBaseUser:
    """The staff member making the request (the admin's views let no one else through)."""
    user = request.user
    assert isinstance(user, AbstractBaseUser)
    return user


def _reply_to_work(model_admin, request: HttpRequest, reply_id: int) -> InboundEmail:
    if not may_work_replies(request):
        raise PermissionDenied
    reply = InboundEmail.objects.defer("raw_message").filter(pk=reply_id).first()
    if reply is None:
        raise Http404(f"No reply #{reply_id}.")
    return reply


def handled_view(model_admin, request: HttpRequest, reply_id: int) -> HttpResponse:
    """Marks the reply handled (back to the inbox, for the next one) or not handled (back on the thread)."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    reply = _reply_to_work(model_admin, request, reply_id)
    sender = reply.from_name or reply.from_email or f"reply #{reply.pk}"
    if request.POST.get("handled", "1") == "0":
        reply_mark_handled(inbound=reply, by=_person(request), handled=False)
        messages.success(request, f"The reply from {sender} is back on the desk, not handled.")
        return HttpResponseRedirect(_thread(request, reply.pk))
    if reply_mark_handled(inbound=reply, by=_person(request)):
        messages.success(request, f"The reply from {sender} is handled.")
    else:
        by = reply.handled_by.get_username() if reply.handled_by else "an API client"
        messages.info(request, f"The reply from {sender} was handled already, by {by}.")
    return HttpResponseRedirect(_inbox(request))


def assign_view(model_admin, request: HttpRequest, reply_id: int) -> HttpResponse:
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    reply = _reply_to_work(model_admin, request, reply_id)
    chosen = request.POST.get("assigned_to", "").strip()
    assignee = None
    if chosen:
        assignee = (get_user_model().objects.filter(pk=int(chosen)).first() if chosen.isdigit() else None)
        if assignee is None:
            messages.error(request, f"Not assigned: there is no user with the id “{chosen}”.")
            return HttpResponseRedirect(_thread(request, reply.pk))
    try:
        reply_assign(inbound=reply, assignee=assignee)
    except NotAssignable as exc:
        messages.error(request, f"Not assigned: {exc}")
    else:
        messages.success(request, f"Assigned to {assignee.get_username()}." if assignee else "Assigned to nobody.")
    return HttpResponseRedirect(_thread(request, reply.pk))


def answer_view(model_admin, request: HttpRequest, reply_id: int) -> HttpResponse:
    """Sends the composer's answer (cam.admin.answers), then back on the thread with what became of it."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    reply = _reply_to_work(model_admin, request, reply_id)
    return answers.answer_view(request, reply, back="admin:cam_reply_thread")


def reclassify_view(model_admin, request: HttpRequest, reply_id: int) -> HttpResponse:
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    reply = _reply_to_work(model_admin, request, reply_id)
    category = request.POST.get("category", "")
    if category not in Category.values:
        messages.error(request, f"Not reclassified: “{category}” is not a category; choose one of "
                                f"{', '.join(label.lower() for label in Category.labels)}.")
        return HttpResponseRedirect(_thread(request, reply.pk))
    reply_reclassify(inbound=reply, category=category, by=staff_actor(request.user))
    outcome = ""
    if reply.lead_id is not None:
        lead = Lead.objects.only("status").get(pk=reply.lead_id)
        outcome = f" The lead is {lead.get_status_display().lower()}."
    messages.success(request, f"Read as {Category(category).label.lower()}: its follow-up was applied.{outcome}")
    return HttpResponseRedirect(_thread(request, reply.pk))


def outcome_view(model_admin, request: HttpRequest, reply_id: int) -> HttpResponse:
    """Marks the conversation's outcome on its lead (meeting booked, won, lost), then back on the thread."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if not may_change_leads(request):
        raise PermissionDenied
    reply = InboundEmail.objects.only("pk", "lead_id").filter(pk=reply_id).first()
    if reply is None:
        raise Http404(f"No reply #{reply_id}.")
    lead = Lead.objects.filter(pk=reply.lead_id).first() if reply.lead_id else None
    if lead is None:
        messages.error(request, "No outcome marked: this message matched no lead.")
        return HttpResponseRedirect(_thread(request, reply.pk))
    status = request.POST.get("status", "")
    if status not in OUTCOMES:
        messages.error(request, f"No outcome marked: “{status}” is not one; choose "
                                f"{', '.join(str(Lead.Status(outcome).label).lower() for outcome in OUTCOMES)}.")
        return HttpResponseRedirect(_thread(request, reply.pk))
    actor = staff_actor(request.user)
    reason = request.POST.get("reason", "").strip()[:OUTCOME_REASON_MAX] or f"Marked by {actor} on the reply desk."
    name = str(Lead.Status(status).label).lower()
    try:
        changed = lead_change_status(lead=lead, to_status=status, actor=actor, reason=reason)
    except TransitionRefused as exc:
        messages.error(request, f"Not marked {name}: {exc}")
    else:
        messages.success(request, f"{lead.email} is now {name}." if changed else f"{lead.email} was already {name}.")
    return HttpResponseRedirect(_thread(request, reply.pk))
