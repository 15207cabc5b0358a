"""Mailboxes, and the audit of what went out and what came in."""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.html import format_html

from cam.admin.base import AuditAdmin
from cam.models import InboundEmail, Mailbox, MailboxFolder, OutboundEmail, ProviderEvent
from cam.outreach.outbound import outbound_cancel, outbound_resend


class MailboxFolderInline(admin.TabularInline):
    model = MailboxFolder
    extra = 0
    fields = ["name", "uidvalidity", "last_uid", "last_polled_at"]
    readonly_fields = ["uidvalidity", "last_uid", "last_polled_at"]


@admin.register(Mailbox)
class MailboxAdmin(admin.ModelAdmin):
    list_display = ["name", "from_email", "provider", "is_active", "daily_cap", "min_gap_seconds", "last_sent_at",
                    "last_polled_at", "last_poll_error"]
    list_filter = ["provider", "is_active"]
    search_fields = ["name", "from_email", "from_name"]
    readonly_fields = ["last_sent_at", "last_polled_at", "last_poll_error", "created_at", "updated_at"]
    inlines = [MailboxFolderInline]
    fieldsets = [
        (None, {"fields": ["name", ("from_email", "from_name"), "reply_to", "provider", "is_active",
                           ("daily_cap", "min_gap_seconds"), "last_sent_at"]}),
        ("SMTP", {"fields": [("smtp_host", "smtp_port", "smtp_security"), "smtp_username", "smtp_password_env"]}),
        ("Resend", {"fields": ["resend_api_key_env"]}),
        ("IMAP (replies)", {"fields": [("imap_host", "imap_port", "imap_security"), "imap_username",
                                       "imap_password_env", ("last_polled_at", "last_poll_error")]}),
        ("Record", {"fields": [("created_at", "updated_at")], "classes": ["collapse"]}),
    ]


@admin.register(MailboxFolder)
class MailboxFolderAdmin(admin.ModelAdmin):
    list_display = ["__str__", "uidvalidity", "last_uid", "last_polled_at"]
    list_select_related = ["mailbox"]
    search_fields = ["name", "mailbox__name"]
    autocomplete_fields = ["mailbox"]
    readonly_fields = ["uidvalidity", "last_uid", "last_polled_at"]


@admin.register(OutboundEmail)
class OutboundEmailAdmin(AuditAdmin):
    """The outbound queue: by status, with the reason for anything not sent."""

    list_display = ["to_email", "campaign", "step_position", "mailbox", "status", "attempts", "next_attempt_at",
                    "last_error", "sent_at", "created_at"]
    list_filter = ["status", "campaign", "mailbox", "provider"]
    list_select_related = ["campaign", "step", "mailbox"]
    search_fields = ["to_email", "subject", "message_id", "provider_message_id"]
    date_hierarchy = "created_at"
    # Rows stay read-only; these actions are the only changes staff make, through the services.
    actions = ["cancel", "resend"]

    @admin.action(description="Cancel selected emails (not yet sent)")
    def cancel(self, request, queryset):
        changed = outbound_cancel(outbound_ids=queryset.values_list("pk", flat=True), by=request.user.get_username())
        self.message_user(request, f"{changed} email(s) cancelled. Sent emails cannot be cancelled.", messages.SUCCESS)

    @admin.action(description="Resend selected emails (failed, unknown or cancelled)")
    def resend(self, request, queryset):
        changed = outbound_resend(outbound_ids=queryset.values_list("pk", flat=True), by=request.user.get_username())
        self.message_user(request, f"{changed} email(s) queued again. Only failed, unknown or cancelled emails "
                                   f"can be resent.", messages.SUCCESS)

    @admin.display(description="Step", ordering="step__position")
    def step_position(self, obj: OutboundEmail) -> int:
        return obj.step.position


@admin.register(InboundEmail)
class InboundEmailAdmin(AuditAdmin):
    list_display = ["from_email", "subject", "category", "confidence", "lead_link", "mailbox", "received_at",
                    "processed_at", "alert_sent"]
    list_filter = ["category", "mailbox", "alert_sent", ("processed_at", admin.EmptyFieldListFilter)]
    list_select_related = ["mailbox", "lead"]
    search_fields = ["from_email", "subject", "message_id", "new_text"]
    date_hierarchy = "created_at"
    exclude = ["raw_message"]

    @admin.display(description="Lead", ordering="lead__email")
    def lead_link(self, obj: InboundEmail) -> str:
        if obj.lead_id is None:
            return "—"
        return format_html('<a href="../lead/{}/change/">{}</a>', obj.lead_id, obj.lead.email)


@admin.register(ProviderEvent)
class ProviderEventAdmin(AuditAdmin):
    list_display = ["event_type", "provider", "recipient", "outbound_email", "description", "occurred_at",
                    "received_at"]
    list_filter = ["provider", "event_type"]
    list_select_related = ["outbound_email"]
    search_fields = ["event_id", "provider_message_id", "recipient"]
    date_hierarchy = "received_at"
