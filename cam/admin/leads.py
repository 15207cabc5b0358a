"""Leads and suppressions."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Q

from cam.admin.base import TimezoneSelect
from cam.models import Lead, Suppression


class ScoreBandFilter(admin.SimpleListFilter):
    title = "score"
    parameter_name = "score_band"
    bands = {
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
class LeadAdmin(admin.ModelAdmin):
    list_display = ["email", "full_name", "company", "title", "campaign", "status", "score", "blocked_reason",
                    "next_send_at", "created_at"]
    list_filter = ["campaign", "status", ScoreBandFilter, "blocked_reason", "is_role_account", "is_free_mail"]
    list_select_related = ["campaign"]
    search_fields = ["email", "first_name", "last_name", "company", "title"]
    autocomplete_fields = ["campaign", "source", "mailbox"]
    readonly_fields = ["email_domain", "score", "score_breakdown", "scored_at", "status_changed_at",
                       "harvested_at", "raw_data", "last_contacted_at", "replied_at", "created_at", "updated_at"]
    date_hierarchy = "created_at"
    fieldsets = [
        (None, {"fields": ["campaign", "email", "email_domain", ("first_name", "last_name"), "company", "title",
                           "industry", "country", "company_size", "website", "timezone",
                           ("is_role_account", "is_free_mail")]}),
        ("Status", {"fields": [("status", "status_changed_at"), "status_reason", ("score", "scored_at"),
                               "score_breakdown"]}),
        ("Sequence", {"fields": [("current_step", "next_send_at"), "blocked_reason", "paused_until", "mailbox",
                                 ("last_contacted_at", "replied_at")]}),
        ("Provenance", {"fields": ["source", "harvested_at", "raw_data"], "classes": ["collapse"]}),
        ("Record", {"fields": [("created_at", "updated_at")], "classes": ["collapse"]}),
    ]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "timezone":
            kwargs["widget"] = TimezoneSelect(blank=True)
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    @admin.display(description="Name", ordering="last_name")
    def full_name(self, obj: Lead) -> str:
        return obj.full_name


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    list_display = ["__str__", "reason", "source", "created_at"]
    list_filter = ["reason"]
    search_fields = ["email", "domain", "source", "note"]
    fields = ["email", "domain", "reason", "source", "note", "created_at"]
    readonly_fields = ["created_at"]
    date_hierarchy = "created_at"
