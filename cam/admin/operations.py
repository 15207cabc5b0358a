"""Job runs, leases, worker heartbeats, alerts and alert channels."""

from __future__ import annotations

import os

from django.contrib import admin, messages
from django.utils.html import format_html
from unfold.admin import ModelAdmin
from unfold.contrib.filters.admin import RelatedDropdownFilter

from cam.admin import labels
from cam.admin.base import AuditAdmin, LongListMixin
from cam.admin.columns import one_line, status_column, text_column, when
from cam.admin.filters import MomentRangeFilter
from cam.admin.labels import label_column
from cam.admin.readable import job_errors_html, raw_field
from cam.admin.secret_settings import SecretSettingsAdminMixin, SecretSettingsForm
from cam.egress import EgressRefused, check_url
from cam.jobs.registry import job_names
from cam.jobs.summary import counts_text, duration_text
from cam.models import AlertChannel, HumanAlertLog, JobExecution, JobRunDay, Lease, SecretSettingChange, WorkerHeartbeat
from cam.secrets import secret_name_problem


class JobFilter(admin.SimpleListFilter):
    """The jobs CAM knows (its registry), rather than Django's default of reading every distinct job name off
    the whole table on each page view. The parameter stays ``job``."""

    title = "job"
    parameter_name = "job"

    def lookups(self, request, model_admin):
        return [(name, name) for name in job_names()]

    def queryset(self, request, queryset):
        return queryset.filter(job=self.value()) if self.value() else queryset


@admin.register(JobExecution)
class JobExecutionAdmin(LongListMixin, AuditAdmin):
    # The run's id is long and says what the columns say; it stays searchable and heads its own page. The
    # trigger is a filter and on the run's page: the width goes to what the run did and what went wrong (the
    # one column that may take a second line: an error is read whole).
    list_display = ["started", "job", "campaign_cell", "status_label", "duration", "summary_cell", "errors_or_reason"]
    list_display_links = ["started"]
    list_filter = [JobFilter, "status", "trigger", ("campaign", RelatedDropdownFilter),
                   ("started_at", MomentRangeFilter)]
    list_filter_submit = True  # the date range is typed, then applied
    list_select_related = ["campaign"]
    list_defer = ("params", "traceback", "campaign__description")
    status_label = status_column("status", labels.JOB)
    campaign_cell = text_column("Campaign", lambda run: run.campaign.name if run.campaign else "", width="s",
                                ordering="campaign__name")
    search_fields = ["execution_id", "job", "error", "reason"]
    # What the run did in words; the stored JSON folded beneath (cam.admin.readable).
    fields = ["execution_id", "job", "campaign", "scheduled_for", "status", "trigger", "reason",
              ("started_at", "finished_at", "duration"), "summary", "errors", "traceback", "worker_id", "holder",
              "params_raw", "counts_raw"]
    readonly_fields = ["duration", "summary", "errors", "params_raw", "counts_raw"]

    @admin.display(description="Started", ordering="started_at")
    def started(self, obj: JobExecution) -> str:
        # Short and on one line, so the run's summary keeps the width; to the second on hover.
        return when(obj.started_at)

    @admin.display(description="Took")
    def duration(self, obj: JobExecution) -> str:
        return duration_text(obj.duration_seconds)

    @admin.display(description="What it did")
    def summary(self, obj: JobExecution) -> str:
        return counts_text(obj.counts) or "—"

    @admin.display(description="What it did")
    def summary_cell(self, obj: JobExecution) -> str:
        return one_line(counts_text(obj.counts), width="fill")

    @admin.display(description="Errors")
    def errors(self, obj: JobExecution) -> str:
        return job_errors_html(obj.counts, obj.error)

    @admin.display(description="Errors or reason")
    def errors_or_reason(self, obj: JobExecution) -> str:
        # One column for what went wrong or why the run was skipped: a run has one or the other.
        return job_errors_html(obj.counts, obj.error, otherwise=obj.reason)

    params_raw = raw_field("params", "Parameters")
    counts_raw = raw_field("counts", "Counts")


@admin.register(JobRunDay)
class JobRunDayAdmin(AuditAdmin):
    """The worker cycle's and the watchdog's runs past their retention, one row per job, day and status
    (``cam.jobs.retention``)."""

    list_display = ["day", "job", "status_label", "runs", "average_seconds", "longest_seconds"]
    list_filter = ["job", "status"]
    date_hierarchy = "day"
    status_label = label_column("status", labels.JOB)

    @admin.display(description="Average (s)")
    def average_seconds(self, obj: JobRunDay) -> str:
        return f"{obj.seconds_total / obj.runs:.2f}" if obj.runs else "—"

    @admin.display(description="Longest (s)", ordering="seconds_max")
    def longest_seconds(self, obj: JobRunDay) -> str:
        return f"{obj.seconds_max:.2f}"


@admin.register(Lease)
class LeaseAdmin(AuditAdmin):
    list_display = ["name", "holder", "acquired_at", "expires_at"]
    search_fields = ["name", "holder"]

    def has_delete_permission(self, request, obj=None) -> bool:
        # Releasing a stuck lock by hand is a legitimate operator action.
        return request.user.is_superuser


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(AuditAdmin):
    list_display = ["worker_id", "status_label", "current_step", "last_seen_at", "last_cycle_started_at",
                    "last_cycle_finished_at", "cycles_completed", "last_error"]
    list_filter = ["status"]
    status_label = label_column("status", labels.WORKER)
    search_fields = ["worker_id", "hostname"]


@admin.register(HumanAlertLog)
class HumanAlertLogAdmin(AuditAdmin):
    list_display = ["title", "alert_type", "channel", "sent_successfully", "sent_at", "failed_at", "attempts",
                    "last_error", "created_at"]
    list_filter = ["alert_type", "sent_successfully", ("failed_at", admin.EmptyFieldListFilter), "channel"]
    list_select_related = ["channel"]
    search_fields = ["title", "body", "idempotency_key"]
    date_hierarchy = "created_at"


class AlertChannelForm(SecretSettingsForm):
    """Checks the URL a Slack or webhook channel's variable holds, when this process has the variable: an
    http(s) URL not written as a loopback or private address. The worker may have variables the web
    process lacks, so an unset one is not refused here (sending names it); and the check when sending
    is the one that counts, since what a host name resolves to can change."""

    class Meta:
        model = AlertChannel
        fields = "__all__"

    def clean(self):
        cleaned = super().clean()
        name = cleaned.get("url_env")
        # Only a name that may hold a secret is read (the field's own check refuses the others).
        url = os.environ.get(name, "") if name and not secret_name_problem(name) else ""
        if cleaned.get("kind") in (AlertChannel.Kind.SLACK, AlertChannel.Kind.WEBHOOK) and url:
            try:
                check_url(url)
            except EgressRefused as exc:
                # The URL is a secret (Slack's carries its token): name the variable, never the value.
                self.add_error("url_env", f"The URL in {name} is {exc}.")
        return cleaned


@admin.register(AlertChannel)
class AlertChannelAdmin(SecretSettingsAdminMixin, ModelAdmin):
    form = AlertChannelForm
    list_display = ["name", "kind", "enabled", "last_error", "last_error_at"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name"]
    readonly_fields = ["last_error", "last_error_at", "created_at", "updated_at"]
    actions = ["enable"]

    @admin.action(description="Enable selected channels again (after fixing what disabled them)",
                  permissions=["change"])
    def enable(self, request, queryset):
        changed = queryset.filter(enabled=False).update(enabled=True)
        self.message_user(request, f"{changed} channel(s) enabled; their waiting alerts go out on the next cycle.",
                          messages.SUCCESS)


@admin.register(SecretSettingChange)
class SecretSettingChangeAdmin(AuditAdmin):
    list_display = ["changed_at", "actor", "object_repr", "field", "change"]
    # No filter column: the table needs the width for the values; search finds a record or a name.
    search_fields = ["actor", "object_repr", "old_value", "new_value"]
    date_hierarchy = "changed_at"

    @admin.display(description="from → to")
    def change(self, obj: SecretSettingChange) -> str:
        return format_html("{} → {}", obj.old_value or "(empty)", obj.new_value or "(empty)")
