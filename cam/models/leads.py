"""Leads, where they come from, and who must never be mailed."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Q, Value
from django.db.models.functions import StrIndex, Substr

from cam.addresses import RejectedAddress, address_spellings, normalize_address
from cam.models.fields import LowercaseCharField, LowercaseEmailField, validate_domain, validate_timezone
from cam.sources.base import config_check


class LeadSource(models.Model):
    """Where a campaign's leads are harvested from (a CSV file, an HTTP JSON API, …)."""

    class Kind(models.TextChoices):
        CSV = "csv", "CSV file"
        HTTP_JSON = "http_json", "HTTP JSON API"

    campaign = models.ForeignKey("cam.Campaign", on_delete=models.CASCADE, related_name="sources")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    config = models.JSONField(default=dict, blank=True,
                              help_text="Settings of this kind of source (path, URL, column mapping, …). "
                                        "Secrets are named by environment variable, never written here.")
    enabled = models.BooleanField(default=True)
    last_harvest_at = models.DateTimeField(null=True, blank=True)
    last_harvest_counts = models.JSONField(default=dict, blank=True)
    last_error = models.TextField(blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["campaign", "name"]
        constraints = [models.UniqueConstraint(fields=["campaign", "name"], name="lead_source_unique_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    def clean(self) -> None:
        if self.kind:
            config_check(self.kind, self.config)


# The outcomes the dashboard counts by when the lead reached them (``cam.reporting``): ``lead_outcome_changed_idx``
# holds these leads only. Lead.Status's values, written out: the index below is built while the class is.
REPORTED_OUTCOMES = ("MEETING_BOOKED", "UNSUBSCRIBED", "WON")


class Lead(models.Model):
    class Status(models.TextChoices):
        NEW = "NEW", "New"
        QUALIFIED = "QUALIFIED", "Qualified"
        DISQUALIFIED = "DISQUALIFIED", "Disqualified"
        IN_SEQUENCE = "IN_SEQUENCE", "In sequence"
        PAUSED = "PAUSED", "Paused"
        INTERESTED = "INTERESTED", "Interested"
        REFERRED = "REFERRED", "Referred us to someone else"
        MEETING_BOOKED = "MEETING_BOOKED", "Meeting booked"
        NOT_INTERESTED = "NOT_INTERESTED", "Not interested"
        NURTURE = "NURTURE", "Nurture"
        DEAD = "DEAD", "Dead"
        BOUNCED = "BOUNCED", "Bounced"
        UNSUBSCRIBED = "UNSUBSCRIBED", "Unsubscribed"
        WON = "WON", "Won"
        LOST = "LOST", "Lost"

    class BlockedReason(models.TextChoices):
        """Why a lead that is due was not sent this time (cleared when it is sent)."""

        OUTSIDE_WINDOW = "outside_window", "Outside the send window"
        MAILBOX_CAP = "mailbox_cap", "Mailbox daily cap reached"
        MAILBOX_GAP = "mailbox_gap", "Mailbox minimum gap not yet passed"
        CAMPAIGN_CAP = "campaign_cap", "Campaign daily cap reached"
        SUPPRESSED = "suppressed", "Address or domain suppressed"
        CAMPAIGN_PAUSED = "campaign_paused", "Campaign not active"
        NO_MAILBOX = "no_mailbox", "No active mailbox"
        NO_STEP = "no_step", "No sequence step to send"
        TEMPLATE_ERROR = "template_error", "The step's template does not render"
        SEND_FAILED = "send_failed", "The provider refused the email"
        SEND_UNKNOWN = "send_unknown", "Unknown whether the email went out"
        CANCELLED = "cancelled", "Email cancelled by staff"
        MAILBOX_PACE = "mailbox_pace", "Mailbox warm-up or pacing allowance used"
        MAILBOX_DISCONNECTED = "mailbox_disconnected", "Mailbox must be reconnected"
        DOMAIN_NOT_AUTHENTICATED = "domain_not_authenticated", "Sending domain fails SPF or DMARC"

    # No index of its own: the unique (campaign, email) index starts with it, and one index fewer is
    # faster to keep up for each lead an import writes.
    campaign = models.ForeignKey("cam.Campaign", on_delete=models.CASCADE, related_name="leads", db_index=False)
    email = LowercaseEmailField(max_length=254)
    # Derived by the database so no write path can forget it: domain suppression and grouping use it.
    email_domain = models.GeneratedField(
        expression=Substr("email", StrIndex("email", Value("@")) + 1),
        output_field=models.CharField(max_length=253),
        db_persist=True,
    )
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    company = models.CharField(max_length=200, blank=True)
    title = models.CharField("job title", max_length=200, blank=True)
    industry = models.CharField(max_length=100, blank=True)
    country = models.CharField(max_length=100, blank=True)
    company_size = models.PositiveIntegerField(null=True, blank=True)
    website = models.URLField(max_length=500, blank=True)
    timezone = models.CharField(max_length=64, blank=True, validators=[validate_timezone],
                                help_text="The lead's own time zone, when known; sends follow it.")
    is_role_account = models.BooleanField(default=False, help_text="info@, sales@ and the like.")
    is_free_mail = models.BooleanField(default=False, help_text="gmail.com, outlook.com and the like.")

    # Provenance.
    source = models.ForeignKey(LeadSource, on_delete=models.SET_NULL, null=True, blank=True, related_name="leads")
    harvested_at = models.DateTimeField(null=True, blank=True)
    raw_data = models.JSONField(default=dict, blank=True, help_text="The record as the source gave it.")

    score = models.PositiveSmallIntegerField(null=True, blank=True, validators=[MaxValueValidator(100)])
    score_breakdown = models.JSONField(default=dict, blank=True)
    scored_at = models.DateTimeField(null=True, blank=True)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    status_reason = models.TextField(blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)

    # Where the lead is in its sequence: the position of the last step sent (0 = none yet).
    current_step = models.PositiveSmallIntegerField(default=0)
    next_send_at = models.DateTimeField(null=True, blank=True)
    blocked_reason = models.CharField(max_length=32, choices=BlockedReason.choices, blank=True)
    paused_until = models.DateTimeField(null=True, blank=True, help_text="Out of office until this time.")
    # Indexed only where set (``lead_mailbox_idx``): a lead has none until its first email is planned.
    mailbox = models.ForeignKey("cam.Mailbox", on_delete=models.SET_NULL, null=True, blank=True, db_index=False,
                                related_name="leads", help_text="The mailbox that sent the first email; "
                                                                "follow-ups use it too.")
    last_contacted_at = models.DateTimeField(null=True, blank=True)
    replied_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "email"], name="lead_unique_email_per_campaign"),
            models.CheckConstraint(condition=Q(score__isnull=True) | Q(score__lte=100), name="lead_score_0_100"),
            models.CheckConstraint(condition=~Q(email=""), name="lead_email_not_empty"),
        ]
        indexes = [
            # The send step's hot filter: leads in sequence whose next email is due.
            models.Index(fields=["next_send_at"], condition=Q(status="IN_SEQUENCE"), name="lead_due_idx"),
            # On PostgreSQL it also carries last_contacted_at and replied_at (migration 0014), so the
            # dashboard's funnels (cam.reporting.campaign_funnels) are counted from the index alone.
            models.Index(fields=["campaign", "status"], name="lead_campaign_status_idx"),
            # Leads with a meeting booked, won or unsubscribed in a period, across campaigns (the dashboard,
            # cam.reporting); only those: every other lead's import, qualification and email sent would write an
            # entry no query reads.
            models.Index(fields=["status", "status_changed_at"], condition=Q(status__in=list(REPORTED_OUTCOMES)),
                         name="lead_outcome_changed_idx"),
            # The mailbox's leads (its deletion, the admin's filter): most leads have none yet.
            models.Index(fields=["mailbox"], condition=Q(mailbox__isnull=False), name="lead_mailbox_idx"),
            # One active sequence per address across campaigns; suppression by domain.
            models.Index(fields=["email"], name="lead_email_idx"),
            models.Index(fields=["email_domain"], name="lead_email_domain_idx"),
            models.Index(fields=["paused_until"], condition=Q(status="PAUSED"), name="lead_paused_until_idx"),
            # A campaign's held-back leads by reason, the one due longest first (cam.diagnose): read from the
            # index alone, without sorting the campaign's leads.
            models.Index(fields=["campaign", "blocked_reason", "next_send_at", "id"],
                         condition=Q(status="IN_SEQUENCE") & ~Q(blocked_reason=""), name="lead_held_back_idx"),
            # The lead lists (admin and API): newest first, whole or by status, without sorting the table.
            models.Index(fields=["-created_at", "-id"], name="lead_created_idx"),
            models.Index(fields=["status", "-created_at", "-id"], name="lead_status_created_idx"),
        ]

    def __str__(self) -> str:
        return self.email

    def clean(self) -> None:
        """A lead typed into the admin is spelled as every other door stores it (``cam.addresses``: the
        domain in Unicode, lower case), and is refused when the campaign has it in another spelling."""
        if not self.email:
            return
        try:
            self.email = normalize_address(self.email, allow_reserved=True).email
        except RejectedAddress as exc:
            raise ValidationError({"email": str(exc)}) from None
        if self.campaign_id is None:
            return
        same = (Lead.objects.filter(campaign_id=self.campaign_id, email__in=address_spellings(self.email))
                .exclude(pk=self.pk).values_list("email", flat=True).first())
        if same is not None:
            raise ValidationError({"email": f"Already a lead of this campaign as {same}."})

    @property
    def full_name(self) -> str:
        return " ".join(part for part in (self.first_name, self.last_name) if part)


class LeadEvent(models.Model):
    """One change of a lead's status: from what, to what, who or what did it, when and why."""

    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="events")
    from_status = models.CharField(max_length=16, choices=Lead.Status.choices)
    to_status = models.CharField(max_length=16, choices=Lead.Status.choices)
    actor = models.CharField(max_length=200, help_text="A person (staff:<name>) or a part of CAM (system:<part>).")
    reason = models.TextField(blank=True)
    inbound_email = models.ForeignKey("cam.InboundEmail", on_delete=models.SET_NULL, null=True, blank=True,
                                      related_name="lead_events")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["lead", "created_at"], name="lead_event_lead_idx"),
                   # The events' list: newest first.
                   models.Index(fields=["-created_at", "-id"], name="lead_event_created_idx")]

    def __str__(self) -> str:
        return f"{self.lead_id}: {self.from_status} → {self.to_status}"


class HarvestRejection(models.Model):
    """A harvested record that did not become a lead, kept with the reason so staff can fix the source."""

    campaign = models.ForeignKey("cam.Campaign", on_delete=models.CASCADE, related_name="harvest_rejections")
    source = models.ForeignKey(LeadSource, on_delete=models.SET_NULL, null=True, blank=True,
                               related_name="rejections")
    job_execution = models.ForeignKey("cam.JobExecution", on_delete=models.SET_NULL, null=True, blank=True,
                                      related_name="harvest_rejections")
    line = models.PositiveIntegerField(null=True, blank=True, help_text="Line in the file, or item number.")
    email = models.CharField(max_length=320, blank=True, help_text="The address as the source gave it.")
    reason = models.TextField()
    raw_data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "line", "id"]
        indexes = [models.Index(fields=["campaign", "created_at"], name="rejection_campaign_idx")]

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else "record"
        return f"{where}: {self.reason}"


class Suppression(models.Model):
    """An address or a whole domain that CAM never mails, in any campaign."""

    class Reason(models.TextChoices):
        UNSUBSCRIBED = "UNSUBSCRIBED", "Unsubscribed"
        HARD_BOUNCE = "HARD_BOUNCE", "Hard bounce"
        COMPLAINT = "COMPLAINT", "Complaint"
        MANUAL = "MANUAL", "Added by staff"

    email = LowercaseEmailField(max_length=254, blank=True)
    domain = LowercaseCharField(max_length=253, blank=True, validators=[validate_domain],
                                help_text="Suppress every address at this domain.")
    reason = models.CharField(max_length=16, choices=Reason.choices, default=Reason.MANUAL)
    source = models.CharField(max_length=200, blank=True, help_text="What added it: a reply, a webhook, a person.")
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=(Q(email="") & ~Q(domain="")) | (~Q(email="") & Q(domain="")),
                                   name="suppression_email_xor_domain"),
            models.UniqueConstraint(fields=["email"], condition=~Q(email=""), name="suppression_unique_email"),
            models.UniqueConstraint(fields=["domain"], condition=~Q(domain=""), name="suppression_unique_domain"),
        ]
        # The suppressions' list: newest first.
        indexes = [models.Index(fields=["-created_at", "-id"], name="suppression_created_idx")]

    def __str__(self) -> str:
        return self.email or f"@{self.domain}"
