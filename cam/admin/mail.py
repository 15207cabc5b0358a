"""Mailboxes, and the audit of what went out and what came in."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from unfold.admin import ModelAdmin, TabularInline
from unfold.contrib.filters.admin import ChoicesDropdownFilter, RelatedDropdownFilter

from cam.admin import labels
from cam.admin.base import AuditAdmin, LongListMixin
from cam.admin.columns import one_line, status_column, text_column, when, when_column
from cam.admin.domains import domain_panel, mailbox_domain
from cam.admin.filters import MomentRangeFilter
from cam.admin.readable import raw_field
from cam.admin.secret_settings import SecretSettingsAdminMixin
from cam.domains.services import mailbox_domain_check_on_commit, with_domain_held
from cam.inbox.processing import NotHeld, bounce_confirm, bounce_dismiss, reply_reclassify
from cam.leads import staff_actor
from cam.mail_oauth import OAuthProblem, authorization_finish, authorization_start
from cam.mailboxes.connection_test import mailbox_connection_test
from cam.models import InboundEmail, Mailbox, MailboxFolder, OutboundEmail, ProviderEvent
from cam.models.mail import TRIAGE_ORDER
from cam.outreach.outbound import outbound_cancel, outbound_resend
from cam.outreach.pacing import warmup_words


class MailboxFolderInline(TabularInline):
    model = MailboxFolder
    extra = 0
    fields = ["name", "backfill_days", "uidvalidity", "last_uid", "last_polled_at"]
    readonly_fields = ["uidvalidity", "last_uid", "last_polled_at"]


@admin.register(Mailbox)
class MailboxAdmin(SecretSettingsAdminMixin, ModelAdmin):
    # Problems early: what stops a mailbox must be seen without scrolling sideways.
    list_display = ["name", "from_email", "provider", "is_active", "problems", "daily_cap", "min_gap_seconds",
                    "last_sent_at", "last_polled_at"]
    list_filter = ["provider", "is_active"]
    search_fields = ["name", "from_email", "from_name"]
    readonly_fields = ["last_sent_at", "last_send_error", "last_send_error_at", "last_polled_at", "last_poll_error",
                       "created_at", "updated_at", "oauth_connection", "domain_health", "allowance_today",
                       "connection_test"]
    inlines = [MailboxFolderInline]

    @admin.display(description="Connection")
    def oauth_connection(self, mailbox: Mailbox) -> str:
        """The connected account, when its token was last refreshed, and the Connect button (never a token)."""
        if mailbox.pk is None:
            return "Save the mailbox with the OAuth2 login and its provider, then connect it here."
        if mailbox.auth != Mailbox.Auth.OAUTH2:
            return "Logs in with a password (choose OAuth2 above and save to connect it instead)."
        state = ("⚠ Must be reconnected: the provider no longer accepts its grant." if mailbox.needs_reconnect
                 else f"Connected as {mailbox.oauth_account}" if mailbox.oauth_refresh_token else "Not connected yet.")
        refreshed = (format_html(" · token last refreshed {}", when(mailbox.oauth_refreshed_at))
                     if mailbox.oauth_refreshed_at else "")
        button = "Reconnect" if mailbox.oauth_refresh_token else "Connect"
        return format_html('<span data-oauth-state>{}{}</span> · <a data-oauth-connect href="{}">{} →</a>',
                           state, refreshed,
                           reverse("admin:cam_mailbox_oauth_connect", args=[mailbox.pk]), button)

    def get_urls(self):
        return [path("<int:mailbox_id>/oauth/connect/", self.admin_site.admin_view(self.oauth_connect_view),
                     name="cam_mailbox_oauth_connect"),
                path("oauth/callback/", self.admin_site.admin_view(self.oauth_callback_view),
                     name="cam_mailbox_oauth_callback"),
                path("<int:mailbox_id>/test-connection/", self.admin_site.admin_view(self.test_connection_view),
                     name="cam_mailbox_test_connection"),
                *super().get_urls()]

    def oauth_connect_view(self, request, mailbox_id: int):
        """Send the browser to the mailbox's provider (authorization code with PKCE)."""
        mailbox = get_object_or_404(Mailbox, pk=mailbox_id)
        if not self.has_change_permission(request, mailbox):
            raise PermissionDenied
        try:
            return redirect(authorization_start(mailbox, request.session))
        except OAuthProblem as exc:
            messages.error(request, str(exc))
            return redirect("admin:cam_mailbox_change", mailbox.pk)

    def oauth_callback_view(self, request):
        """Where the provider sends the browser back: the state must be one this session started."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        try:
            mailbox = authorization_finish(
                session=request.session, state=request.GET.get("state", ""), code=request.GET.get("code", ""),
                error=request.GET.get("error", ""), error_description=request.GET.get("error_description", ""))
        except OAuthProblem as exc:
            messages.error(request, str(exc))
            return redirect("admin:cam_mailbox_changelist")
        messages.success(request, f"Mailbox {mailbox.name} is connected as {mailbox.oauth_account}.")
        return redirect("admin:cam_mailbox_change", mailbox.pk)

    @admin.display(description="Sending domain")
    def domain_health(self, mailbox: Mailbox) -> SafeString | str:
        if not mailbox.pk:
            return "Checked once the mailbox is saved."
        return domain_panel(mailbox_domain(mailbox.sending_domain), link=True)

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        # After the save commits, with a short timeout: a slow DNS server never holds up the save.
        mailbox_domain_check_on_commit(obj)


    def test_connection_view(self, request, mailbox_id: int):
        """Log in to the mailbox's servers (POST only: it opens connections) and show each step on its page."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        mailbox = get_object_or_404(Mailbox, pk=mailbox_id)
        if not self.has_change_permission(request, mailbox):
            raise PermissionDenied
        report = mailbox_connection_test(mailbox)
        level = messages.SUCCESS if report.ok else messages.ERROR
        title = "Connection test passed." if report.ok else "Connection test failed."
        self.message_user(request, format_html("{}<br>{}", title, format_html_join(
            mark_safe("<br>"), "{}", ((line,) for line in report.lines()))), level)
        return redirect(reverse("admin:cam_mailbox_change", args=[mailbox.pk]))

    @admin.display(description="Connection")
    def connection_test(self, mailbox: Mailbox) -> str:
        """The button that tests the saved settings; the change form's own CSRF token goes with it."""
        if mailbox.pk is None:
            return "Save the mailbox to test its connection."
        return format_html(
            '<button type="submit" formaction="{}" formmethod="post" formnovalidate class="{}">Test connection'
            '</button> <span class="text-font-subtle-light">Logs in to SMTP and IMAP with the saved settings and '
            'lists the folders; sends nothing.</span>',
            reverse("admin:cam_mailbox_test_connection", args=[mailbox.pk]),
            "border font-medium px-3 py-2 rounded-default bg-white dark:bg-base-900 border-base-200 "
            "dark:border-base-700 text-font-important-light dark:text-font-important-dark")

    @admin.display(description="Today's allowance")
    def allowance_today(self, mailbox: Mailbox) -> str:
        """What the planner lets it send today, and the day its warm-up reaches the daily cap."""
        if mailbox.pk is None:
            return "Set once the mailbox is saved."
        return warmup_words(mailbox, today=timezone.localdate())

    def get_queryset(self, request):
        return with_domain_held(super().get_queryset(request))

    @admin.display(description="Problems")
    def problems(self, mailbox: Mailbox) -> str:
        """What stops this mailbox, in a word each; the whole error on hover and on its page."""
        reconnect = ("Its OAuth2 provider no longer accepts its grant: press Connect on its page."
                     if mailbox.needs_reconnect else "")
        held = (f"{mailbox.sending_domain} fails SPF or DMARC: its leads are held until the domain passes or staff "
                f"override it (Setup › Sending domains)." if getattr(mailbox, "domain_held", False) else "")
        found = [(label, error) for label, error in (("Must be reconnected", reconnect), ("Domain held", held),
                                                      ("Cannot send", mailbox.last_send_error),
                                                      ("Cannot read replies", mailbox.last_poll_error)) if error]
        if not found:
            return "—"
        return format_html_join(mark_safe("<br>"), '<span title="{}">⚠ {}</span>',
                                ((error, label) for label, error in found))

    fieldsets = [
        (None, {"fields": ["name", ("from_email", "from_name"), "reply_to", "provider", "is_active", "connection_test",
                           ("daily_cap", "min_gap_seconds"), "allowance_today", "last_sent_at",
                           ("last_send_error", "last_send_error_at")]}),
        ("Login", {"fields": ["auth", "oauth_provider", "oauth_connection"]}),
        ("Warm-up and pace", {
            "fields": ["warmup_enabled", ("warmup_start", "warmup_increment"), "warmup_started_on"],
            "description": "Each day's allowance leaves spread over the send window's hours left, and the gap "
                           "between two sends varies a little either way, so the mailbox does not send like a "
                           "script."}),
        ("SMTP", {"fields": [("smtp_host", "smtp_port", "smtp_security"), "smtp_username", "smtp_password_env",
                             "verp_return_path"]}),
        ("Resend", {"fields": ["resend_api_key_env"]}),
        ("Sending domain (SPF, DKIM, DMARC)", {"fields": ["domain_health"]}),
        ("IMAP (replies)", {"fields": [("imap_host", "imap_port", "imap_security"), "imap_username",
                                       "imap_password_env", ("last_polled_at", "last_poll_error")]}),
        ("Record", {"fields": [("created_at", "updated_at")], "classes": ["collapse"]}),
    ]


@admin.register(MailboxFolder)
class MailboxFolderAdmin(ModelAdmin):
    list_display = ["__str__", "backfill_days", "uidvalidity", "last_uid", "last_polled_at"]
    list_select_related = ["mailbox"]
    search_fields = ["name", "mailbox__name"]
    autocomplete_fields = ["mailbox"]
    readonly_fields = ["uidvalidity", "last_uid", "last_polled_at"]


@admin.register(OutboundEmail)
class OutboundEmailAdmin(LongListMixin, AuditAdmin):
    """The outbound queue: by status, with the reason for anything not sent (marked ⚠ beside the status, the
    error itself on hover and on the email's page)."""

    list_display = ["to_cell", "subject_cell", "step_position", "mailbox_cell", "status_label", "attempts",
                    "sent_cell"]
    list_filter = [("status", ChoicesDropdownFilter), ("campaign", RelatedDropdownFilter),
                   ("mailbox", RelatedDropdownFilter), "provider", ("sent_at", MomentRangeFilter),
                   ("created_at", MomentRangeFilter)]
    list_filter_submit = True  # the date ranges are typed, then applied
    list_select_related = ["step", "mailbox"]
    # The rendered email and the step's templates: on the email's page, not in the list.
    list_defer = ("body_text", "body_html", "references", "step__body_template", "step__html_template")
    search_fields = ["to_email", "subject", "message_id", "provider_message_id"]

    to_cell = text_column("To", lambda email: email.to_email, width="l", ordering="to_email")
    subject_cell = text_column("Subject", lambda email: email.subject, width="fill", ordering="subject")
    mailbox_cell = text_column("Mailbox", lambda email: email.mailbox.name if email.mailbox else "", width="s",
                               ordering="mailbox__name")
    status_label = status_column("status", labels.OUTBOUND, note=lambda email: email.last_error)
    sent_cell = when_column("sent_at", "Sent at")
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
    def step_position(self, obj: OutboundEmail) -> int | str:
        return obj.step.position if obj.step is not None else "Answer"


def _reclassify_action(category: InboundEmail.Category):
    def action(modeladmin, request, queryset):
        for inbound in queryset:
            reply_reclassify(inbound=inbound, category=category, by=staff_actor(request.user))
        modeladmin.message_user(request, f"{queryset.count()} repl(ies) set to {category.label}; "
                                         f"the follow-up for it was applied.", messages.SUCCESS)

    action.__name__ = f"reclassify_{category.value.lower()}"
    return admin.action(description=f"Reclassify as {category.label.lower()}", permissions=["reclassify"])(action)


@admin.register(InboundEmail)
class InboundEmailAdmin(LongListMixin, AuditAdmin):
    """Every message read from the mailboxes, as read (under *Operations*; the reply desk, ``cam.admin.desk``, is
    where people work replies): positive and referral replies first, then held bounces and complaints, with the
    reply's own words and the reasons. Each row opens the record; its sender's address opens the lead it was
    matched to; the record links to its conversation on the desk."""

    # Whether a warm reply's alert went out is a filter and on the reply's page: the width goes to the reply.
    list_display = ["received_cell", "from_cell", "category_label", "reply_text", "reasons"]
    list_display_links = ["received_cell"]
    list_filter = [("category", ChoicesDropdownFilter), "confirmation", ("mailbox", RelatedDropdownFilter),
                   "alert_sent", ("processed_at", admin.EmptyFieldListFilter), ("lead", admin.EmptyFieldListFilter),
                   ("received_at", MomentRangeFilter)]
    list_filter_submit = True  # the date range is typed, then applied
    # The raw message (up to the configured size, a megabyte or more) is never shown on a list.
    list_defer = ("raw_message", "references", "failed_recipients")
    category_label = status_column(
        "category", labels.REPLY,
        hover=lambda reply: f"{reply.get_category_display()}, confidence {reply.confidence:.2f}"
        if reply.confidence is not None else reply.get_category_display())
    search_fields = ["from_email", "subject", "message_id", "new_text"]
    exclude = ["raw_message"]
    readonly_fields = ["conversation"]
    actions = ["confirm_held", "dismiss_held", *(_reclassify_action(category) for category in InboundEmail.Category)]

    def has_reclassify_permission(self, request) -> bool:
        # Read-only rows; reclassifying goes through the inbox service, for who may change replies.
        return request.user.has_perm("cam.change_inboundemail")

    # --- held bounces and complaints: confirmed or dismissed by a person, through the inbox service ---

    def get_list_display(self, request):
        # The confirmation column, with its buttons for those who may use them, after the category.
        shown = list(super().get_list_display(request))
        shown.insert(shown.index("category_label") + 1,
                     "decide" if self.has_reclassify_permission(request) else "confirmation")
        return shown

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.needs_confirmation and self.has_reclassify_permission(request):
            fields.append("decide")
        return fields

    @admin.display(description="Confirmation", ordering="confirmation")
    def decide(self, obj: InboundEmail) -> str:
        """A held reply's two buttons. They submit the page's own form (which carries the CSRF token) to
        the confirm or dismiss view: a form of their own cannot sit inside it."""
        if not obj.needs_confirmation:
            return obj.get_confirmation_display() or "—"
        button = '<button type="submit" formmethod="post" formaction="{}" class="cam-button" title="{}">{}</button>'
        return format_html(
            '<span class="cam-decide">⚠ Needs confirming<span class="cam-decide-buttons">' + button + button
            + "</span></span>",
            reverse("admin:cam_inboundemail_confirm", args=[obj.pk]),
            "Apply its follow-up: the lead becomes BOUNCED or UNSUBSCRIBED and the address is suppressed",
            "Confirm bounce" if obj.category != InboundEmail.Category.COMPLAINT else "Confirm complaint",
            reverse("admin:cam_inboundemail_dismiss", args=[obj.pk]),
            "Forged, or not about our email: the lead is left as it is", "Dismiss")

    def get_urls(self):
        return [path("<int:inbound_id>/confirm/", self.admin_site.admin_view(self.confirm_view),
                     name="cam_inboundemail_confirm"),
                path("<int:inbound_id>/dismiss/", self.admin_site.admin_view(self.dismiss_view),
                     name="cam_inboundemail_dismiss"),
                *super().get_urls()]

    def confirm_view(self, request, inbound_id: int):
        return self._decide_view(request, inbound_id, bounce_confirm, "confirmed: its follow-up was applied")

    def dismiss_view(self, request, inbound_id: int):
        return self._decide_view(request, inbound_id, bounce_dismiss, "dismissed: its lead was left as it is")

    def _decide_view(self, request, inbound_id: int, service, done: str):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_reclassify_permission(request):
            raise PermissionDenied
        inbound = get_object_or_404(InboundEmail, pk=inbound_id)
        try:
            service(inbound=inbound, by=staff_actor(request.user))
        except NotHeld as exc:
            self.message_user(request, str(exc), messages.WARNING)
        else:
            self.message_user(request, f"Reply #{inbound.pk} from {inbound.from_email or '(unknown sender)'} {done}.",
                              messages.SUCCESS)
        return redirect("admin:cam_inboundemail_changelist")

    @admin.action(description="Confirm held bounces and complaints (apply their follow-up)",
                  permissions=["reclassify"])
    def confirm_held(self, request, queryset):
        self._decide_all(request, queryset, bounce_confirm, "confirmed; their follow-up was applied")

    @admin.action(description="Dismiss held bounces and complaints (leave their leads alone)",
                  permissions=["reclassify"])
    def dismiss_held(self, request, queryset):
        self._decide_all(request, queryset, bounce_dismiss, "dismissed")

    def _decide_all(self, request, queryset, service, done: str) -> None:
        decided = 0
        for inbound in queryset.filter(confirmation=InboundEmail.Confirmation.NEEDED):
            try:
                service(inbound=inbound, by=staff_actor(request.user))
            except NotHeld:  # decided by someone else meanwhile
                continue
            decided += 1
        skipped = queryset.count() - decided
        self.message_user(request, f"{decided} held repl(ies) {done}."
                                   + (f" {skipped} were not waiting to be confirmed and were left as they are."
                                      if skipped else ""), messages.SUCCESS)

    def get_ordering(self, request):
        # Warm replies first (cam.models.mail.TRIAGE_ORDER, which an index holds).
        return TRIAGE_ORDER

    @admin.display(description="Received", ordering="received_at")
    def received_cell(self, obj: InboundEmail) -> str:
        return when(obj.received_at or obj.created_at)

    @admin.display(description="From", ordering="from_email")
    def from_cell(self, obj: InboundEmail) -> str:
        """The sender, linked to the lead the reply was matched to; plain (and said so on hover) when none was."""
        sender = obj.from_email or "(unknown sender)"
        if obj.lead_id is None:
            return format_html('<span class="cam-cut cam-cut-l cam-unmatched" title="{} (no lead matched)">{}</span>',
                               sender, sender)
        return format_html('<a href="{}">{}</a>', reverse("admin:cam_lead_change", args=[obj.lead_id]),
                           one_line(obj.from_email, width="l"))

    @admin.display(description="Reply")
    def reply_text(self, obj: InboundEmail) -> str:
        # The reply's own words on one line; the start of them on hover (the whole on the reply's page).
        return one_line(obj.new_text[:1000], width="fill")

    @admin.display(description="Why")
    def reasons(self, obj: InboundEmail) -> str:
        return one_line("; ".join(obj.classification_reasons), width="xs")

    @admin.display(description="On the reply desk")
    def conversation(self, obj: InboundEmail) -> str:
        return format_html('<a class="cam-link" href="{}">Its conversation: the thread, reclassify, handled, '
                           'assigned</a>', reverse("admin:cam_reply_thread", args=[obj.pk]))


@admin.register(ProviderEvent)
class ProviderEventAdmin(LongListMixin, AuditAdmin):
    # One event per delivered email through Resend: as long as the outbound list, in time.
    list_display = ["event_type", "provider", "recipient", "outbound_email", "description", "occurred_at",
                    "received_at"]
    list_filter = ["provider", "event_type", ("received_at", MomentRangeFilter)]
    list_filter_submit = True  # the date range is typed, then applied
    list_select_related = ["outbound_email", "outbound_email__step"]
    list_defer = ("payload", "outbound_email__body_text", "outbound_email__body_html", "outbound_email__references",
                  "outbound_email__step__body_template", "outbound_email__step__html_template")
    search_fields = ["event_id", "provider_message_id", "recipient"]
    exclude = ["payload"]
    readonly_fields = ["payload_raw"]

    payload_raw = raw_field("payload", "Payload")
