"""Setup › Sending domains: each mailbox domain's SPF, DKIM, DMARC and MX, checked, overridden or held again."""

from __future__ import annotations

import re

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe
from unfold.admin import ModelAdmin
from unfold.dataclasses import ActionDialog
from unfold.decorators import action
from unfold.enums import ActionVariant
from unfold.forms import BaseDialogForm
from unfold.widgets import UnfoldAdminTextareaWidget

from cam.admin import labels
from cam.domains.services import (
    AUTH_FAILURE_DAYS,
    DomainProblem,
    auth_failure_reports,
    domain_check,
    domain_hold_again,
    domain_override,
)
from cam.leads import staff_actor
from cam.models import SendingDomain

CHECK_TITLES = {"mx": "MX", "spf": "SPF", "dkim": "DKIM", "dmarc": "DMARC", "tracking": "Unsubscribe host"}


def _code(text: str) -> SafeString:
    """The fix's words with its `record text` shown as code."""
    return mark_safe(re.sub(r"`([^`]*)`", r"<code>\1</code>", str(escape(text))))  # escaped first


def domain_panel(domain: SendingDomain | None, *, link: bool = False) -> SafeString | str:
    """Pass / warn / fail per check with what to fix; a link to the domain's page when ``link``."""
    if domain is None:
        return format_html('<p class="cam-domain-health">{}</p>', "Not checked yet: it is checked when the mailbox "
                           "is saved, daily, and by Check now on its domain.")
    checks = [{**check, "title": CHECK_TITLES.get(check["name"], check["name"]), "fix_html": _code(check["fix"]),
               "label": labels.label(check["verdict"], check["verdict"].capitalize(), labels.DOMAIN)}
              for check in domain.checks]
    reports = auth_failure_reports([domain.domain]).get(domain.domain, 0)
    return render_to_string("admin/cam/sendingdomain/checks.html", {
        "domain": domain, "checks": checks, "auth_failures": reports, "auth_failure_days": AUTH_FAILURE_DAYS,
        "auth_failures_link": (f"{reverse('admin:cam_inboundemail_changelist')}?category__exact=AUTH_FAILURE"
                               if reports else ""),
        "verdict": labels.label(domain.verdict, domain.get_verdict_display(), labels.DOMAIN),
        "link": reverse("admin:cam_sendingdomain_change", args=[domain.pk]) if link else ""})


class OverrideForm(BaseDialogForm):
    reason = forms.CharField(max_length=2000, strip=True, widget=UnfoldAdminTextareaWidget(attrs={"rows": 2}),
                             help_text="Why its mailboxes may send although SPF or DMARC fails: recorded with your "
                                       "name.")


class HoldForm(BaseDialogForm):
    reason = forms.CharField(required=False, max_length=2000, strip=True,
                             widget=UnfoldAdminTextareaWidget(attrs={"rows": 2}), help_text="Optional; recorded.")


OVERRIDE_DIALOG: ActionDialog = {
    "title": "Let this domain send although SPF or DMARC fails?", "form_class": OverrideForm,
    "form_submit_text": "Override",
    "description": "Its mailboxes' leads are planned again from the next worker cycle. Receivers may still reject "
                   "or junk the mail: fix the records, then hold it again or leave the override to be harmless.",
}
HOLD_DIALOG: ActionDialog = {
    "title": "Hold this domain's mailboxes again?", "form_class": HoldForm, "form_submit_text": "Hold again",
    "description": "While SPF or DMARC fails, its mailboxes' leads wait with the reason “Sending domain fails SPF "
                   "or DMARC”.",
}


@admin.register(SendingDomain)
class SendingDomainAdmin(ModelAdmin):
    list_display = ["domain", "verdict_label", "hold_state", "checked_at"]
    list_filter = ["verdict", "holds_mail"]
    search_fields = ["domain"]
    fields = ["domain", "panel", "dkim_selectors", "override_reason", "override_by", "override_at", "history_text"]
    readonly_fields = ["panel", "override_reason", "override_by", "override_at", "history_text"]
    actions = ["check_selected"]
    actions_detail = ["detail_check", "detail_override", "detail_hold"]

    verdict_label = labels.label_column("verdict", labels.DOMAIN, "Verdict")

    def get_readonly_fields(self, request, obj=None):
        # The domain is the mailboxes' from-address domain: it is named once, when the row is made.
        return [*self.readonly_fields, "domain"] if obj is not None else self.readonly_fields

    @admin.display(description="Holds leads")
    def hold_state(self, domain: SendingDomain) -> str:
        if domain.holds_leads:
            return "Held: SPF or DMARC fails"
        return "Overridden" if domain.holds_mail else "—"

    @admin.display(description="Checks")
    def panel(self, domain: SendingDomain) -> SafeString | str:
        return domain_panel(domain if domain.pk else None)

    @admin.display(description="History")
    def history_text(self, domain: SendingDomain) -> SafeString | str:
        if not domain.history:
            return "—"
        return format_html("<br>".join(["{}"] * len(domain.history)), *(
            f"{entry['at'][:16].replace('T', ' ')} {entry['by']}: "
            f"{'overridden' if entry['action'] == 'override' else 'held again'}"
            + (f" — {entry['reason']}" if entry["reason"] else "") for entry in domain.history))

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        domain_check(obj)

    def get_actions_detail(self, request, object_id):
        """Override while it holds; hold again while overridden."""
        allowed = super().get_actions_detail(request, object_id)
        domain = SendingDomain.objects.filter(pk=object_id).first()
        shown = []
        for button in allowed:
            name = button.action_name.removeprefix("cam_sendingdomain_")
            if name == "detail_override" and (domain is None or not domain.holds_leads):
                continue
            if name == "detail_hold" and (domain is None or not domain.is_overridden):
                continue
            shown.append(button)
        return shown

    @admin.action(description="Check selected domains now", permissions=["change"])
    def check_selected(self, request, queryset) -> None:
        rows = [domain_check(domain) for domain in queryset]
        held = [row.domain for row in rows if row.holds_leads]
        self.message_user(request, f"Checked {len(rows)} domain(s)." + (
            f" Held until SPF and DMARC pass: {', '.join(held)}." if held else ""),
            messages.WARNING if held else messages.SUCCESS)

    def _done(self, request, domain: SendingDomain) -> HttpResponse:
        if request.headers.get("HX-Request"):
            return HttpResponse(headers={"HX-Refresh": "true"})
        return HttpResponseRedirect(reverse("admin:cam_sendingdomain_change", args=[domain.pk]))

    @action(description="Check now", url_path="check", permissions=["change"], icon="refresh")
    def detail_check(self, request, object_id):
        domain = domain_check(get_object_or_404(SendingDomain, pk=object_id))
        self.message_user(request, f"{domain.domain}: {domain.get_verdict_display().lower()}.",
                          messages.WARNING if domain.verdict != "pass" else messages.SUCCESS)
        return self._done(request, domain)

    def _dialog_refused(self, request, form: forms.Form, dialog: ActionDialog, problem: str) -> HttpResponse:
        form.add_error(None, problem)
        return render(request, "unfold/helpers/dialog.html",
                      {"dialog": dialog, "form": form, "form_submit_text": dialog["form_submit_text"]})

    @action(description="Override", url_path="override", permissions=["change"], icon="lock_open",
            variant=ActionVariant.WARNING, dialog=OVERRIDE_DIALOG)
    def detail_override(self, request, form: OverrideForm, object_id) -> HttpResponse:
        domain = get_object_or_404(SendingDomain, pk=object_id)
        try:
            domain = domain_override(domain, reason=form.cleaned_data["reason"], actor=staff_actor(request.user),
                                     user=request.user)
        except DomainProblem as exc:
            return self._dialog_refused(request, form, OVERRIDE_DIALOG, str(exc))
        self.message_user(request, f"{domain.domain} may send although SPF or DMARC fails.", messages.SUCCESS)
        return self._done(request, domain)

    @action(description="Hold again", url_path="hold", permissions=["change"], icon="lock",
            variant=ActionVariant.DEFAULT, dialog=HOLD_DIALOG)
    def detail_hold(self, request, form: HoldForm, object_id) -> HttpResponse:
        domain = get_object_or_404(SendingDomain, pk=object_id)
        try:
            domain = domain_hold_again(domain, actor=staff_actor(request.user), reason=form.cleaned_data["reason"])
        except DomainProblem as exc:
            return self._dialog_refused(request, form, HOLD_DIALOG, str(exc))
        self.message_user(request, f"{domain.domain} holds its mailboxes' leads again while SPF or DMARC fails.",
                          messages.SUCCESS)
        return self._done(request, domain)


def mailbox_domain(name: str) -> SendingDomain | None:
    return SendingDomain.objects.select_related("override_by").filter(domain=name).first()
