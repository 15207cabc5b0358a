"""A lead's status, changed by staff: the buttons on a lead's page and the list's action.

Every change goes through ``cam.leads.leads_change_status`` (one lead: ``lead_change_status``), the same
service the API calls, so the transitions a person may make (``MANUAL_TRANSITIONS``), the rule that an
unsubscribed or bounced lead stays so while its address is suppressed, and the lead event recording
who did it and why are the same whichever door is used. The status fields themselves are read-only on
the lead's page (``LeadAdmin``).

- **Change status** opens a dialog with the statuses the lead may go to from its own and a required
  reason; a refusal is shown in the dialog, with what was typed kept.
- **Meeting booked**, **Won**, **Lost**: one click and a confirmation, the reason optional ("Marked by
  staff:<name>" when none is given).
- **Change the status of selected leads** (the list's action): a page with the target status and the
  reason, then one message with what became of each lead ("3 changed, 1 refused: …").
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.template.response import TemplateResponse
from django.urls import reverse
from unfold.admin import ModelAdmin
from unfold.dataclasses import ActionDialog
from unfold.decorators import action
from unfold.enums import ActionVariant
from unfold.forms import BaseDialogForm
from unfold.widgets import UnfoldAdminSelectWidget, UnfoldAdminTextareaWidget

from cam.admin import labels
from cam.leads import (
    FINAL_STATUSES,
    StatusChanges,
    TransitionRefused,
    lead_change_status,
    lead_statuses_allowed,
    lead_stop_covering,
    leads_change_status,
    staff_actor,
)
from cam.models import Lead

Status = Lead.Status

# The outcomes marked with one click on a lead's page, by the name of their button's method.
QUICK_OUTCOMES = {"detail_meeting_booked": Status.MEETING_BOOKED, "detail_won": Status.WON,
                  "detail_lost": Status.LOST}
# Leads changed at once by the list's action: its page lists them, and a bigger selection is narrowed first.
BULK_MAX = 500
# Refused leads named one by one in the action's message; the rest are counted.
REFUSALS_NAMED = 10
REASON_MAX = 1000


def status_name(status: str) -> str:
    return str(Status(status).label)


class LeadDialogForm(BaseDialogForm):
    """A dialog about one lead: above its fields, the lead's address and status, why it may not leave an
    unsubscribed or bounced status yet, and the service's refusal (the form's own errors)."""

    form_before_template = "admin/cam/lead/status_dialog.html"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        object_id = str(self.object_id or "")
        self.lead = Lead.objects.only("pk", "email", "status").filter(pk=object_id).first() if object_id.isdigit() \
            else None

    def get_before_template_context(self, request, object_id=None) -> dict[str, Any]:
        lead = self.lead
        if lead is None:
            return {"errors": self.non_field_errors()}
        covering = lead_stop_covering(lead=lead)
        held = (f"Its address is suppressed ({covering}): the lead cannot leave {lead.get_status_display().lower()} "
                f"for a conversation's outcome until the suppression is removed, on its own page under "
                f"Suppressions.") if covering else ""
        return {"lead": lead, "errors": self.non_field_errors(), "held": held,
                "status_label": labels.label(lead.status, lead.get_status_display(), labels.LEAD)}


def reason_field(*, required: bool, help_text: str) -> forms.CharField:
    return forms.CharField(required=required, max_length=REASON_MAX, strip=True, help_text=help_text,
                           widget=UnfoldAdminTextareaWidget(attrs={"rows": 2}))


class LeadStatusForm(LeadDialogForm):
    status = forms.ChoiceField(label="New status", widget=UnfoldAdminSelectWidget)
    reason = reason_field(required=True, help_text="Why: recorded on the lead and in its history, with your name.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        allowed = lead_statuses_allowed(self.lead.status) if self.lead is not None else ()
        self.fields["status"].choices = [("", "Choose…"), *((status, status_name(status)) for status in allowed)]


class LeadOutcomeForm(LeadDialogForm):
    reason = reason_field(required=False, help_text="Optional: without one, the history says who marked it.")


def _outcome_dialog(status: str) -> ActionDialog:
    name = status_name(status)
    return {"title": f"Mark this lead “{name.lower()}”?", "form_class": LeadOutcomeForm, "form_submit_text": name,
            "description": "Its sequence stops, if it was still in one; the change is recorded with your name."}


CHANGE_STATUS_DIALOG: ActionDialog = {
    "title": "Change the lead's status", "form_class": LeadStatusForm, "form_submit_text": "Change status",
    "description": "Only the changes the follow-up engine allows from the lead's status are offered. Its sequence "
                   "stops; the change is recorded with your name and the reason.",
}


class BulkStatusForm(forms.Form):
    """The list action's page: one target status for every lead selected, and why."""

    status = forms.ChoiceField(label="New status", widget=UnfoldAdminSelectWidget)
    reason = reason_field(required=True, help_text="Why: recorded on each lead and in its history, with your name.")

    def __init__(self, *args: Any, targets: tuple[str, ...], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["status"].choices = [("", "Choose…"), *((status, status_name(status)) for status in targets)]  # type: ignore[attr-defined]  # a ChoiceField


def changes_summary(changes: StatusChanges, to_status: str) -> tuple[str, int]:
    """"3 changed, 1 refused: …" — what ``leads_change_status`` did to each lead — and the message's level."""
    parts = [f"{len(changes.changed)} changed to {status_name(to_status).lower()}"]
    if changes.unchanged:
        parts.append(f"{len(changes.unchanged)} already {status_name(to_status).lower()}")
    if not changes.refused:
        return ", ".join(parts) + ".", messages.SUCCESS
    named = sorted(changes.refused.items())[:REFUSALS_NAMED]
    reasons = "; ".join(f"{changes.addresses[pk]}: {refusal}" for pk, refusal in named)
    more = len(changes.refused) - len(named)
    parts.append(f"{len(changes.refused)} refused")
    return (", ".join(parts) + f": {reasons}" + (f" … and {more} more." if more else ""),
            messages.WARNING if changes.changed else messages.ERROR)


class LeadStatusActions(ModelAdmin):
    """The buttons on a lead's page and the list's action, which ``LeadAdmin`` inherits."""

    actions = ["change_status"]
    actions_detail = ["detail_change_status", *QUICK_OUTCOMES]

    def get_actions_detail(self, request, object_id):
        """The buttons that apply to the lead's status now: no status change for a lead that allows none,
        and no one-click outcome the lead may not take (nor any while its address keeps it unsubscribed)."""
        allowed_buttons = super().get_actions_detail(request, object_id)
        lead = Lead.objects.only("pk", "email", "status").filter(pk=object_id).first()
        if lead is None:
            return []
        allowed = lead_statuses_allowed(lead.status)
        held = lead.status in FINAL_STATUSES and bool(lead_stop_covering(lead=lead))
        shown = []
        for button in allowed_buttons:
            name = button.action_name.removeprefix("cam_lead_")
            if name in QUICK_OUTCOMES and (QUICK_OUTCOMES[name] not in allowed or held):
                continue
            if name == "detail_change_status" and not allowed:
                continue
            shown.append(button)
        return shown

    def _status_changed(self, request, form: LeadDialogForm, object_id, *, to_status: str, reason: str,
                        dialog: ActionDialog) -> HttpResponse:
        lead = get_object_or_404(Lead, pk=object_id)
        try:
            changed = lead_change_status(lead=lead, to_status=to_status, actor=staff_actor(request.user),
                                         reason=reason)
        except TransitionRefused as exc:
            # Said in the dialog, which stays open with what was typed (the page left open may be stale).
            form.add_error(None, str(exc))
            form.lead = lead
            return render(request, "unfold/helpers/dialog.html",
                          {"dialog": dialog, "form": form, "form_submit_text": dialog["form_submit_text"]})
        name = status_name(to_status).lower()
        self.message_user(request, f"Lead {lead.email} is now {name}." if changed
                          else f"Lead {lead.email} was already {name}.", messages.SUCCESS)
        if request.headers.get("HX-Request"):
            # The dialog posted through htmx: the browser loads the lead's page again, with the message.
            return HttpResponse(headers={"HX-Refresh": "true"})
        return HttpResponseRedirect(reverse("admin:cam_lead_change", args=[lead.pk]))

    @action(description="Change status", url_path="change-status", permissions=["change"], icon="swap_horiz",
            variant=ActionVariant.DEFAULT, dialog=CHANGE_STATUS_DIALOG)
    def detail_change_status(self, request, form, object_id):
        return self._status_changed(request, form, object_id, to_status=form.cleaned_data["status"],
                                    reason=form.cleaned_data["reason"], dialog=CHANGE_STATUS_DIALOG)

    def _outcome(self, request, form, object_id, status: str) -> HttpResponse:
        reason = form.cleaned_data["reason"] or f"Marked by {staff_actor(request.user)}."
        return self._status_changed(request, form, object_id, to_status=status, reason=reason,
                                    dialog=_outcome_dialog(status))

    @action(description="Meeting booked", url_path="meeting-booked", permissions=["change"], icon="event_available",
            variant=ActionVariant.SUCCESS, dialog=_outcome_dialog(Status.MEETING_BOOKED))
    def detail_meeting_booked(self, request, form, object_id):
        return self._outcome(request, form, object_id, Status.MEETING_BOOKED)

    @action(description="Won", url_path="won", permissions=["change"], icon="emoji_events",
            variant=ActionVariant.SUCCESS, dialog=_outcome_dialog(Status.WON))
    def detail_won(self, request, form, object_id):
        return self._outcome(request, form, object_id, Status.WON)

    @action(description="Lost", url_path="lost", permissions=["change"], icon="heart_broken",
            variant=ActionVariant.DEFAULT, dialog=_outcome_dialog(Status.LOST))
    def detail_lost(self, request, form, object_id):
        return self._outcome(request, form, object_id, Status.LOST)

    @admin.action(description="Change the status of selected leads", permissions=["change"])
    def change_status(self, request, queryset):
        selected = list(queryset.order_by("pk").values_list("pk", "status")[:BULK_MAX + 1])
        if len(selected) > BULK_MAX:
            self.message_user(request, f"Select at most {BULK_MAX} leads to change their status at once: filter "
                                       f"the list first.", messages.ERROR)
            return None
        statuses = {status for _, status in selected}
        reachable = {target for status in statuses for target in lead_statuses_allowed(status)}
        targets = tuple(status for status in Status.values if status in reachable)
        form = BulkStatusForm(request.POST if "apply" in request.POST else None, targets=targets)
        if form.is_valid():
            to_status = form.cleaned_data["status"]
            changes = leads_change_status(lead_ids=[pk for pk, _ in selected], to_status=to_status,
                                          actor=staff_actor(request.user), reason=form.cleaned_data["reason"])
            text, level = changes_summary(changes, to_status)
            self.message_user(request, text, level)
            return None
        by_status = {status: sum(1 for _, found in selected if found == status) for status in statuses}
        context = {
            **self.admin_site.each_context(request),
            "title": "Change the status of selected leads", "opts": Lead._meta, "form": form,
            "selected": [pk for pk, _ in selected], "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "by_status": [(labels.label(status, status_name(status), labels.LEAD), by_status[status])
                          for status in Status.values if status in by_status],
            "nothing_allowed": not targets,
        }
        return TemplateResponse(request, "admin/cam/lead/change_status.html", context)
