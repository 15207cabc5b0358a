"""Campaign rules (editable), the decisions they made and the stored metrics (both read-only)."""

from __future__ import annotations

from django.contrib import admin
from unfold.admin import ModelAdmin

from cam.admin.base import AuditAdmin
from cam.admin.readable import raw_field
from cam.models import CampaignRule, MetricSnapshot, RuleDecision


@admin.register(CampaignRule)
class CampaignRuleAdmin(ModelAdmin):
    list_display = ["campaign", "metric", "scope", "comparison", "threshold", "window", "min_sample", "action",
                    "enabled"]
    list_filter = ["metric", "scope", "action", "enabled", "campaign"]
    list_editable = ["enabled"]
    list_select_related = ["campaign"]
    search_fields = ["campaign__name"]
    autocomplete_fields = ["campaign"]
    readonly_fields = ["created_at", "updated_at"]


@admin.register(RuleDecision)
class RuleDecisionAdmin(AuditAdmin):
    list_display = ["created_at", "campaign", "mailbox", "action", "reason", "measured_value", "sample_size",
                    "status_after"]
    list_filter = ["action", "metric", "campaign"]
    list_select_related = ["campaign", "mailbox"]
    search_fields = ["campaign__name", "reason"]
    date_hierarchy = "created_at"


@admin.register(MetricSnapshot)
class MetricSnapshotAdmin(AuditAdmin):
    list_display = ["key", "scope", "campaign", "mailbox", "window_days", "computed_at"]
    list_filter = ["scope"]
    list_select_related = ["campaign", "mailbox"]
    search_fields = ["key", "campaign__name", "mailbox__name"]
    exclude = ["window", "all_time"]
    readonly_fields = ["window_raw", "all_time_raw"]

    window_raw = raw_field("window", "Counts and rates over the window")
    all_time_raw = raw_field("all_time", "Counts and rates since the first send")
