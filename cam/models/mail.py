"""Sending identities and every message that went out or came in."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Case, F, IntegerField, Q, Value, When

from cam.models.fields import EncryptedTextField, LowercaseEmailField
from cam.return_path import return_path_problem
from cam.secrets import validate_secret_name


class Security(models.TextChoices):
    NONE = "none", "None (plain text)"
    STARTTLS = "starttls", "STARTTLS"
    SSL = "ssl", "SSL/TLS"


class Mailbox(models.Model):
    """A sending identity, and the inbox its replies arrive in.

    Secrets are never stored here: the password and API key fields hold the *name* of the
    environment variable that holds the secret.
    """

    class Provider(models.TextChoices):
        CONSOLE = "console", "Console (nothing leaves the machine)"
        SMTP = "smtp", "SMTP"
        RESEND = "resend", "Resend"

    class Auth(models.TextChoices):
        PASSWORD = "password", "Password (named variable)"
        OAUTH2 = "oauth2", "OAuth2 (Connect to Microsoft 365, Google, …)"

    class OAuthProvider(models.TextChoices):
        MICROSOFT365 = "microsoft365", "Microsoft 365"
        GOOGLE = "google", "Google Workspace / Gmail"
        GENERIC = "generic", "Other (AICMO_CAM_OAUTH_GENERIC_* URLs)"

    name = models.CharField(max_length=200, unique=True)
    from_email = LowercaseEmailField(max_length=254, unique=True)
    from_name = models.CharField(max_length=200, blank=True)
    reply_to = LowercaseEmailField(max_length=254, blank=True)
    provider = models.CharField(max_length=16, choices=Provider.choices, default=Provider.CONSOLE)
    is_active = models.BooleanField(default=True)
    daily_cap = models.PositiveIntegerField(default=50, validators=[MinValueValidator(1)],
                                            help_text="Most emails this mailbox sends in one day.")
    min_gap_seconds = models.PositiveIntegerField(default=120, help_text="Least time between two sends.")
    last_sent_at = models.DateTimeField(null=True, blank=True)
    # The warm-up plan (cam.outreach.pacing): a new mailbox sends warmup_start emails on its first day, then
    # warmup_increment more each day, up to daily_cap.
    warmup_enabled = models.BooleanField(
        "warm up", default=True,
        help_text="Start low and add a few emails each day up to the daily cap, so a new mailbox does not burn its "
                  "domain. Turn it off for a mailbox that already sends every day.")
    warmup_start = models.PositiveIntegerField("first day's emails", default=10, validators=[MinValueValidator(1)])
    warmup_increment = models.PositiveIntegerField("more each day", default=5, validators=[MinValueValidator(1)])
    warmup_started_on = models.DateField(
        "warm-up day one", null=True, blank=True,
        help_text="Set by the first send; a campaign rule that pauses a campaign moves it so the ramp restarts "
                  "from half of where it was.")

    smtp_host = models.CharField("SMTP host", max_length=255, blank=True)
    smtp_port = models.PositiveIntegerField("SMTP port", null=True, blank=True,
                                            validators=[MinValueValidator(1), MaxValueValidator(65535)])
    smtp_security = models.CharField("SMTP security", max_length=16, choices=Security.choices,
                                     default=Security.STARTTLS)
    smtp_username = models.CharField("SMTP username", max_length=255, blank=True)
    smtp_password_env = models.CharField("SMTP password variable", max_length=100, blank=True,
                                         validators=[validate_secret_name],
                                         help_text="Name of the environment variable holding the password, "
                                                   "starting with CAM_SECRET_.")
    resend_api_key_env = models.CharField("Resend API key variable", max_length=100, blank=True,
                                          default="CAM_SECRET_RESEND_API_KEY", validators=[validate_secret_name],
                                          help_text="Name of the environment variable holding the API key, "
                                                    "starting with CAM_SECRET_.")
    verp_return_path = models.BooleanField(
        "signed return path (VERP)", default=False,
        help_text="SMTP only. Each email goes out with the envelope sender <local>+b-<signed token>@<domain>, so "
                  "its bounces prove which email they are about even when they carry none of our headers. Turn "
                  "it on only when the mailbox's domain delivers plus addresses (alex+anything@…) to this "
                  "mailbox; otherwise the bounces themselves are lost.")

    imap_host = models.CharField("IMAP host", max_length=255, blank=True,
                                 help_text="Leave empty to not poll for replies.")
    imap_port = models.PositiveIntegerField("IMAP port", null=True, blank=True,
                                            validators=[MinValueValidator(1), MaxValueValidator(65535)])
    imap_security = models.CharField("IMAP security", max_length=16, choices=Security.choices, default=Security.SSL)
    imap_username = models.CharField("IMAP username", max_length=255, blank=True)
    imap_password_env = models.CharField("IMAP password variable", max_length=100, blank=True,
                                         validators=[validate_secret_name],
                                         help_text="Name of the environment variable holding the password, "
                                                   "starting with CAM_SECRET_.")
    last_polled_at = models.DateTimeField(null=True, blank=True)
    last_poll_error = models.TextField(blank=True)
    last_send_error = models.TextField(
        blank=True, help_text="Why the last batch could not send (the server unreachable, the login or API key "
                              "refused); cleared by the next email that goes out.")
    last_send_error_at = models.DateTimeField(null=True, blank=True)

    auth = models.CharField(
        "login", max_length=16, choices=Auth.choices, default=Auth.PASSWORD,
        help_text="SMTP and IMAP only. OAuth2 logs in with SASL XOAUTH2 after someone presses Connect: needed for "
                  "Microsoft 365, and for Google Workspace without app passwords.")
    oauth_provider = models.CharField("OAuth2 provider", max_length=16, choices=OAuthProvider.choices, blank=True)
    # OAuth2: the refresh token the provider handed over when a person connected the mailbox, and the
    # access token last got with it (cached until shortly before it expires), both encrypted.
    oauth_refresh_token = EncryptedTextField("OAuth2 refresh token")
    oauth_access_token = EncryptedTextField("OAuth2 access token")
    oauth_access_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    oauth_account = models.CharField("connected account", max_length=254, blank=True, editable=False)
    oauth_connected_at = models.DateTimeField("connected", null=True, blank=True, editable=False)
    oauth_refreshed_at = models.DateTimeField("token last refreshed", null=True, blank=True, editable=False)
    needs_reconnect = models.BooleanField(
        default=False, editable=False,
        help_text="The provider no longer accepts the OAuth2 grant (revoked, expired): nothing is sent or read "
                  "until someone presses Connect again; the mailbox's leads are held meanwhile.")

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "mailboxes"
        constraints = [
            models.CheckConstraint(condition=Q(daily_cap__gte=1), name="mailbox_daily_cap_positive"),
            models.CheckConstraint(
                condition=Q(smtp_port__isnull=True) | Q(smtp_port__gte=1, smtp_port__lte=65535),
                name="mailbox_smtp_port_range"),
            models.CheckConstraint(
                condition=Q(imap_port__isnull=True) | Q(imap_port__gte=1, imap_port__lte=65535),
                name="mailbox_imap_port_range"),
        ]

    def __str__(self) -> str:
        return f"{self.name} <{self.from_email}>"

    @property
    def sending_domain(self) -> str:
        """The domain its from-address sends from; its ``SendingDomain`` row has the same ``domain``."""
        return self.from_email.rpartition("@")[2].lower()

    def clean(self) -> None:
        super().clean()
        if self.auth == self.Auth.OAUTH2 and not self.oauth_provider:
            raise ValidationError({"oauth_provider": "Choose the provider to connect to for an OAuth2 login."})
        problem = return_path_problem(self.from_email) if self.verp_return_path else ""
        if problem:
            raise ValidationError({"verp_return_path": problem})


MAX_BACKFILL_DAYS = 365


class MailboxFolder(models.Model):
    """An IMAP folder polled for replies, with its watermark.

    UIDs only mean something within one folder and one UIDVALIDITY, so the watermark lives here. A
    folder CAM has not read yet (no UIDVALIDITY) starts from the messages that arrive after its first
    poll, plus those of the last ``backfill_days`` days.
    """

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="folders")
    name = models.CharField(max_length=255, default="INBOX")
    backfill_days = models.PositiveSmallIntegerField(
        "read the last N days", default=0, validators=[MaxValueValidator(MAX_BACKFILL_DAYS)],
        help_text=f"The first poll of this folder reads only what arrives from then on. Enter a number of days "
                  f"(at most {MAX_BACKFILL_DAYS}) to also read the messages the folder received in those last "
                  f"days. It counts only before the first poll (or after the server renumbered the folder).")
    uidvalidity = models.BigIntegerField(null=True, blank=True)
    last_uid = models.BigIntegerField(default=0)
    last_polled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["mailbox", "name"]
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "name"], name="mailbox_folder_unique_name"),
            models.CheckConstraint(condition=Q(backfill_days__lte=MAX_BACKFILL_DAYS),
                                   name="mailbox_folder_backfill_days_range"),
        ]

    def __str__(self) -> str:
        return f"{self.mailbox.name}/{self.name}"


class OutboundEmail(models.Model):
    """One email to one lead: a step of its sequence, or a person's answer to a reply (``kind``).
    (lead, step) is unique: a step is never sent twice. An answer has no step; the key its form was
    given (``idempotency_key``) is unique, so a second submit of the same form sends nothing more."""

    class Kind(models.TextChoices):
        SEQUENCE = "sequence", "Sequence step"
        MANUAL = "manual", "Answer by a person"

    class Status(models.TextChoices):
        PENDING = "PENDING", "Pending"
        # Taken by a sender's batch: goes back to the queue if the sender stops or dies before trying it.
        # The one a batch is handing to the provider right now stays CLAIMED, and is named by the batch's
        # ``SendInFlight`` row (a new version of this wide, many-indexed row for every email would cost
        # the database more than the rest of the email's record).
        CLAIMED = "CLAIMED", "Claimed for sending"
        SENT = "SENT", "Sent"
        RETRY = "RETRY", "Waiting to retry"
        FAILED = "FAILED", "Failed"
        UNKNOWN = "UNKNOWN", "Unknown (check before resending)"
        CANCELLED = "CANCELLED", "Cancelled"

    # Every sent email's commit rewrites this row and each of its table's indexes, so no index is kept that
    # another already serves: lead, campaign and mailbox are each the first column of an index below.
    lead = models.ForeignKey("cam.Lead", on_delete=models.CASCADE, related_name="outbound_emails", db_index=False)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.SEQUENCE)
    step = models.ForeignKey("cam.SequenceStep", on_delete=models.PROTECT, related_name="outbound_emails",
                             null=True, blank=True, help_text="Empty for an answer written by a person.")
    campaign = models.ForeignKey("cam.Campaign", on_delete=models.CASCADE, related_name="outbound_emails",
                                 db_index=False)
    mailbox = models.ForeignKey(Mailbox, on_delete=models.PROTECT, null=True, blank=True,
                                related_name="outbound_emails", db_index=False)
    to_email = LowercaseEmailField(max_length=254)
    from_email = models.CharField(max_length=320, blank=True)
    subject = models.CharField(max_length=998, blank=True)
    body_text = models.TextField(blank=True)
    body_html = models.TextField(blank=True)
    message_id = models.CharField(max_length=255, unique=True, help_text="Our RFC 5322 Message-ID, with <>.")
    in_reply_to = models.CharField(max_length=255, blank=True)
    references = models.TextField(blank=True)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    soft_bounces = models.PositiveSmallIntegerField(default=0, help_text="Soft bounces reported for this email.")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    claimed_by = models.CharField(max_length=200, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    provider = models.CharField(max_length=16, choices=Mailbox.Provider.choices, blank=True)
    provider_message_id = models.CharField(max_length=255, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # The footer's link names the lead, not the email: the lead's latest email when the link was used
    # is the one the unsubscribe counts against in the metrics, as an unsubscribe reply counts against
    # the email it answers.
    unsubscribed_at = models.DateTimeField(
        null=True, blank=True,
        help_text="When the recipient unsubscribed through the link while this was their latest email.")

    # A person's answer: who wrote it, the reply it answers, and its form's key.
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                               related_name="answers_sent", db_index=False)
    answers = models.ForeignKey("cam.InboundEmail", on_delete=models.SET_NULL, null=True, blank=True,
                                related_name="answers", db_index=False)
    idempotency_key = models.CharField(max_length=64, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        # The table name of the earlier deployment, kept so its monitoring queries still run.
        db_table = "outbound_emails"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["lead", "step"], name="outbound_unique_lead_step"),
            models.UniqueConstraint(fields=["idempotency_key"], condition=~Q(idempotency_key=""),
                                    name="outbound_unique_idempotency_key"),
            # A sequence email has its step; an answer has none.
            models.CheckConstraint(
                condition=Q(kind="sequence", step__isnull=False) | Q(kind="manual", step__isnull=True),
                name="outbound_kind_has_step"),
        ]
        indexes = [
            # The sender's hot filter: one mailbox's emails waiting to be claimed, in the order they are claimed,
            # so a claim reads its batch and stops, however many are due (a plan writes thousands at one time).
            models.Index(fields=["mailbox", "next_attempt_at", "id"],
                         condition=Q(status__in=["PENDING", "RETRY"], kind="sequence"), name="outbound_ready_idx"),
            # Also recovery's: the emails in a sender's hands (CLAIMED), whose sender may be gone.
            models.Index(fields=["status", "created_at"], name="outbound_status_created_idx"),
            # Daily caps count emails per mailbox and campaign since a time; metrics count sends.
            models.Index(fields=["mailbox", "created_at"], name="outbound_mailbox_created_idx"),
            models.Index(fields=["campaign", "created_at"], name="outbound_campaign_created_idx"),
            models.Index(fields=["campaign", "sent_at"], condition=Q(sent_at__isnull=False),
                         name="outbound_campaign_sent_at_idx"),
            # The rules step reads each campaign's last sends from this alone, newest first (cam.decisions).
            models.Index(fields=["campaign", "sent_at", "id"], condition=Q(status="SENT", kind="sequence"),
                         name="outbound_campaign_sends_idx"),
            # The metrics step counts failed emails per campaign and mailbox from this alone (cam.decisions).
            models.Index(fields=["campaign", "mailbox"], include=["sent_at", "updated_at"],
                         condition=Q(status="FAILED", kind="sequence"), name="outbound_failed_idx"),
            # The dashboard counts sends by when they went out (cam.reporting): the day's, the week's, per day.
            models.Index(fields=["sent_at"], condition=Q(status="SENT", kind="sequence"), name="outbound_sent_idx"),
            # The metrics step's look for emails unsubscribed from by link since it last counted.
            models.Index(fields=["unsubscribed_at"], condition=Q(unsubscribed_at__isnull=False),
                         name="outbound_unsubscribed_idx"),
            # Sent emails only: the provider's events and bounces name the email by this. Claimed versions of a row
            # (one per email, rewritten when it is sent) stay out of it, and out of the one just below.
            models.Index(fields=["provider_message_id"], condition=~Q(provider_message_id=""),
                         name="outbound_sent_msgid_idx"),
            # "Already contacted?" is asked by address, across campaigns.
            models.Index(fields=["to_email"], name="outbound_to_email_idx"),
            # The outbound list: newest first, without sorting millions of emails.
            models.Index(fields=["-created_at", "-id"], name="outbound_created_idx"),
            # A person's answers only: the sequence's emails (nearly all) have neither, and stay out of these.
            models.Index(fields=["author"], condition=Q(author__isnull=False), name="outbound_author_idx"),
            models.Index(fields=["answers"], condition=Q(answers__isnull=False), name="outbound_answers_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.to_email} · {f'step {self.step.position}' if self.step else 'answer'} · {self.status}"


class SendInFlight(models.Model):
    """The one email a sender (a batch, or a person's answer) has in the provider's hands right now.

    Written in the same commit as the previous email's outcome, before the next email's data goes out:
    a sender that dies leaves its email here, and ``outbound_recover_stuck`` makes it ``UNKNOWN`` (or
    ``RETRY`` where the provider is idempotent) while the rest of its claim goes back to the queue. One
    row per sender, whose email changes with every email sent: the email's own row is wide and in a dozen
    indexes, so a new version of it per email cost the database as much as recording the outcome; this
    row is in one index (the holder's), which the change leaves alone, so its update is written in place.
    Writers that take claimed emails away (cancelling) lock them first and then leave the ones in flight
    (``cam.in_flight``).
    """

    holder = models.CharField(max_length=200, primary_key=True, help_text="The sender's claim (``claimed_by``).")
    # No foreign key constraint: its check would lock the email's row on every change, a write of its own.
    email = models.ForeignKey(OutboundEmail, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False,
                              related_name="+")

    class Meta:
        db_table = "outbound_in_flight"

    def __str__(self) -> str:
        return f"{self.holder} → {self.email_id}"


# Reply triage (the back office's list of replies): warm replies first (positive, referral, question: a person
# must answer them today), then the bounces and complaints waiting for a person to confirm them, then what is not
# processed yet, then the replies matched to no lead, then the rest; newest first within each. InboundEmail's
# ``inbound_triage_idx`` holds this very expression, so the list reads its first page off the index.
TRIAGE_RANK = Case(
    When(category__in=["POSITIVE", "REFERRAL", "QUESTION"], then=Value(0)),
    When(confirmation="NEEDED", then=Value(1)),
    When(processed_at__isnull=True, then=Value(2)),
    When(lead__isnull=True, then=Value(3)),
    default=Value(4), output_field=IntegerField())
TRIAGE_ORDER = [TRIAGE_RANK.asc(), F("created_at").desc(), F("id").desc()]

# The reply desk (the back office's inbox, cam.admin.desk) sorts what people wrote from what machines sent.
# People: the replies a person reads and answers, warmest first: positive, question, referral, then the no's and
# the maybe's, then the requests to stop, then what could not be read yet (not processed, or unreadable).
# Machines: out-of-office notices, automatic replies, bounces and complaints, on their own tab.
PEOPLE_CATEGORIES = ("POSITIVE", "QUESTION", "REFERRAL", "NEGATIVE", "NEUTRAL", "UNSUBSCRIBE", "")
AUTOMATIC_CATEGORIES = ("OUT_OF_OFFICE", "AUTO_REPLY", "BOUNCE_HARD", "BOUNCE_SOFT", "COMPLAINT", "AUTH_FAILURE")
DESK_RANK = Case(
    When(category="POSITIVE", then=Value(0)),
    When(category="QUESTION", then=Value(1)),
    When(category="REFERRAL", then=Value(2)),
    When(category__in=["NEGATIVE", "NEUTRAL"], then=Value(3)),
    When(category="UNSUBSCRIBE", then=Value(4)),
    default=Value(5), output_field=IntegerField())
DESK_ORDER = [DESK_RANK.asc(), F("created_at").desc(), F("id").desc()]
# The desk's hot filter: what people wrote that nobody has handled yet. ``inbound_desk_idx`` holds exactly
# this, in the desk's order, so the inbox and its sidebar badge read a few index entries whatever the table's size.
DESK_WAITING = Q(handled_at__isnull=True, category__in=PEOPLE_CATEGORIES)


class InboundEmail(models.Model):
    """A message read from a mailbox's IMAP folder, kept whether or not it matched anything."""

    class Category(models.TextChoices):
        POSITIVE = "POSITIVE", "Positive"
        NEGATIVE = "NEGATIVE", "Negative"
        UNSUBSCRIBE = "UNSUBSCRIBE", "Unsubscribe request"
        OUT_OF_OFFICE = "OUT_OF_OFFICE", "Out of office"
        AUTO_REPLY = "AUTO_REPLY", "Automatic reply"
        BOUNCE_HARD = "BOUNCE_HARD", "Hard bounce"
        BOUNCE_SOFT = "BOUNCE_SOFT", "Soft bounce"
        COMPLAINT = "COMPLAINT", "Complaint"
        # An RFC 6591 report that a message claiming our domain failed SPF, DKIM or DMARC: about the
        # domain's set-up, not a person's answer; it changes no lead.
        AUTH_FAILURE = "AUTH_FAILURE", "Authentication failure report"
        REFERRAL = "REFERRAL", "Referral"
        QUESTION = "QUESTION", "Question"
        NEUTRAL = "NEUTRAL", "Neutral"

    class Confirmation(models.TextChoices):
        NEEDED = "NEEDED", "Needs confirming"
        CONFIRMED = "CONFIRMED", "Confirmed by a person"
        DISMISSED = "DISMISSED", "Dismissed by a person"

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="inbound_emails")
    folder = models.CharField(max_length=255, default="INBOX")
    uidvalidity = models.BigIntegerField()
    uid = models.BigIntegerField()
    message_id = models.CharField(max_length=255, blank=True)
    in_reply_to = models.CharField(max_length=255, blank=True)
    references = models.TextField(blank=True)
    from_email = LowercaseEmailField(max_length=254, blank=True)
    from_name = models.CharField(max_length=200, blank=True)
    subject = models.CharField(max_length=998, blank=True)
    received_at = models.DateTimeField(null=True, blank=True)
    new_text = models.TextField(blank=True, help_text="The reply's own words, quotes and signature removed.")
    raw_message = models.BinaryField(blank=True, help_text="The raw message, cut at the configured size.")
    raw_truncated = models.BooleanField(default=False)

    outbound_email = models.ForeignKey(OutboundEmail, on_delete=models.SET_NULL, null=True, blank=True,
                                       related_name="replies")
    lead = models.ForeignKey("cam.Lead", on_delete=models.SET_NULL, null=True, blank=True,
                             related_name="inbound_emails")

    category = models.CharField(max_length=16, choices=Category.choices, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    classification_reasons = models.JSONField(default=list, blank=True)
    classified_at = models.DateTimeField(null=True, blank=True)
    classified_by = models.CharField(max_length=150, blank=True,
                                     help_text="The classifier, or the staff member who corrected it.")
    failed_recipients = models.JSONField(default=list, blank=True)
    bounce_status_code = models.CharField(max_length=16, blank=True)
    return_date = models.DateField(null=True, blank=True, help_text="When an out-of-office sender is back.")
    referral_email = LowercaseEmailField(max_length=254, blank=True)
    reported_domain = models.CharField(
        max_length=253, blank=True,
        help_text="For an authentication failure report: the domain whose SPF, DKIM or DMARC failed.")
    # A bounce or complaint changes a lead only when it proves it is about an email we sent (our
    # Message-ID, or our signed return path): anyone can write "MAILER-DAEMON" and name an address.
    confirmation = models.CharField(
        max_length=16, choices=Confirmation.choices, blank=True,
        help_text="Needs confirming: a bounce or complaint that carries none of our Message-IDs and not our signed "
                  "return path, held without changing its lead until a person confirms or dismisses it.")
    confirmation_by = models.CharField(max_length=150, blank=True, help_text="Who confirmed or dismissed it.")
    confirmation_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    alert_sent = models.BooleanField(default=False)

    # The reply desk (cam.inbox.desk): who takes care of the reply, and whether it is done.
    handled_at = models.DateTimeField(null=True, blank=True,
                                      help_text="When a person marked the reply handled (answered, or nothing to do).")
    # Never filtered on: no index of its own.
    handled_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   db_index=False, related_name="replies_handled",
                                   help_text="Who marked it handled; empty when an API key did.")
    assigned_to = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                    related_name="replies_assigned", help_text="The staff member who answers it.")

    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # A reply is processed once. UIDs are only unique within one folder and UIDVALIDITY.
            models.UniqueConstraint(fields=["mailbox", "folder", "uidvalidity", "uid"],
                                    name="inbound_unique_mailbox_uid"),
            models.CheckConstraint(condition=Q(confidence__isnull=True) | Q(confidence__gte=0, confidence__lte=1),
                                   name="inbound_confidence_0_1"),
        ]
        indexes = [
            models.Index(fields=["created_at"], condition=Q(processed_at__isnull=True),
                         name="inbound_unprocessed_idx"),
            models.Index(fields=["message_id"], name="inbound_message_id_idx"),
            models.Index(fields=["category", "created_at"], name="inbound_category_idx"),
            models.Index(*TRIAGE_ORDER, name="inbound_triage_idx"),
            models.Index(*DESK_ORDER, condition=DESK_WAITING, name="inbound_desk_idx"),
            # The dashboard counts what arrived in a period, every category at once (cam.reporting).
            models.Index(fields=["created_at"], name="inbound_created_idx"),
            # The metrics step's look for replies classified, reclassified, confirmed or dismissed since it
            # last counted.
            models.Index(fields=["classified_at"], name="inbound_classified_idx"),
            models.Index(fields=["confirmation_at"], condition=Q(confirmation_at__isnull=False),
                         name="inbound_confirmation_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.from_email or '(unknown sender)'}: {self.subject[:60]}"

    @property
    def needs_confirmation(self) -> bool:
        return self.confirmation == self.Confirmation.NEEDED


class Reply(InboundEmail):
    """An inbound email as the reply desk shows it (the back office's inbox and a conversation's thread).

    The same rows; a second admin of its own. It has no permissions of its own either: the desk asks the
    inbound emails' (view to read, change to work the replies), as the API does."""

    class Meta:
        proxy = True
        default_permissions = ()
        verbose_name = "reply"
        verbose_name_plural = "replies"

    def __str__(self) -> str:
        return self.from_name or self.from_email or f"Reply #{self.pk}"


class ProviderEvent(models.Model):
    """A delivery event a provider reported by webhook (delivered, bounced, complained), kept once.

    ``(provider, event_id)`` is unique, so a replayed webhook changes nothing the second time.
    """

    provider = models.CharField(max_length=16, choices=Mailbox.Provider.choices)
    event_id = models.CharField(max_length=255)
    event_type = models.CharField(max_length=32)
    provider_message_id = models.CharField(max_length=255, blank=True)
    outbound_email = models.ForeignKey(OutboundEmail, on_delete=models.SET_NULL, null=True, blank=True,
                                       related_name="provider_events")
    recipient = LowercaseEmailField(max_length=254, blank=True)
    description = models.TextField(blank=True)
    payload = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "event_id"], name="provider_event_unique_id"),
        ]
        indexes = [
            # The events' list: newest first (one event per delivered email).
            models.Index(fields=["-received_at", "-id"], name="provider_event_received_idx"),
            # The dashboard counts a period's bounces and complaints; "delivered", most events, is left out.
            models.Index(fields=["received_at"], condition=Q(event_type__in=["bounced", "complained"]),
                         name="provider_event_outcome_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.event_type} {self.provider_message_id}"


class AnswerSnippet(models.Model):
    """A saved answer (a meeting link, a price sheet's summary) inserted into an answer to a reply, with
    the same template variables as a sequence step: ``{{ first_name }}``, ``{{ company }}``, …"""

    name = models.CharField(max_length=100, unique=True, help_text="What staff pick it by, e.g. “Meeting link”.")
    body = models.TextField(help_text="The text inserted, with the variables of a sequence step, e.g. "
                                      "“Hi {{ first_name }}, here is my calendar: https://cal.example.com/alex”.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
