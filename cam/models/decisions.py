"""What the worker measures and decides: metric snapshots, campaign rules and the decisions they made."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Case, DateTimeField, F, Q, Subquery, Value, When
from django.db.models.functions import Coalesce, Greatest


def percent_text(value) -> str:
    """A percentage for people: 5.00 → "5", 0.30 → "0.3", 7.1428 → "7.14"."""
    if value is None:
        return "?"
    text = f"{Decimal(str(value)).quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


class Scope(models.TextChoices):
    CAMPAIGN = "campaign", "Campaign"
    MAILBOX = "mailbox", "Mailbox"


class MetricSnapshot(models.Model):
    """The latest metrics of one campaign or one mailbox, over the rolling window and all time.

    One row per subject (``key`` is ``campaign:<id>`` or ``mailbox:<id>``), overwritten by each
    ``metrics_compute`` whose counts for it differ; the dashboard and the API read it instead of counting
    emails again. ``computed_at`` is when its counts were last written; when they were last computed (the same
    or later) is ``snapshot_computed_at``.
    """

    key = models.CharField(max_length=64, unique=True)
    scope = models.CharField(max_length=16, choices=Scope.choices)
    campaign = models.ForeignKey("cam.Campaign", on_delete=models.CASCADE, null=True, blank=True,
                                 related_name="metric_snapshots")
    mailbox = models.ForeignKey("cam.Mailbox", on_delete=models.CASCADE, null=True, blank=True,
                                related_name="metric_snapshots")
    window_days = models.PositiveSmallIntegerField()
    window = models.JSONField(default=dict, blank=True, help_text="Counts and rates over the last window_days.")
    all_time = models.JSONField(default=dict, blank=True, help_text="Counts and rates since the first send.")
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["scope", "key"]
        constraints = [
            models.CheckConstraint(
                condition=Q(scope="campaign", campaign__isnull=False, mailbox__isnull=True)
                | Q(scope="mailbox", mailbox__isnull=False, campaign__isnull=True),
                name="metric_snapshot_one_subject"),
        ]

    def __str__(self) -> str:
        return f"Metrics of {self.key}"


class MetricDay(models.Model):
    """One UTC day of one campaign's or mailbox's sent sequence emails, counted by what became of each
    (``cam.decisions``): the days the metrics step adds up instead of counting two million emails a cycle.

    Rewritten whole, for every subject, when something that changes a count happens to an email sent that
    day (a send, a reply read or reclassified, a bounce confirmed, a provider's event, an unsubscribe by
    link); ``MetricCursor`` remembers up to when those were looked for. No foreign key: a subject's days
    go unread once it is gone, and deleting a campaign does not wait on them.
    """

    scope = models.CharField(max_length=16, choices=Scope.choices)
    subject_id = models.BigIntegerField()
    day = models.DateField()
    sent = models.PositiveIntegerField(default=0)
    bounced_hard = models.PositiveIntegerField(default=0)
    bounced_soft = models.PositiveIntegerField(default=0)
    complaints = models.PositiveIntegerField(default=0)
    replies = models.PositiveIntegerField(default=0)
    positive = models.PositiveIntegerField(default=0)
    negative = models.PositiveIntegerField(default=0)
    unsubscribes = models.PositiveIntegerField(default=0)
    out_of_office = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["scope", "subject_id", "day"]
        constraints = [models.UniqueConstraint(fields=["scope", "subject_id", "day"], name="metric_day_unique")]
        indexes = [models.Index(fields=["day"], name="metric_day_day_idx")]

    def __str__(self) -> str:
        return f"{self.scope}:{self.subject_id} {self.day}"


class MetricCursor(models.Model):
    """A point in time the worker's metrics and rules steps keep between cycles (``cam.decisions``): up to when
    the metrics step looked for changed emails ("days"), where its window started ("window") and when it last
    computed ("metrics_computed"); when the rules step began ("rules"), the time it measured at ("rules_clock")
    and when it last measured every rule afresh ("rules_full"); and up to which hour the job runs are rolled up
    into ``JobRunHour`` ("job_run_hours", ``cam.jobs.run_hours``)."""

    name = models.CharField(max_length=32, unique=True)
    scanned_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name}: {self.scanned_at}"


# The ``MetricCursor`` with when ``metrics_compute`` last ran (its ``now``): every snapshot was computed then,
# whether or not its counts changed (an unchanged one is not rewritten).
METRICS_COMPUTED = "metrics_computed"


def snapshot_computed_at(field: str) -> Case:
    """When the metrics of the snapshot whose ``computed_at`` is at ``field`` (``"computed_at"``, or a path to
    it such as ``"metric_snapshots__computed_at"``) were last computed: the last computation, or its own
    ``computed_at`` when that is later (or there is no record of one yet); None without a snapshot. A
    subquery, not a query of its own."""
    computed = MetricCursor.objects.filter(name=METRICS_COMPUTED).values("scanned_at")[:1]
    return Case(When(**{f"{field}__isnull": True}, then=Value(None)),
                default=Greatest(F(field), Coalesce(Subquery(computed), F(field))), output_field=DateTimeField())


class CampaignRule(models.Model):
    """A guard rail as data: when ``metric`` over the last ``window`` sends is above (or below)
    ``threshold`` percent, with at least ``min_sample`` sends measured, ``action`` is applied. With
    ``min_age_days``, only sends at least that old are measured (the last ``window`` of those)."""

    class Metric(models.TextChoices):
        HARD_BOUNCE_RATE = "hard_bounce_rate", "Hard-bounce rate"
        COMPLAINT_RATE = "complaint_rate", "Complaint rate"
        POSITIVE_REPLY_RATE = "positive_reply_rate", "Positive-reply rate"
        REPLY_RATE = "reply_rate", "Reply rate"
        UNSUBSCRIBE_RATE = "unsubscribe_rate", "Unsubscribe rate"

    class Comparison(models.TextChoices):
        ABOVE = "above", "is above"
        BELOW = "below", "is below"

    class Action(models.TextChoices):
        PAUSE = "PAUSE", "Pause the campaign"
        DEGRADE = "DEGRADE", "Mark the campaign degraded"

    campaign = models.ForeignKey("cam.Campaign", on_delete=models.CASCADE, related_name="rules")
    metric = models.CharField(max_length=32, choices=Metric.choices)
    comparison = models.CharField(max_length=8, choices=Comparison.choices, default=Comparison.ABOVE)
    threshold = models.DecimalField(max_digits=5, decimal_places=2,
                                    validators=[MinValueValidator(0), MaxValueValidator(100)],
                                    help_text="In percent (0–100).")
    window = models.PositiveIntegerField(default=100, validators=[MinValueValidator(1)],
                                         help_text="Measure over the last this many sends (of the campaign, or of "
                                                   "each mailbox for the campaign).")
    min_sample = models.PositiveIntegerField(default=20, validators=[MinValueValidator(1)],
                                             help_text="Do nothing until at least this many sends are measured.")
    # A reply takes days: a rule on replies that counted this week's sends would read them as unanswered.
    min_age_days = models.PositiveSmallIntegerField(
        "only sends older than (days)", default=0, validators=[MaxValueValidator(365)],
        help_text="Measure only sends at least this many days old, which have had time to be answered "
                  "(0: every send). The positive-reply rule waits 5 days.")
    scope = models.CharField(
        max_length=16, choices=Scope.choices, default=Scope.CAMPAIGN,
        help_text="Campaign: the campaign's sends, all mailboxes together. Mailbox: each mailbox's sends for "
                  "this campaign, judged one by one, so one bad sending identity fires the rule even when the "
                  "campaign as a whole looks fine.")
    action = models.CharField(max_length=8, choices=Action.choices, default=Action.PAUSE)
    enabled = models.BooleanField(default=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["campaign", "pk"]
        constraints = [
            models.CheckConstraint(condition=Q(threshold__gte=0, threshold__lte=100),
                                   name="campaign_rule_threshold_0_100"),
            models.CheckConstraint(condition=Q(window__gte=1, min_sample__gte=1),
                                   name="campaign_rule_window_positive"),
            # Evaluation reads these as words: a stray value would silently mean the other branch.
            models.CheckConstraint(condition=Q(comparison__in=["above", "below"]),
                                   name="campaign_rule_comparison_known"),
            models.CheckConstraint(condition=Q(action__in=["PAUSE", "DEGRADE"]), name="campaign_rule_action_known"),
            models.CheckConstraint(condition=Q(scope__in=["campaign", "mailbox"]), name="campaign_rule_scope_known"),
            models.CheckConstraint(
                condition=Q(metric__in=["hard_bounce_rate", "complaint_rate", "positive_reply_rate", "reply_rate",
                                        "unsubscribe_rate"]),
                name="campaign_rule_metric_known"),
        ]

    def __str__(self) -> str:
        per_mailbox = " (per mailbox)" if self.scope == Scope.MAILBOX else ""
        return (f"{self.campaign}: {self.get_metric_display()}{per_mailbox} {self.get_comparison_display()} "
                f"{percent_text(self.threshold)} % "
                f"→ {self.get_action_display().lower()}")


class RuleMeasurement(models.Model):
    """What one rule last measured (``cam.decisions.rules_measure``): kept so that a cycle measures again only
    the rules of campaigns whose sends or outcomes changed since, or whose window or age cutoff moved past a
    send. ``basis`` names what the measurement was of (the rule's metric, scope, window, age and the floor of
    its last decision): a measurement of anything else is not used. ``measured``: per mailbox (None for a
    campaign rule) ``[mailbox_id, sample, hits, newest sent_at]``."""

    rule = models.OneToOneField(CampaignRule, on_delete=models.CASCADE, primary_key=True, related_name="measurement")
    basis = models.CharField(max_length=200)
    measured = models.JSONField(default=list, blank=True)

    def __str__(self) -> str:
        return f"Measurement of rule {self.rule_id}"


class RuleDecision(models.Model):
    """A rule that fired, or a degrade rule that cleared: what it measured, on which sends, and what it did.

    ``evidence_until`` is the ``sent_at`` of the newest send measured: the rule only counts sends
    after it next time, so it does not fire again on the same evidence after a resume.
    """

    class Action(models.TextChoices):
        PAUSE = "PAUSE", "Pause the campaign"
        DEGRADE = "DEGRADE", "Mark the campaign degraded"
        # The degrade rule that set the campaign degraded no longer holds on the sends made since.
        CLEAR = "CLEAR", "Set the campaign active again (the rule cleared)"

    rule = models.ForeignKey(CampaignRule, on_delete=models.CASCADE, related_name="decisions")
    campaign = models.ForeignKey("cam.Campaign", on_delete=models.CASCADE, related_name="rule_decisions")
    mailbox = models.ForeignKey("cam.Mailbox", on_delete=models.SET_NULL, null=True, blank=True,
                                related_name="rule_decisions",
                                help_text="For a mailbox rule: the mailbox whose sends fired it.")
    metric = models.CharField(max_length=32, choices=CampaignRule.Metric.choices)
    measured_value = models.DecimalField(max_digits=7, decimal_places=3, help_text="In percent.")
    threshold = models.DecimalField(max_digits=5, decimal_places=2, help_text="In percent, as it was then.")
    sample_size = models.PositiveIntegerField()
    action = models.CharField(max_length=8, choices=Action.choices)
    status_before = models.CharField(max_length=16)
    status_after = models.CharField(max_length=16)
    reason = models.TextField()
    evidence_until = models.DateTimeField(help_text="When the newest measured email was sent.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["rule", "-evidence_until"], name="rule_decision_rule_idx")]

    def __str__(self) -> str:
        return f"{self.campaign}: {self.reason}"
