"""Campaigns, their sequence steps and lead sources."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from unfold.admin import ModelAdmin, StackedInline, TabularInline

from cam.admin import labels
from cam.admin.base import CommaSeparatedListField, TimezoneSelect
from cam.admin.labels import label_column
from cam.admin.readable import raw_field
from cam.admin.secret_settings import SecretSettingsAdminMixin, SecretSettingsInlineMixin, record_inline_changes
from cam.campaigns import (
    FirstStepWithoutSubject,
    campaign_rules_ensure_defaults,
    campaign_save_settings,
    campaigns_activate,
    campaigns_pause,
    campaigns_resume,
    sequence_check_first_step,
    sequence_step_check,
)
from cam.jobs.registry import UnknownJob
from cam.jobs.request import JobRefused, job_request
from cam.jobs.summary import counts_text
from cam.leads import staff_actor
from cam.models import Campaign, CampaignRule, JobExecution, Lead, LeadSource, OutboundEmail, SequenceStep
from cam.models.campaigns import first_step
from cam.models.fields import WEEKDAYS
from cam.outreach.preview import preview_step
from cam.outreach.rendering import TemplateProblem, check_templates


def _actor(request) -> str:
    return staff_actor(request.user)


def _count_of(model, **filters) -> Coalesce:
    """A per-campaign count as a subquery: one query for the whole changelist, no row fan-out."""
    counted = (model.objects.filter(campaign=OuterRef("pk"), **filters).order_by()
               .values("campaign").annotate(n=Count("pk")).values("n"))
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


class CampaignForm(forms.ModelForm):
    """The campaign's settings. The rules tying one field to another (the company size range, the send
    window) are the model's (``Campaign.clean()``): the form's full_clean applies them, as the API does."""

    icp_industries = CommaSeparatedListField(required=False, label="Industries",
                                             help_text="Separated by commas, e.g. software, logistics.")
    icp_title_keywords = CommaSeparatedListField(required=False, label="Title keywords",
                                                 help_text="Separated by commas, e.g. cto, head of, founder.")
    icp_countries = CommaSeparatedListField(required=False, label="Countries",
                                            help_text="Separated by commas, e.g. DE, AT, CH.")
    send_days = forms.TypedMultipleChoiceField(
        choices=[(number, name) for number, name in enumerate(WEEKDAYS, start=1)],
        coerce=int, widget=forms.CheckboxSelectMultiple, label="Send on")

    class Meta:
        model = Campaign
        fields = "__all__"  # noqa: DJ007 - the admin's fieldsets choose what is shown
        widgets = {"timezone": TimezoneSelect()}


class SequenceStepForm(forms.ModelForm):
    """Refuses a template that does not render, with Django's message, before it reaches a lead."""

    class Meta:
        model = SequenceStep
        fields = ["position", "delay_days", "delay_hours", "subject_template", "body_template", "html_template"]

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
    """The steps as saved must leave the first (the lowest position) with a subject: the rule the API and
    the services apply (``sequence_check_first_step``), here over all the steps the page saves at once."""

    def clean(self):
        super().clean()
        if any(form.errors for form in self.forms):
            return
        kept = [form for form in self.forms if form.cleaned_data and not self._should_delete_form(form)]  # type: ignore[attr-defined]  # Django's, not in its stubs
        before = list(SequenceStep.objects.filter(campaign=self.instance)) if self.instance.pk else []
        try:
            sequence_check_first_step(before=before, after=[form.instance for form in kept])
        except ValidationError as exc:
            first = first_step(form.instance for form in kept)
            next(form for form in kept if form.instance is first).add_error(None, exc)
        except FirstStepWithoutSubject as exc:
            raise ValidationError(str(exc)) from None


def may_preview(request, admin_site) -> bool:
    """The preview shows a lead's name, address and company in the email: it needs the permission to
    view leads (or change them), as the leads' own list does, besides the one to view the step."""
    return admin_site.get_model_admin(Lead).has_view_permission(request)


class SequenceStepInline(StackedInline):
    model = SequenceStep
    form = SequenceStepForm
    formset = SequenceStepFormSet
    extra = 0
    fields = [("position", "delay_days", "delay_hours"), "subject_template", "body_template", "html_template",
              ("sent", "preview")]
    readonly_fields = ["sent", "preview"]

    def get_queryset(self, request):
        return _sent_counts(super().get_queryset(request))

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if may_preview(request, self.admin_site):
            return fields
        # No link to a page that would refuse them.
        return [tuple(name for name in field if name != "preview") if isinstance(field, tuple) else field
                for field in fields if field != "preview"]

    @admin.display(description="Sent")
    def sent(self, obj: SequenceStep) -> int:
        return getattr(obj, "_sent", 0)

    @admin.display(description="Preview")
    def preview(self, obj: SequenceStep) -> str:
        if not obj.pk:
            return "—"
        return format_html('<a href="{}">Preview for a lead</a>',
                           reverse("admin:cam_sequencestep_preview", args=[obj.pk]))


class LeadSourceInline(SecretSettingsInlineMixin, TabularInline):
    model = LeadSource
    extra = 0
    fields = ["name", "kind", "config", "enabled", "last_harvest_at", "last_error"]
    readonly_fields = ["last_harvest_at", "last_error"]


class CampaignRuleInline(TabularInline):
    model = CampaignRule
    extra = 0
    fields = ["metric", "scope", "comparison", "threshold", "window", "min_sample", "action", "enabled"]


@admin.register(Campaign)
class CampaignAdmin(ModelAdmin):
    form = CampaignForm
    list_display = ["name", "status_label", "status_reason", "lead_count", "in_sequence_count", "step_count",
                    "daily_cap", "updated_at"]
    list_filter = ["status"]
    search_fields = ["name", "description"]
    readonly_fields = ["status_label", "status_reason", "status_changed_at", "created_at", "updated_at"]
    filter_horizontal = ["mailboxes"]
    status_label = label_column("status", labels.CAMPAIGN)
    inlines = [SequenceStepInline, LeadSourceInline, CampaignRuleInline]
    actions = ["pause", "resume", "activate", "run_harvest", "run_score", "run_qualify"]
    fieldsets = [
        (None, {"fields": ["name", "description", ("status_label", "status_changed_at"), "status_reason"]}),
        ("Ideal customer", {"fields": [
            "icp_industries", "icp_title_keywords", "icp_countries",
            ("icp_company_size_min", "icp_company_size_max"),
            ("weight_industry", "weight_title", "weight_country", "weight_company_size"),
            ("penalty_free_mail", "penalty_role_account"), "min_score",
        ]}),
        ("Sending", {"fields": ["send_days", ("send_start_hour", "send_end_hour"), "timezone", "daily_cap",
                                "mailboxes"]}),
        ("Replies", {"fields": [("no_reply_days", "no_reply_outcome"), ("out_of_office_days", "soft_bounce_limit"),
                                "stop_company_on_reply"]}),
        ("Guard rails", {"fields": [("max_hard_bounce_rate", "max_complaint_rate")]}),
        ("Record", {"fields": [("created_at", "updated_at")], "classes": ["collapse"]}),
    ]

    def get_inlines(self, request, obj):
        # Rules are edited once the campaign exists: it is created with the defaults (from its guard rails).
        return self.inlines if obj is not None else [i for i in self.inlines if i is not CampaignRuleInline]

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
        )

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
    form = SequenceStepAdminForm
    list_display = ["campaign", "position", "subject_template", "delay_days", "delay_hours", "sent"]
    list_filter = ["campaign"]
    list_select_related = ["campaign"]
    search_fields = ["subject_template", "body_template", "campaign__name"]
    autocomplete_fields = ["campaign"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["fields"] = ["campaign", *SequenceStepForm.Meta.fields]
        return super().get_form(request, obj, change=change, **kwargs)

    def get_queryset(self, request):
        return _sent_counts(super().get_queryset(request))

    @admin.display(description="Sent", ordering="_sent")
    def sent(self, obj: SequenceStep) -> int:
        return obj._sent  # type: ignore[attr-defined]  # annotated by get_queryset

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

