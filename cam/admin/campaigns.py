"""Campaigns, their sequence steps and lead sources.

A campaign's page is in tabs (``campaign_tabs``, named in settings.UNFOLD["TABS"]): *Settings* (its fields,
in sub-tabs), *Sequence* (the steps, each previewed for a chosen lead), *Lead sources*, *Rules*, and on an
existing campaign *Performance* and *Diagnose*, read from ``cam.diagnose`` and drawn by
``templates/admin/cam/campaign_tabs.html``. Pause, resume and activate are buttons at the top of the page,
shown when they apply, each asking for a confirmation before it calls the same service as the list's actions.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import (
    Count,
    DateTimeField,
    FloatField,
    IntegerField,
    JSONField,
    OuterRef,
    Subquery,
    Value,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.functional import SimpleLazyObject
from django.utils.html import format_html
from unfold.admin import ModelAdmin, StackedInline, TabularInline
from unfold.decorators import action
from unfold.enums import ActionVariant
from unfold.widgets import (
    UnfoldAdminCheckboxSelectMultipleWidget,
    UnfoldAdminTextareaWidget,
    UnfoldAdminTextInputWidget,
)

from cam.admin import labels
from cam.admin.base import CommaSeparatedListField, LongListMixin, TimezoneSelect
from cam.admin.columns import text_column
from cam.admin.dashboard import campaign_figures
from cam.admin.labels import label_column
from cam.admin.readable import raw_field, short_datetime
from cam.admin.secret_settings import SecretSettingsAdminMixin, SecretSettingsInlineMixin, record_inline_changes
from cam.campaigns import (
    ACTIVATABLE,
    PAUSABLE,
    RESUMABLE,
    campaign_rules_ensure_defaults,
    campaign_save_settings,
    campaigns_activate,
    campaigns_pause,
    campaigns_resume,
)
from cam.diagnose import campaign_diagnosis, step_performance, step_totals
from cam.jobs.registry import UnknownJob
from cam.jobs.request import JobRefused, job_request
from cam.jobs.summary import counts_text
from cam.leads import staff_actor
from cam.models import (
    Campaign,
    CampaignRule,
    JobExecution,
    Lead,
    LeadSource,
    MetricSnapshot,
    OutboundEmail,
    SequenceStep,
)
from cam.models.campaigns import first_step
from cam.models.decisions import Scope, percent_text, snapshot_computed_at
from cam.models.fields import WEEKDAYS
from cam.outreach.preview import preview_step, preview_steps
from cam.outreach.rendering import TemplateProblem, check_templates
from cam.sequences import (
    FirstStepWithoutSubject,
    sequence_check_first_step,
    sequence_step_cancel_queued,
    sequence_step_check,
    sequence_step_delete,
    sequence_steps_delete,
    sequence_steps_delete_problems,
    sequence_steps_in_use,
)


def _actor(request) -> str:
    return staff_actor(request.user)


def _count_of(model, **filters) -> Coalesce:
    """A per-campaign count as a subquery: one query for the whole changelist, no row fan-out. COUNT(*), so an
    index on (campaign, ...) answers it alone, without reading the rows."""
    counted = (model.objects.filter(campaign=OuterRef("pk"), **filters).order_by()
               .values("campaign").annotate(n=Count("*")).values("n"))
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def _snapshot(field: str, output_field) -> Subquery:
    """A field of the campaign's metric snapshot, as a subquery (a campaign has at most one)."""
    stored = MetricSnapshot.objects.filter(campaign=OuterRef("pk"), scope=Scope.CAMPAIGN).values(field)[:1]
    return Subquery(stored, output_field=output_field)


def _counted_at() -> Subquery:
    """When the campaign's metrics were last computed (``snapshot_computed_at``), as a subquery."""
    stored = (MetricSnapshot.objects.filter(campaign=OuterRef("pk"), scope=Scope.CAMPAIGN)
              .annotate(at=snapshot_computed_at("computed_at")).values("at")[:1])
    return Subquery(stored, output_field=DateTimeField())


def _uncounted_last(figure: str) -> Coalesce:
    """Sorts by ``figure`` with the campaigns not counted yet below every counted one, on every database."""
    return Coalesce(figure, Value(-1), output_field=FloatField())


def _all_time(figure: str, output_field) -> Cast:
    """A campaign's all-time figure as the worker's metrics step last stored it (``cam.decisions.metrics_compute``,
    every cycle): the same counts the dashboard and the rules read, where counting them again would read every
    email and reply the campaign ever had."""
    return Cast(KeyTextTransform(figure, _snapshot("all_time", JSONField())), output_field)


class CampaignForm(forms.ModelForm):
    """The campaign's settings. The rules tying one field to another (the company size range, the send
    window) are the model's (``Campaign.clean()``): the form's full_clean applies them, as the API does."""

    icp_industries = CommaSeparatedListField(required=False, label="Industries", widget=UnfoldAdminTextInputWidget,
                                             help_text="Separated by commas, e.g. software, logistics.")
    icp_title_keywords = CommaSeparatedListField(required=False, label="Title keywords",
                                                 widget=UnfoldAdminTextInputWidget,
                                                 help_text="Separated by commas, e.g. cto, head of, founder.")
    icp_countries = CommaSeparatedListField(required=False, label="Countries", widget=UnfoldAdminTextInputWidget,
                                            help_text="Separated by commas, e.g. DE, AT, CH.")
    send_days = forms.TypedMultipleChoiceField(
        choices=[(number, name) for number, name in enumerate(WEEKDAYS, start=1)],
        coerce=int, widget=UnfoldAdminCheckboxSelectMultipleWidget, label="Send on")

    class Meta:
        model = Campaign
        fields = "__all__"  # noqa: DJ007 - the admin's fieldsets choose what is shown
        widgets = {"timezone": TimezoneSelect(),
                   "description": UnfoldAdminTextareaWidget(attrs={"rows": 2})}


class SequenceStepForm(forms.ModelForm):
    """Refuses a template that does not render, with Django's message, before it reaches a lead."""

    class Meta:
        model = SequenceStep
        fields = ["position", "delay_days", "delay_hours", "is_enabled", "subject_template", "body_template",
                  "html_template"]
        widgets = {"body_template": UnfoldAdminTextareaWidget(attrs={"rows": 8}),
                   "html_template": UnfoldAdminTextareaWidget(attrs={"rows": 3})}

    def clean(self):
        cleaned: dict[str, Any] = super().clean()  # type: ignore[assignment]  # a ModelForm's is never None
        for field, message in check_templates(subject=cleaned.get("subject_template") or "",
                                              body=cleaned.get("body_template") or "",
                                              html=cleaned.get("html_template") or ""):
            self.add_error(field, message)
        return cleaned


class SequenceStepAdminForm(SequenceStepForm):
    """A step edited on its own page: the first-step rule is checked beside the campaign's other steps as
    saved (the campaign's page checks all its steps together, in ``SequenceStepFormSet``)."""

    def _post_clean(self):
        super()._post_clean()  # type: ignore[misc]  # Django's, not in its stubs; the instance now holds the form's values
        if self.errors:
            return
        try:
            sequence_step_check(self.instance)
        except ValidationError as exc:
            self.add_error(None, exc)
        except FirstStepWithoutSubject as exc:
            self.add_error(None, str(exc))


def _sent_counts(queryset):
    sent = (OutboundEmail.objects.filter(step=OuterRef("pk"), status=OutboundEmail.Status.SENT).order_by()
            .values("step").annotate(n=Count("pk")).values("n"))
    return queryset.annotate(_sent=Coalesce(Subquery(sent, output_field=IntegerField()), 0))


class SequenceStepFormSet(forms.BaseInlineFormSet):
    """The rules of ``cam.sequences`` over all the steps the page saves at once: the steps as saved must leave
    the first (the lowest enabled position) with a subject, and a step ticked for deletion that has emails is
    refused (“Step 2 has 340 emails; disable it instead.”). The deletions go through
    ``sequence_step_delete``, after the other steps are saved, so the later steps move up a place from the
    positions the page gave them."""

    def clean(self):
        super().clean()
        if any(form.errors for form in self.forms):
            return
        deleted = [form.instance for form in self.forms
                   if form.instance.pk and form.cleaned_data and self._should_delete_form(form)]  # type: ignore[attr-defined]  # Django's, not in its stubs
        in_use = sequence_steps_in_use(deleted) if deleted else []
        if in_use:
            raise ValidationError(in_use)
        kept = [form for form in self.forms if form.cleaned_data and not self._should_delete_form(form)]  # type: ignore[attr-defined]  # Django's, not in its stubs
        before = list(SequenceStep.objects.filter(campaign=self.instance)) if self.instance.pk else []
        try:
            sequence_check_first_step(before=before, after=[form.instance for form in kept])
        except ValidationError as exc:
            first = first_step(form.instance for form in kept)
            next(form for form in kept if form.instance is first).add_error(None, exc)
        except FirstStepWithoutSubject as exc:
            raise ValidationError(str(exc)) from None

    def save(self, commit=True):
        self._to_delete: list[SequenceStep] = []
        saved = super().save(commit)
        for form in self.forms:  # a step the page disabled: its emails still waiting are cancelled
            if "is_enabled" in form.changed_data and form.instance.pk and not form.instance.is_enabled:
                sequence_step_cancel_queued(form.instance)
        # After the changed and new steps are saved: deleting first would move the later steps up a place, and
        # saving one of them next would write back the position it had on the page.
        sequence_steps_delete(steps=self._to_delete)
        return saved

    def delete_existing(self, obj, commit=True):
        if commit:
            self._to_delete.append(obj)


def may_preview(request, admin_site) -> bool:
    """The preview shows a lead's name, address and company in the email: it needs the permission to
    view leads (or change them), as the leads' own list does, besides the one to view the step."""
    return admin_site.get_model_admin(Lead).has_view_permission(request)


class SequenceStepInline(StackedInline):
    """The campaign's *Sequence* tab: its steps, each shown rendered for one lead of the campaign, the one
    picked in the list above the steps (``?preview_lead=<id>``; the campaign's first lead by address
    otherwise), exactly as the sender would render it."""

    model = SequenceStep
    form = SequenceStepForm
    formset = SequenceStepFormSet
    extra = 0
    tab = True
    verbose_name_plural = "Sequence"
    # The preview right under the body it renders; the HTML part, often empty, after it.
    fields = [("position", "delay_days", "delay_hours", "is_enabled"), "subject_template", "body_template", "preview",
              "html_template", ("sent", "preview_link")]
    readonly_fields = ["sent", "preview_link", "preview"]
    PREVIEW_LEADS = 500  # offered in the list; the step's own preview page searches the same way
    # Set per request by get_formset (Django makes the inline objects afresh for each request).
    preview_lead: Lead | None = None
    preview_choices: Any = None
    previews: Any = None

    def get_queryset(self, request):
        # Each step's title names its campaign: fetched with it, not once per step.
        return _sent_counts(super().get_queryset(request)).select_related("campaign")

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if may_preview(request, self.admin_site):
            return fields
        # No preview of a lead they may not see, and no link to a page that would refuse them.
        hidden = {"preview", "preview_link"}
        return [tuple(name for name in field if name not in hidden) if isinstance(field, tuple) else field
                for field in fields if field not in hidden]

    def get_formset(self, request, obj=None, **kwargs):
        if obj is not None and may_preview(request, self.admin_site):
            chosen = request.GET.get("preview_lead", "")
            leads = Lead.objects.filter(campaign=obj).order_by("email")
            self.preview_lead = (leads.filter(pk=chosen).first() if chosen.isdigit() else None) or leads.first()
            self.preview_choices = leads.only("pk", "email", "first_name", "last_name")[:self.PREVIEW_LEADS]
            lead = self.preview_lead
            if lead is not None:
                # Rendered once for all the steps, and only if the page is drawn (not on a save that redirects).
                self.previews = SimpleLazyObject(lambda: preview_steps(
                    campaign=obj, steps=list(SequenceStep.objects.filter(campaign=obj)), lead=lead))
        formset = super().get_formset(request, obj, **kwargs)

        class StepForm(formset.form):  # type: ignore[name-defined]  # the admin's form class, made for this request
            def hand_clean_DELETE(self):
                # The admin would list every email of a step ticked for deletion (reading them one by one); the
                # formset refuses it in one sentence instead (SequenceStepFormSet.clean, from cam.sequences).
                return

        formset.form = StepForm
        return formset

    @admin.display(description="Sent")
    def sent(self, obj: SequenceStep) -> int:
        return getattr(obj, "_sent", 0)

    @admin.display(description="Full preview")
    def preview_link(self, obj: SequenceStep) -> str:
        if not obj.pk:
            return "—"
        url = reverse("admin:cam_sequencestep_preview", args=[obj.pk])
        if self.preview_lead is not None:
            url = f"{url}?lead={self.preview_lead.pk}"
        return format_html('<a href="{}" class="cam-link">Open with the HTML part</a>', url)

    @admin.display(description="Preview")
    def preview(self, obj: SequenceStep) -> str:
        if not obj.pk:
            return "Save the step to preview it."
        if self.preview_lead is None:
            return "The campaign has no leads yet: add or import some to preview its steps."
        rendered = self.previews.get(obj.pk) if self.previews is not None else None
        if rendered is None:
            return "Save the step to preview it."
        problem = str(rendered) if isinstance(rendered, TemplateProblem) else ""
        return render_to_string("admin/cam/campaign_step_preview.html", {
            "lead": self.preview_lead, "rendered": None if problem else rendered, "problem": problem})


class LeadSourceInline(SecretSettingsInlineMixin, TabularInline):
    model = LeadSource
    extra = 0
    tab = True
    fields = ["name", "kind", "config", "enabled", "last_harvest_at", "last_error"]
    readonly_fields = ["last_harvest_at", "last_error"]


class CampaignRuleInlineForm(forms.ModelForm):
    """A rule as one row of the Rules tab: under the column "Action", the action's name is enough."""

    ACTIONS = {CampaignRule.Action.PAUSE: "Pause", CampaignRule.Action.DEGRADE: "Mark degraded"}

    class Meta:
        model = CampaignRule
        fields = ["metric", "scope", "comparison", "threshold", "window", "min_sample", "action", "enabled"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["action"].choices = list(self.ACTIONS.items())  # type: ignore[attr-defined]  # a ChoiceField


class CampaignRuleInline(TabularInline):
    model = CampaignRule
    form = CampaignRuleInlineForm
    extra = 0
    tab = True
    verbose_name_plural = "Rules"
    # The rule's own sentence ("… is above 5 % → pause the campaign") above each row says what the row
    # already shows; without it the table fits its box.
    hide_title = True
    fields = ["metric", "scope", "comparison", "threshold", "window", "min_sample", "action", "enabled"]


# The campaign page's tabs, in the theme's tab bar (settings.UNFOLD["TABS"]): each names the part of the
# page it shows (the fields, an inline by its prefix, or a panel of campaign_tabs.html by its id).
SETTINGS_TAB, PERFORMANCE_TAB, DIAGNOSE_TAB = "general", "performance", "diagnose"


def _on_campaign_page(request) -> bool:
    match = getattr(request, "resolver_match", None)
    return match is not None and match.url_name == "cam_campaign_change"


def _may_see_leads(request) -> bool:
    return _on_campaign_page(request) and may_preview(request, admin.site)


def campaign_tabs(request) -> list[dict[str, Any]]:
    """The tab bar of a campaign's page (its form, new or existing; not its history or deletion). Rules,
    Performance and Diagnose are for an existing campaign (it gets its rules when created); Diagnose names
    leads, so it needs the permission to view them."""
    match = getattr(request, "resolver_match", None)
    if match is None or match.url_name not in ("cam_campaign_change", "cam_campaign_add"):
        return []
    tabs = [("Settings", SETTINGS_TAB, None), ("Sequence", "steps", None), ("Lead sources", "sources", None),
            ("Rules", "rules", _on_campaign_page), ("Performance", PERFORMANCE_TAB, _on_campaign_page),
            ("Diagnose", DIAGNOSE_TAB, _may_see_leads)]
    return [{"models": [{"name": "cam.campaign", "detail": True}],
             "items": [{"title": title, "link": "", "inline": inline, "permission": permission}
                       for title, inline, permission in tabs]}]


@admin.register(Campaign)
class CampaignAdmin(LongListMixin, ModelAdmin):
    form = CampaignForm
    list_display = ["name_cell", "status_label", "reason_cell", "lead_count", "in_sequence_count", "sent", "replies",
                    "positive_rate", "bounce_rate", "step_count"]
    list_filter = ["status"]
    search_fields = ["name", "description"]
    readonly_fields = ["status_label", "status_reason", "status_changed_at", "created_at", "updated_at"]
    filter_horizontal = ["mailboxes"]
    status_label = label_column("status", labels.CAMPAIGN)
    inlines = [SequenceStepInline, LeadSourceInline, CampaignRuleInline]
    actions = ["pause", "resume", "activate", "run_harvest", "run_score", "run_qualify"]
    actions_detail = ["detail_activate", "detail_resume", "detail_pause"]
    change_form_after_template = "admin/cam/campaign_tabs.html"
    # Outside the form: picking a lead to preview the steps for is not an edit of the campaign.
    change_form_outer_before_template = "admin/cam/campaign_preview_picker.html"
    # Picking another lead for the step previews reloads the page: the theme asks before edits are lost.
    warn_unsaved_form = True
    # The *Settings* tab: what the campaign is, then its settings in sub-tabs.
    fieldsets = [
        (None, {"fields": ["name", "description", ("status_label", "status_changed_at"), "status_reason"]}),
        ("Ideal customer", {"classes": ["tab"], "fields": [
            "icp_industries", "icp_title_keywords", "icp_countries",
            ("icp_company_size_min", "icp_company_size_max"),
            ("weight_industry", "weight_title", "weight_country", "weight_company_size"),
            ("penalty_free_mail", "penalty_role_account"), "min_score",
        ]}),
        ("Send window and cap", {"classes": ["tab"], "fields": [
            "send_days", ("send_start_hour", "send_end_hour"), "timezone", "daily_cap"]}),
        ("Mailboxes", {"classes": ["tab"], "fields": ["mailboxes"]}),
        ("Replies", {"classes": ["tab"], "fields": [
            ("no_reply_days", "no_reply_outcome"), ("out_of_office_days", "soft_bounce_limit"),
            "stop_company_on_reply"]}),
        ("Guard rails", {"classes": ["tab"], "fields": [("max_hard_bounce_rate", "max_complaint_rate")]}),
        ("Record", {"classes": ["tab"], "fields": [("created_at", "updated_at")]}),
    ]

    class Media:
        css = {"all": ["cam/admin/dashboard.css", "cam/admin/campaign.css"]}  # the KPI cards and chart of Performance
        js = ["cam/admin/preview.js"]

    def get_inlines(self, request, obj):
        # Rules are edited once the campaign exists: it is created with the defaults (from its guard rails).
        return self.inlines if obj is not None else [i for i in self.inlines if i is not CampaignRuleInline]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["step_preview"] = next((formset.opts for formset in context.get("inline_admin_formsets", ())
                                        if isinstance(formset.opts, SequenceStepInline)), None)
        if obj is not None and obj.pk:
            # Read only when the page is drawn, each once: the panels of campaign_tabs.html.
            figures = SimpleLazyObject(lambda: step_performance(obj))
            context.update(
                status_label_html=labels.label(obj.status, obj.get_status_display(), labels.CAMPAIGN),
                step_figures=figures, step_total=SimpleLazyObject(lambda: step_totals(figures)),
                campaign_figures=SimpleLazyObject(lambda: campaign_figures(obj)),
                diagnosis=SimpleLazyObject(lambda: campaign_diagnosis(obj)) if may_preview(request, self.admin_site)
                else None)
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def save_model(self, request, obj, form, change):
        if change:
            # Only the fields the form changed: writing back the status read when the page was loaded
            # would undo a pause or resume made meanwhile.
            campaign_save_settings(obj, form.changed_data)
            return
        super().save_model(request, obj, form, change)
        campaign_rules_ensure_defaults(obj)

    def save_formset(self, request, form, formset, change):
        super().save_formset(request, form, formset, change)
        record_inline_changes(request, formset)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            _lead_count=_count_of(Lead),
            _in_sequence_count=_count_of(Lead, status=Lead.Status.IN_SEQUENCE),
            _step_count=_count_of(SequenceStep),
            _sent=_all_time("sent", IntegerField()),
            _replies=_all_time("replies", IntegerField()),
            _positive_rate=_all_time("positive_rate", FloatField()),
            _bounce_rate=_all_time("bounced_hard_rate", FloatField()),
            _counted_at=_counted_at(),
        )

    name_cell = text_column("Name", lambda campaign: campaign.name, width="l", ordering="name")
    reason_cell = text_column("Status reason", lambda campaign: campaign.status_reason, width="fill",
                              ordering="status_reason")

    def _figure(self, obj: Campaign, text: str) -> str:
        counted_at = obj._counted_at  # type: ignore[attr-defined]  # annotated by get_queryset
        if counted_at is None:
            return format_html('<span title="{}">—</span>', "Not counted yet: the worker's metrics step counts "
                                                             "every campaign each cycle.")
        return format_html('<span title="{}">{}</span>', f"All time, as counted {short_datetime(counted_at)}", text)

    @admin.display(description="Sent", ordering=_uncounted_last("_sent"))
    def sent(self, obj: Campaign) -> str:
        return self._figure(obj, f"{obj._sent or 0:,}")  # type: ignore[attr-defined]  # annotated by get_queryset

    @admin.display(description="Replies", ordering=_uncounted_last("_replies"))
    def replies(self, obj: Campaign) -> str:
        return self._figure(obj, f"{obj._replies or 0:,}")  # type: ignore[attr-defined]  # annotated by get_queryset

    @admin.display(description="Positive", ordering=_uncounted_last("_positive_rate"))
    def positive_rate(self, obj: Campaign) -> str:
        rate = obj._positive_rate  # type: ignore[attr-defined]  # annotated by get_queryset
        return self._figure(obj, "—" if rate is None else f"{percent_text(rate)} %")

    @admin.display(description="Bounced", ordering=_uncounted_last("_bounce_rate"))
    def bounce_rate(self, obj: Campaign) -> str:
        rate = obj._bounce_rate  # type: ignore[attr-defined]  # annotated by get_queryset
        return self._figure(obj, "—" if rate is None else f"{percent_text(rate)} %")

    @admin.display(description="Leads", ordering="_lead_count")
    def lead_count(self, obj: Campaign) -> int:
        return obj._lead_count  # type: ignore[attr-defined]  # annotated by get_queryset

    @admin.display(description="In sequence", ordering="_in_sequence_count")
    def in_sequence_count(self, obj: Campaign) -> int:
        return obj._in_sequence_count  # type: ignore[attr-defined]  # annotated by get_queryset

    @admin.display(description="Steps", ordering="_step_count")
    def step_count(self, obj: Campaign) -> int:
        return obj._step_count  # type: ignore[attr-defined]  # annotated by get_queryset

    def _report(self, request, queryset, changed: int, verb: str, allowed) -> None:
        skipped = queryset.count() - changed
        self.message_user(request, f"{changed} campaign(s) {verb}.", messages.SUCCESS)
        if skipped:
            names = ", ".join(label for label in (Campaign.Status(s).label for s in allowed))
            self.message_user(request, f"{skipped} left as they were: only {names} campaigns can be {verb}.",
                              messages.WARNING)

    def has_run_jobs_permission(self, request) -> bool:
        # Running a job records a job execution: the same permission the API asks for a job run.
        return request.user.has_perm("cam.add_jobexecution")

    @admin.action(description="Pause selected campaigns", permissions=["change"])
    def pause(self, request, queryset):
        changed = campaigns_pause(campaign_ids=queryset.values_list("pk", flat=True),
                                  reason=f"Paused by {_actor(request)}")
        self._report(request, queryset, changed, "paused", ("ACTIVE", "DEGRADED"))

    @admin.action(description="Resume selected campaigns", permissions=["change"])
    def resume(self, request, queryset):
        changed = campaigns_resume(campaign_ids=queryset.values_list("pk", flat=True),
                                   reason=f"Resumed by {_actor(request)}")
        self._report(request, queryset, changed, "resumed", ("PAUSED", "DEGRADED"))

    @admin.action(description="Activate selected draft campaigns", permissions=["change"])
    def activate(self, request, queryset):
        changed = campaigns_activate(campaign_ids=queryset.values_list("pk", flat=True),
                                     reason=f"Activated by {_actor(request)}")
        self._report(request, queryset, changed, "activated", ("DRAFT",))

    # -- the buttons on a campaign's page: the same services, asked for once more in a dialog --------------

    def get_actions_detail(self, request, object_id):
        """Only the buttons that apply to the campaign's status now (and that the user may use)."""
        allowed = super().get_actions_detail(request, object_id)
        status = Campaign.objects.filter(pk=object_id).values_list("status", flat=True).first()
        applies = {"detail_pause": PAUSABLE, "detail_resume": RESUMABLE, "detail_activate": ACTIVATABLE}
        return [button for button in allowed
                if status in applies[button.action_name.removeprefix("cam_campaign_")]]

    def _status_changed(self, request, object_id: str, *, service, verb: str, allowed) -> HttpResponse:
        campaign = get_object_or_404(Campaign, pk=object_id)
        changed = service(campaign_ids=[campaign.pk], reason=f"{verb.capitalize()} by {_actor(request)}")
        if changed:
            self.message_user(request, f"Campaign “{campaign.name}” {verb}.", messages.SUCCESS)
        else:
            names = " or ".join(Campaign.Status(status).label.lower() for status in allowed)
            self.message_user(request, f"Campaign “{campaign.name}” is {campaign.get_status_display().lower()}: only "
                                       f"{names} campaigns can be {verb}; it was left as it is.", messages.WARNING)
        if request.headers.get("HX-Request"):
            # The dialog posted through htmx from the campaign's page: the browser loads that page again, with
            # the message, on the tab it was on (its address keeps the tab's name).
            return HttpResponse(headers={"HX-Refresh": "true"})
        return HttpResponseRedirect(reverse("admin:cam_campaign_change", args=[campaign.pk]))

    @action(description="Pause", url_path="pause", permissions=["change"], icon="pause_circle",
            variant=ActionVariant.WARNING,
            dialog={"title": "Pause this campaign?", "form_class": None, "form_submit_text": "Pause",
                    "description": "It sends nothing until it is resumed, and the emails already planned wait "
                                   "too. Replies are still read and alerted."})
    def detail_pause(self, request, form, object_id):
        return self._status_changed(request, object_id, service=campaigns_pause, verb="paused", allowed=PAUSABLE)

    @action(description="Resume", url_path="resume", permissions=["change"], icon="play_circle",
            variant=ActionVariant.SUCCESS,
            dialog={"title": "Resume this campaign?", "form_class": None, "form_submit_text": "Resume",
                    "description": "It sends again from the next worker cycle, within its send window and caps. "
                                   "A rule that paused it judges only the emails sent from now on."})
    def detail_resume(self, request, form, object_id):
        return self._status_changed(request, object_id, service=campaigns_resume, verb="resumed", allowed=RESUMABLE)

    @action(description="Activate", url_path="activate", permissions=["change"], icon="rocket_launch",
            variant=ActionVariant.PRIMARY,
            dialog={"title": "Activate this campaign?", "form_class": None, "form_submit_text": "Activate",
                    "description": "Its enrolled leads get their first email from the next worker cycle, within "
                                   "its send window and caps."})
    def detail_activate(self, request, form, object_id):
        return self._status_changed(request, object_id, service=campaigns_activate, verb="activated",
                                    allowed=ACTIVATABLE)

    def _queue(self, request, queryset, job: str) -> None:
        """Queue ``job`` for each selected campaign through ``job_request``, as the API would queue it."""
        queued, refusals = 0, []
        for campaign in queryset.order_by("pk"):
            try:
                outcome = job_request(job, where="queue", trigger=JobExecution.Trigger.ADMIN, campaign=campaign)
            except (UnknownJob, JobRefused) as exc:
                # The job's rules are the same for every campaign: one message says it for all.
                self.message_user(request, str(exc), messages.ERROR)
                return
            if outcome.queued:
                queued += 1
            elif outcome.busy:
                refusals.append(outcome.busy_message)
            else:
                assert outcome.result is not None  # neither queued nor busy: it ran
                refusals.append(f"Campaign {campaign.pk}: {outcome.result.reason}")
        if queued:
            self.message_user(request, f"Queued {job} for {queued} campaign(s). Its results appear under Job "
                                       f"executions as soon as the task queue has run it.", messages.SUCCESS)
        for refusal in refusals:
            self.message_user(request, refusal, messages.WARNING)

    @admin.action(description="Run now: harvest lead sources", permissions=["run_jobs"])
    def run_harvest(self, request, queryset):
        self._queue(request, queryset, "harvest")

    @admin.action(description="Run now: score leads", permissions=["run_jobs"])
    def run_score(self, request, queryset):
        self._queue(request, queryset, "score")

    @admin.action(description="Run now: qualify and enrol leads", permissions=["run_jobs"])
    def run_qualify(self, request, queryset):
        self._queue(request, queryset, "qualify")


@admin.register(SequenceStep)
class SequenceStepAdmin(ModelAdmin):
    """The steps of every campaign. Deleting one here follows the campaign page's rules (``cam.sequences``):
    a step that has emails is kept (the confirmation page says so and offers no button), and the later steps
    move up a place."""

    form = SequenceStepAdminForm
    list_display = ["campaign", "position", "subject_template", "delay_days", "delay_hours", "is_enabled", "sent"]
    list_filter = ["campaign", "is_enabled"]
    list_select_related = ["campaign"]
    search_fields = ["subject_template", "body_template", "campaign__name"]
    autocomplete_fields = ["campaign"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["fields"] = ["campaign", *SequenceStepForm.Meta.fields]
        return super().get_form(request, obj, change=change, **kwargs)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and "is_enabled" in form.changed_data and not obj.is_enabled:
            sequence_step_cancel_queued(obj)  # its emails still waiting, as on the campaign page

    def get_queryset(self, request):
        return _sent_counts(super().get_queryset(request))

    @admin.display(description="Sent", ordering="_sent")
    def sent(self, obj: SequenceStep) -> int:
        return obj._sent  # type: ignore[attr-defined]  # annotated by get_queryset

    def get_deleted_objects(self, objs, request):
        """Steps the rules keep are “protected”, which stops both the delete page and the bulk action, each
        with its sentence in place of Django's list of every email that points at the step."""
        problems = sequence_steps_delete_problems(list(objs))
        if problems:
            return [], {}, set(), problems
        return super().get_deleted_objects(objs, request)

    def delete_model(self, request, obj):
        sequence_step_delete(step=obj)

    def delete_queryset(self, request, queryset):
        sequence_steps_delete(steps=list(queryset))

    def get_urls(self):
        return [path("<int:step_id>/preview/", self.admin_site.admin_view(self.preview_view),
                     name="cam_sequencestep_preview"), *super().get_urls()]

    def preview_view(self, request, step_id: int):
        """The step rendered for a chosen lead of its campaign, exactly as it would be sent."""
        step = get_object_or_404(SequenceStep.objects.select_related("campaign"), pk=step_id)
        if not (self.has_view_permission(request, step) and may_preview(request, self.admin_site)):
            raise PermissionDenied
        leads = Lead.objects.filter(campaign=step.campaign).order_by("email")
        lead = leads.filter(pk=request.GET.get("lead")).first() if request.GET.get("lead", "").isdigit() else None
        lead = lead or leads.first()
        rendered, problem = None, ""
        if lead is not None:
            try:
                rendered = preview_step(step=step, lead=lead)
            except TemplateProblem as exc:
                problem = str(exc)
        context = {**self.admin_site.each_context(request), "title": f"Preview: {step}", "step": step,
                   "lead": lead, "leads": leads[:500], "rendered": rendered, "problem": problem,
                   "opts": self.model._meta}
        return TemplateResponse(request, "admin/cam/sequencestep/preview.html", context)


@admin.register(LeadSource)
class LeadSourceAdmin(SecretSettingsAdminMixin, ModelAdmin):
    list_display = ["name", "campaign", "kind", "enabled", "last_harvest_at", "last_error"]
    list_filter = ["kind", "enabled", "campaign"]
    list_select_related = ["campaign"]
    search_fields = ["name", "campaign__name"]
    autocomplete_fields = ["campaign"]
    readonly_fields = ["last_harvest_at", "last_harvest_summary", "last_harvest_counts_raw", "last_error", "created_at",
                       "updated_at"]
    exclude = ["last_harvest_counts"]

    @admin.display(description="Last harvest")
    def last_harvest_summary(self, obj: LeadSource) -> str:
        return counts_text(obj.last_harvest_counts) or "—"

    last_harvest_counts_raw = raw_field("last_harvest_counts", "Last harvest counts")

