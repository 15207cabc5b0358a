"""Mailboxes, and the audit of what went out and what came in."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Case, IntegerField, Value, When
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from cam.admin.base import AuditAdmin
from cam.admin.secret_settings import SecretSettingsAdminMixin
from cam.inbox.processing import reply_reclassify
from cam.leads import staff_actor
from cam.models import InboundEmail, Mailbox, MailboxFolder, OutboundEmail, ProviderEvent
from cam.outreach.outbound import outbound_cancel, outbound_resend


class MailboxFolderInline(admin.TabularInline):
    model = MailboxFolder
    extra = 0
    fields = ["name", "uidvalidity", "last_uid", "last_polled_at"]
    readonly_fields = ["uidvalidity", "last_uid", "last_polled_at"]


@admin.register(Mailbox)
class MailboxAdmin(SecretSettingsAdminMixin, admin.ModelAdmin):
    # Problems early: what stops a mailbox must be seen without scrolling sideways.
    list_display = ["name", "from_email", "provider", "is_active", "problems", "daily_cap", "min_gap_seconds",
                    "last_sent_at", "last_polled_at"]
    list_filter = ["provider", "is_active"]
    search_fields = ["name", "from_email", "from_name"]
    readonly_fields = ["last_sent_at", "last_send_error", "last_send_error_at", "last_polled_at", "last_poll_error",
                       "created_at", "updated_at"]
    inlines = [MailboxFolderInline]

    @admin.display(description="Problems")
    def problems(self, mailbox: Mailbox) -> str:
        """What stops this mailbox, in a word each; the whole error on hover and on its page."""
        found = [(label, error) for label, error in (("Cannot send", mailbox.last_send_error),
                                                      ("Cannot read replies", mailbox.last_poll_error)) if error]
        if not found:
            return "—"
        return format_html_join(mark_safe("<br>"), '<span title="{}">⚠ {}</span>',
                                ((error, label) for label, error in found))

    fieldsets = [
        (None, {"fields": ["name", ("from_email", "from_name"), "reply_to", "provider", "is_active",
                           ("daily_cap", "min_gap_seconds"), "last_sent_at",
                           ("last_send_error", "last_send_error_at")]}),
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

    def has_act_permission(self, request) -> bool:
        # The rows are read-only here; the actions change them through services, for who may change them.
        return request.user.has_perm("cam.change_outboundemail")

    @admin.action(description="Cancel selected emails (not yet sent)", permissions=["act"])
    def cancel(self, request, queryset):
        changed = outbound_cancel(outbound_ids=queryset.values_list("pk", flat=True),
                                  by=staff_actor(request.user))
        self.message_user(request, f"{changed} email(s) cancelled. Sent emails cannot be cancelled.", messages.SUCCESS)

    @admin.action(description="Resend selected emails (failed, unknown or cancelled)", permissions=["act"])
    def resend(self, request, queryset):
        changed = outbound_resend(outbound_ids=queryset.values_list("pk", flat=True),
                                  by=staff_actor(request.user))
        self.message_user(request, f"{changed} email(s) queued again. Only failed, unknown or cancelled emails "
                                   f"can be resent.", messages.SUCCESS)

    @admin.display(description="Step", ordering="step__position")
    def step_position(self, obj: OutboundEmail) -> int:
        return obj.step.position


def _reclassify_action(category: InboundEmail.Category):
    def action(modeladmin, request, queryset):
        for inbound in queryset:
            reply_reclassify(inbound=inbound, category=category, by=staff_actor(request.user))
        modeladmin.message_user(request, f"{queryset.count()} repl(ies) set to {category.label}; "
                                         f"the follow-up for it was applied.", messages.SUCCESS)

    action.__name__ = f"reclassify_{category.value.lower()}"
    return admin.action(description=f"Reclassify as {category.label.lower()}", permissions=["reclassify"])(action)


# Warm replies first: they are the ones a person must answer today.
TRIAGE_ORDER = Case(
    When(category__in=[InboundEmail.Category.POSITIVE, InboundEmail.Category.REFERRAL,
                       InboundEmail.Category.QUESTION], then=Value(0)),
    When(processed_at__isnull=True, then=Value(1)),
    When(lead__isnull=True, then=Value(2)),
    default=Value(3), output_field=IntegerField())


@admin.register(InboundEmail)
class InboundEmailAdmin(AuditAdmin):
    """Reply triage: positive and referral replies first, with the reply's own words and the reasons."""

    list_display = ["from_email", "category", "confidence", "reply_text", "reasons", "lead_link", "thread",
                    "received_at", "alert_sent"]
    list_filter = ["category", "mailbox", "alert_sent", ("processed_at", admin.EmptyFieldListFilter),
                   ("lead", admin.EmptyFieldListFilter)]
    list_select_related = ["mailbox", "lead", "outbound_email"]
    search_fields = ["from_email", "subject", "message_id", "new_text"]
    date_hierarchy = "created_at"
    exclude = ["raw_message"]
    actions = [_reclassify_action(category) for category in InboundEmail.Category]

    def has_reclassify_permission(self, request) -> bool:
        # Read-only rows; reclassifying goes through the inbox service, for who may change replies.
        return request.user.has_perm("cam.change_inboundemail")

    def get_ordering(self, request):
        return [TRIAGE_ORDER.asc(), "-created_at", "-id"]

    @admin.display(description="Reply")
    def reply_text(self, obj: InboundEmail) -> str:
        text = " ".join(obj.new_text.split())
        return f"{text[:160]}…" if len(text) > 160 else text

    @admin.display(description="Why")
    def reasons(self, obj: InboundEmail) -> str:
        return "; ".join(obj.classification_reasons[:3])

    @admin.display(description="Lead", ordering="lead__email")
    def lead_link(self, obj: InboundEmail) -> str:
        if obj.lead_id is None:
            return "— (unmatched)"
        return format_html('<a href="{}">{}</a>', reverse("admin:cam_lead_change", args=[obj.lead_id]),
                           obj.lead.email)

    @admin.display(description="Answers")
    def thread(self, obj: InboundEmail) -> str:
        if obj.outbound_email_id is None:
            return "—"
        return format_html('<a href="{}">{}</a>', reverse("admin:cam_outboundemail_change",
                                                          args=[obj.outbound_email_id]),
                           obj.outbound_email.subject[:60])


@admin.register(ProviderEvent)
class ProviderEventAdmin(AuditAdmin):
    list_display = ["event_type", "provider", "recipient", "outbound_email", "description", "occurred_at",
                    "received_at"]
    list_filter = ["provider", "event_type"]
    list_select_related = ["outbound_email"]
    search_fields = ["event_id", "provider_message_id", "recipient"]
    date_hierarchy = "received_at"
