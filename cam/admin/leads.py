"""Leads and suppressions."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils.html import format_html, format_html_join
from import_export import resources
from import_export.admin import ExportMixin, ImportExportMixin
from unfold.admin import ModelAdmin
from unfold.contrib.import_export.forms import ExportForm, SelectableFieldsExportForm

from cam.admin import labels
from cam.admin.base import AuditAdmin, TimezoneSelect
from cam.admin.exports import SafeCsv
from cam.admin.labels import label_column
from cam.admin.lead_import import (
    LeadConfirmImportForm,
    LeadCsvFormat,
    LeadExportResource,
    LeadImportForm,
    LeadImportResource,
    LeadImportResult,
)
from cam.admin.readable import raw_field, raw_json, score_breakdown_html
from cam.models import HarvestRejection, Lead, LeadEvent, Suppression
from cam.sources.csv_rows import CsvFileError
from cam.suppressions import suppression_normalize, suppressions_listing

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


@admin.register(Lead)
class LeadAdmin(ImportExportMixin, ModelAdmin):
    list_display = ["email", "full_name", "company", "title", "campaign", "status_label", "score", "blocked_reason",
                    "next_send_at", "created_at"]
    list_filter = ["campaign", "status", ScoreBandFilter, "blocked_reason", "is_role_account", "is_free_mail"]
    list_select_related = ["campaign"]
    status_label = label_column("status", labels.LEAD)
    search_fields = ["email", "first_name", "last_name", "company", "title"]
    autocomplete_fields = ["campaign", "source", "mailbox"]
    readonly_fields = ["email_domain", "score", "score_table", "scored_at", "status_changed_at",
                       "harvested_at", "raw_data_raw", "last_contacted_at", "replied_at", "created_at", "updated_at"]
    date_hierarchy = "created_at"
    fieldsets = [
        (None, {"fields": ["campaign", "email", "email_domain", ("first_name", "last_name"), "company", "title",
                           "industry", "country", "company_size", "website", "timezone",
                           ("is_role_account", "is_free_mail")]}),
        ("Status", {"fields": [("status", "status_changed_at"), "status_reason", ("score", "scored_at"),
                               "score_table"]}),
        ("Sequence", {"fields": [("current_step", "next_send_at"), "blocked_reason", "paused_until", "mailbox",
                                 ("last_contacted_at", "replied_at")]}),
        ("Provenance", {"fields": ["source", "harvested_at", "raw_data_raw"], "classes": ["collapse"]}),
        ("Record", {"fields": [("created_at", "updated_at")], "classes": ["collapse"]}),
    ]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "timezone":
            kwargs["widget"] = TimezoneSelect(blank=True)
        elif db_field.name == "website":
            kwargs["assume_scheme"] = "https"
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    @admin.display(description="Score breakdown")
    def score_table(self, obj: Lead) -> str:
        if not obj.score_breakdown:
            return score_breakdown_html(obj.score_breakdown)
        return format_html("{}{}", score_breakdown_html(obj.score_breakdown), raw_json(obj.score_breakdown))

    raw_data_raw = raw_field("raw_data", "Raw data")

    @admin.display(description="Name", ordering="last_name")
    def full_name(self, obj: Lead) -> str:
        return obj.full_name

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
class SuppressionAdmin(ExportMixin, ModelAdmin):
    form = SuppressionForm
    # The Export button downloads the filtered list (spreadsheet-safe, see cam.admin.exports).
    resource_classes = [SuppressionExportResource]
    export_form_class = ExportForm
    export_formats = [SafeCsv]
    skip_export_form = True
    to_encoding = "utf-8-sig"
    list_display = ["__str__", "reason", "source", "created_at"]
    list_filter = ["reason"]
    search_fields = ["email", "domain", "source", "note"]
    fields = ["email", "domain", "reason", "source", "note", "created_at"]
    readonly_fields = ["created_at"]
    date_hierarchy = "created_at"


@admin.register(HarvestRejection)
class HarvestRejectionAdmin(AuditAdmin):
    list_display = ["campaign", "source", "line", "email", "reason", "created_at"]
    list_filter = ["campaign", "source"]
    list_select_related = ["campaign", "source"]
    search_fields = ["email", "reason"]
    date_hierarchy = "created_at"
    exclude = ["raw_data"]
    readonly_fields = ["raw_data_raw"]

    raw_data_raw = raw_field("raw_data", "The record as the source gave it")


@admin.register(LeadEvent)
class LeadEventAdmin(AuditAdmin):
    list_display = ["lead", "from_status", "to_status", "actor", "reason", "created_at"]
    list_filter = ["to_status", "from_status"]
    list_select_related = ["lead"]
    search_fields = ["lead__email", "actor", "reason"]
    date_hierarchy = "created_at"
