"""Leads and suppressions."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils.functional import SimpleLazyObject
from django.utils.html import format_html, format_html_join
from import_export import resources
from import_export.admin import ExportMixin, ImportExportMixin
from unfold.admin import ModelAdmin
from unfold.contrib.filters.admin import ChoicesDropdownFilter, RelatedDropdownFilter
from unfold.contrib.import_export.forms import ExportForm, SelectableFieldsExportForm

from cam.admin import labels
from cam.admin.base import AuditAdmin, LongListMixin, TimezoneSelect
from cam.admin.columns import status_column, text_column, when_column
from cam.admin.exports import SafeCsv
from cam.admin.filters import MomentRangeFilter
from cam.admin.lead_import import (
    LeadConfirmImportForm,
    LeadCsvFormat,
    LeadExportResource,
    LeadImportForm,
    LeadImportResource,
    LeadImportResult,
)
from cam.admin.lead_status import LeadStatusActions
from cam.admin.lead_timeline import timeline_entries
from cam.admin.readable import raw_field, raw_json, score_breakdown_html
from cam.leads import EMAIL_FIXED_MESSAGE, EmailFixed, lead_email_fixed, lead_save_profile
from cam.models import HarvestRejection, Lead, LeadEvent, Suppression
from cam.sources.csv_rows import CsvFileError
from cam.suppressions import suppression_normalize, suppressions_listing

# Why a due lead was not sent, in the list's few words (the whole reason on hover and on the lead's page).
BLOCKED_SHORT: dict[str, str] = {
    Lead.BlockedReason.OUTSIDE_WINDOW: "Outside window",
    Lead.BlockedReason.MAILBOX_CAP: "Mailbox cap",
    Lead.BlockedReason.MAILBOX_GAP: "Mailbox gap",
    Lead.BlockedReason.CAMPAIGN_CAP: "Campaign cap",
    Lead.BlockedReason.SUPPRESSED: "Suppressed",
    Lead.BlockedReason.CAMPAIGN_PAUSED: "Campaign off",
    Lead.BlockedReason.NO_MAILBOX: "No mailbox",
    Lead.BlockedReason.NO_STEP: "No step",
    Lead.BlockedReason.TEMPLATE_ERROR: "Template error",
    Lead.BlockedReason.SEND_FAILED: "Send failed",
    Lead.BlockedReason.SEND_UNKNOWN: "Send unknown",
    Lead.BlockedReason.CANCELLED: "Cancelled",
}

# Lines listed in the message after an import; the preview page lists more (``PROBLEMS_KEPT`` of each kind).
PROBLEMS_LISTED = 20


class ScoreBandFilter(admin.SimpleListFilter):
    title = "score"
    parameter_name = "score_band"
    bands: dict[str | None, tuple[str, Q]] = {
        "unscored": ("Not scored", Q(score__isnull=True)),
        "low": ("Low (0–39)", Q(score__lt=40)),
        "medium": ("Medium (40–69)", Q(score__gte=40, score__lt=70)),
        "high": ("High (70–100)", Q(score__gte=70)),
    }

    def lookups(self, request, model_admin):
        return [(key, label) for key, (label, _) in self.bands.items()]

    def queryset(self, request, queryset):
        band = self.bands.get(self.value())
        return queryset.filter(band[1]) if band else queryset


# Owned by the status services (cam.leads): shown on the lead's page, never edited there.
STATUS_FIELDS = ["status_label", "status_reason", "current_step", "next_send_at", "blocked_reason", "paused_until"]


@admin.register(Lead)
class LeadAdmin(LongListMixin, ImportExportMixin, LeadStatusActions):
    # What a sales lead works from, on one line each and within the window: a long address, name, company or
    # campaign is cut (whole on hover); the job title and the record's dates are on the lead's page.
    list_display = ["email_cell", "name_cell", "company_cell", "campaign_cell", "status_label", "score",
                    "blocked_cell", "next_send_cell"]
    list_filter = [("campaign", RelatedDropdownFilter), ("status", ChoicesDropdownFilter), ScoreBandFilter,
                   ("blocked_reason", ChoicesDropdownFilter), "is_role_account", "is_free_mail",
                   ("created_at", MomentRangeFilter)]
    list_filter_submit = True  # the date range is typed, then applied
    list_select_related = ["campaign"]
    list_defer = ("raw_data", "score_breakdown", "status_reason", "campaign__description")
    search_fields = ["email", "first_name", "last_name", "company", "title"]
    autocomplete_fields = ["campaign", "source", "mailbox"]
    readonly_fields = ["email_domain", "score", "score_table", "scored_at", *STATUS_FIELDS, "status_changed_at",
                       "harvested_at", "raw_data_raw", "last_contacted_at", "replied_at", "created_at", "updated_at"]

    email_cell = text_column("Email", lambda lead: lead.email, width="m", ordering="email")
    name_cell = text_column("Name", lambda lead: lead.full_name, width="s", ordering="last_name")
    company_cell = text_column("Company", lambda lead: lead.company, width="s", ordering="company")
    campaign_cell = text_column("Campaign", lambda lead: lead.campaign.name, width="s", ordering="campaign__name")
    status_label = status_column("status", labels.LEAD)

    @admin.display(description="Blocked", ordering="blocked_reason")
    def blocked_cell(self, lead: Lead) -> str:
        if not lead.blocked_reason:
            return "—"
        return format_html('<span class="cam-cut cam-cut-s" title="{}">{}</span>', lead.get_blocked_reason_display(),
                           BLOCKED_SHORT.get(lead.blocked_reason, lead.get_blocked_reason_display()))

    next_send_cell = when_column("next_send_at", "Next send")
    # The *Timeline* tab (cam.admin.lead_timeline): the lead's story, beside its fields.
    change_form_after_template = "admin/cam/lead_timeline.html"
    fieldsets = [
        # Where the lead stands first, above the fold: what staff open a lead to see.
        (None, {"fields": [("status_label", "status_changed_at"), "status_reason", "campaign", "email",
                           "email_domain", ("first_name", "last_name"), "company", "title",
                           "industry", "country", "company_size", "website", "timezone",
                           ("is_role_account", "is_free_mail")]}),
        ("Score", {"fields": [("score", "scored_at"), "score_table"]}),
        ("Sequence", {"fields": [("current_step", "next_send_at"), "blocked_reason", "paused_until", "mailbox",
                                 ("last_contacted_at", "replied_at")]}),
        ("Provenance", {"fields": ["source", "harvested_at", "raw_data_raw"], "classes": ["collapse"]}),
        ("Record", {"fields": [("created_at", "updated_at")], "classes": ["collapse"]}),
    ]

    def _email_fixed(self, obj: Lead | None) -> bool:
        if obj is None or obj.pk is None:
            return False
        if not hasattr(obj, "_email_fixed"):
            obj._email_fixed = lead_email_fixed(lead=obj)  # type: ignore[attr-defined]  # asked once per page
        return obj._email_fixed  # type: ignore[attr-defined]  # set just above

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if not self._email_fixed(obj):
            return fieldsets
        # Mail went to the address: it is shown, with why it cannot change, instead of being edited.
        return [(name, {**options, "fields": ["email_fixed" if field == "email" else field
                                              for field in options["fields"]]})
                for name, options in fieldsets]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "email_fixed"] if self._email_fixed(obj) else fields

    @admin.display(description="Email")
    def email_fixed(self, obj: Lead) -> str:
        return format_html('{}<div class="help">{}</div>', obj.email, EMAIL_FIXED_MESSAGE)

    def save_model(self, request, obj, form, change):
        if not change:
            super().save_model(request, obj, form, change)
            return
        # Only the fields the form changed: writing back the status read when the page was loaded would undo
        # what the worker or a reply did meanwhile.
        posted = request.POST.get("email", "").strip().lower()
        if posted and posted != obj.email and self._email_fixed(obj):
            # The page was opened before the first email went out; the address is kept, and staff are told.
            self.message_user(request, f"The address stays {obj.email}. {EMAIL_FIXED_MESSAGE}", messages.WARNING)
        try:
            lead_save_profile(lead=obj, fields=list(form.changed_data))
        except EmailFixed as exc:  # the first email went out between the form's check and now: nothing is saved
            self.message_user(request, str(exc), messages.ERROR)

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "timezone":
            kwargs["widget"] = TimezoneSelect(blank=True)
        elif db_field.name == "website":
            kwargs["assume_scheme"] = "https"
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk:
            # Read only when the page draws the tab: a lead's story is not needed to save its fields.
            context["timeline"] = SimpleLazyObject(lambda: timeline_entries(obj))
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    @admin.display(description="Score breakdown")
    def score_table(self, obj: Lead) -> str:
        if not obj.score_breakdown:
            return score_breakdown_html(obj.score_breakdown)
        return format_html("{}{}", score_breakdown_html(obj.score_breakdown), raw_json(obj.score_breakdown))

    raw_data_raw = raw_field("raw_data", "Raw data")

    # Import and export: the rules live in cam.admin.lead_import; these hooks only wire them in.
    import_form_class = LeadImportForm
    export_form_class = SelectableFieldsExportForm
    confirm_form_class = LeadConfirmImportForm
    import_template_name = "admin/cam/lead/import.html"
    import_formats = [LeadCsvFormat]
    export_formats = [SafeCsv]
    # One format and one set of columns: the Export button downloads the filtered list at once.
    skip_export_form = True
    # With a byte-order mark, Excel opens the file as UTF-8 instead of garbling accented letters.
    to_encoding = "utf-8-sig"

    def get_import_resource_classes(self, request):
        return [LeadImportResource]

    def get_export_resource_classes(self, request):
        return [LeadExportResource]

    def get_import_resource_kwargs(self, request, **kwargs):
        # The same form class is bound at the preview and at the confirmation (as a hidden field).
        form = kwargs.get("form")
        return {"campaign": getattr(form, "cleaned_data", {}).get("campaign")}

    def get_confirm_form_initial(self, request, import_form):
        initial = super().get_confirm_form_initial(request, import_form)
        if import_form is not None:
            initial["campaign"] = import_form.cleaned_data["campaign"].pk
        return initial

    def add_data_read_fail_error_to_form(self, form, e):
        if isinstance(e, CsvFileError):
            form.add_error("import_file", str(e))
        else:
            super().add_data_read_fail_error_to_form(form, e)

    def add_success_message(self, result: LeadImportResult, request) -> None:
        if result.has_errors():
            # The import was rolled back (a lead added meanwhile, a database error): say so, not "imported".
            failures = [error.error for error in result.base_errors]
            failures += [error.error for _, errors in result.row_errors() for error in errors]
            messages.error(request, f"Nothing was imported: {'; '.join(map(str, failures))}")
            return
        messages.success(request, f"Imported into “{result.campaign}”: {import_summary(result)}.")
        if result.encoding_note:
            messages.info(request, result.encoding_note)
        if result.problems:
            listed = result.problems[:PROBLEMS_LISTED]
            more = len(result.problems) - len(listed) + result.problems_left_out
            messages.warning(request, format_html(
                "Lines not imported:<ul>{}</ul>{}",
                format_html_join("", "<li>{}</li>", ((str(problem),) for problem in listed)),
                f"… and {more} more." if more else "",
            ))


def import_summary(result: LeadImportResult) -> str:
    """"2 created, 1 updated, 1 unchanged, 1 suppressed, 3 rejected" — what an import did, or would do."""
    return (f"{result.created} created, {result.updated} updated, {result.unchanged} unchanged (duplicate), "
            f"{result.suppressed} suppressed, {result.rejected} rejected")


class SuppressionForm(forms.ModelForm):
    """Spells the address or domain as leads are spelled (``cam.suppressions.suppression_normalize``:
    Unicode or punycode, any case, all one entry) and refuses one already listed in another spelling."""

    email = forms.CharField(required=False, max_length=254, help_text="One address; or leave empty and give a domain.")
    domain = forms.CharField(required=False, max_length=253, help_text="Suppress every address at this domain.")

    class Meta:
        model = Suppression
        fields = ["email", "domain", "reason", "source", "note"]

    def clean(self):
        data: dict[str, Any] = super().clean()  # type: ignore[assignment]  # a ModelForm's is never None
        email, domain = suppression_normalize(email=data.get("email", ""), domain=data.get("domain", ""))
        data["email"], data["domain"] = email, domain
        existing = suppressions_listing(email=email, domain=domain).exclude(pk=self.instance.pk).first()
        if existing is not None:
            field = "email" if email else "domain"
            raise ValidationError({field: f"Already on the suppression list as {existing}."})
        return data

    def _get_validation_exclusions(self):
        # The model's validators know ASCII addresses only; clean() above has checked both fields.
        return {*super()._get_validation_exclusions(), "email", "domain"}  # type: ignore[misc]  # Django's, not in its stubs


class SuppressionExportResource(resources.ModelResource):
    class Meta:
        model = Suppression
        fields = ("email", "domain", "reason", "source", "note", "created_at")
        export_order = fields


@admin.register(Suppression)
class SuppressionAdmin(LongListMixin, ExportMixin, ModelAdmin):
    form = SuppressionForm
    # The Export button downloads the filtered list (spreadsheet-safe, see cam.admin.exports).
    resource_classes = [SuppressionExportResource]
    export_form_class = ExportForm
    export_formats = [SafeCsv]
    skip_export_form = True
    to_encoding = "utf-8-sig"
    list_display = ["__str__", "reason", "source_cell", "created_cell"]
    list_filter = ["reason", ("created_at", MomentRangeFilter)]
    list_filter_submit = True  # the date range is typed, then applied
    search_fields = ["email", "domain", "source", "note"]
    fields = ["email", "domain", "reason", "source", "note", "created_at"]
    readonly_fields = ["created_at"]

    source_cell = text_column("Source", lambda suppression: suppression.source, width="fill", ordering="source")
    created_cell = when_column("created_at", "Added")


@admin.register(HarvestRejection)
class HarvestRejectionAdmin(LongListMixin, AuditAdmin):
    list_display = ["campaign_cell", "source", "line", "email_cell", "reason_cell", "created_cell"]
    list_display_links = ["reason_cell"]
    list_filter = [("campaign", RelatedDropdownFilter), "source", ("created_at", MomentRangeFilter)]
    list_filter_submit = True  # the date range is typed, then applied
    list_select_related = ["campaign", "source"]
    list_defer = ("raw_data", "campaign__description", "source__config", "source__last_harvest_counts")
    search_fields = ["email", "reason"]
    exclude = ["raw_data"]
    readonly_fields = ["raw_data_raw"]

    raw_data_raw = raw_field("raw_data", "The record as the source gave it")
    campaign_cell = text_column("Campaign", lambda rejection: rejection.campaign.name, width="s",
                                ordering="campaign__name")
    email_cell = text_column("Email", lambda rejection: rejection.email, width="m", ordering="email")
    reason_cell = text_column("Reason", lambda rejection: rejection.reason, width="fill")
    created_cell = when_column("created_at", "When")


@admin.register(LeadEvent)
class LeadEventAdmin(LongListMixin, AuditAdmin):
    list_display = ["lead_cell", "from_label", "to_label", "actor_cell", "reason_cell", "created_cell"]
    list_display_links = ["lead_cell"]
    list_filter = [("to_status", ChoicesDropdownFilter), ("from_status", ChoicesDropdownFilter),
                   ("created_at", MomentRangeFilter)]
    list_filter_submit = True  # the date range is typed, then applied
    list_select_related = ["lead"]
    list_defer = ("lead__raw_data", "lead__score_breakdown", "lead__status_reason")
    search_fields = ["lead__email", "actor", "reason"]

    lead_cell = text_column("Lead", lambda event: event.lead.email, width="m", ordering="lead__email")
    from_label = status_column("from_status", labels.LEAD, "From")
    to_label = status_column("to_status", labels.LEAD, "To")
    actor_cell = text_column("By", lambda event: event.actor, width="s", ordering="actor")
    reason_cell = text_column("Why", lambda event: event.reason, width="fill")
    created_cell = when_column("created_at", "When")
