"""Campaigns and their email sequences."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar, cast

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q

from cam.models.fields import validate_string_list, validate_timezone, validate_weekdays


def every_day() -> list[int]:
    return [1, 2, 3, 4, 5, 6, 7]


def weekdays() -> list[int]:
    return [1, 2, 3, 4, 5]


@dataclass(frozen=True)
class FieldsRule:
    """A rule tying one field to another, with one message naming the fields as the admin labels them.

    ``Campaign.clean()`` reports it on ``field``, the one staff correct (the admin form shows it there and
    the API keys it there); the check constraint with the same code and message is the database's copy."""

    code: str
    field: str
    message: str

    def error(self) -> ValidationError:
        return ValidationError(self.message, code=self.code)


COMPANY_SIZE_RANGE = FieldsRule("company_size_range", "icp_company_size_max",
                                "“Company size to” must be at least “company size from”.")
SEND_WINDOW = FieldsRule("send_window", "send_end_hour",
                         "The send window must end after it starts: “send end hour” must be later than "
                         "“send start hour”.")


class Campaign(models.Model):
    class Status(models.TextChoices):
        DRAFT = "DRAFT", "Draft"
        ACTIVE = "ACTIVE", "Active"
        PAUSED = "PAUSED", "Paused"
        DEGRADED = "DEGRADED", "Degraded"
        COMPLETED = "COMPLETED", "Completed"

    class NoReplyOutcome(models.TextChoices):
        NURTURE = "NURTURE", "Move to nurture"
        DEAD = "DEAD", "Mark dead"

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    status_reason = models.TextField(blank=True, help_text="Why the campaign has its current status.")
    status_changed_at = models.DateTimeField(null=True, blank=True)

    # Ideal-customer profile: what a good lead looks like, and how much each match counts.
    icp_industries = models.JSONField("industries", default=list, blank=True, validators=[validate_string_list],
                                      help_text='Industries that fit, e.g. ["software", "logistics"].')
    icp_title_keywords = models.JSONField("title keywords", default=list, blank=True,
                                          validators=[validate_string_list],
                                          help_text='Words in a job title that fit, e.g. ["cto", "head of"].')
    icp_countries = models.JSONField("countries", default=list, blank=True, validators=[validate_string_list],
                                     help_text='Country codes or names that fit, e.g. ["DE", "AT", "CH"].')
    icp_company_size_min = models.PositiveIntegerField("company size from", null=True, blank=True)
    icp_company_size_max = models.PositiveIntegerField("company size to", null=True, blank=True)
    weight_industry = models.PositiveSmallIntegerField(default=30, validators=[MaxValueValidator(100)])
    weight_title = models.PositiveSmallIntegerField(default=30, validators=[MaxValueValidator(100)])
    weight_country = models.PositiveSmallIntegerField(default=20, validators=[MaxValueValidator(100)])
    weight_company_size = models.PositiveSmallIntegerField(default=20, validators=[MaxValueValidator(100)])
    penalty_free_mail = models.PositiveSmallIntegerField(
        default=20, validators=[MaxValueValidator(100)], help_text="Points taken off for a free-mail address.")
    penalty_role_account = models.PositiveSmallIntegerField(
        default=30, validators=[MaxValueValidator(100)], help_text="Points taken off for info@, sales@ and the like.")
    min_score = models.PositiveSmallIntegerField(
        default=50, validators=[MaxValueValidator(100)], help_text="Leads scoring at least this (0–100) qualify.")

    # Send window, in the campaign's time zone (or the lead's own when known).
    send_days = models.JSONField(default=weekdays, validators=[validate_weekdays],
                                 help_text="ISO weekdays: 1 is Monday, 7 is Sunday.")
    send_start_hour = models.PositiveSmallIntegerField(default=9, validators=[MaxValueValidator(23)],
                                                       help_text="First hour of the day to send in (0–23).")
    send_end_hour = models.PositiveSmallIntegerField(default=17, validators=[MinValueValidator(1),
                                                                               MaxValueValidator(24)],
                                                     help_text="Sending stops at this hour (1–24).")
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    daily_cap = models.PositiveIntegerField(default=200, validators=[MinValueValidator(1)],
                                            help_text="Most emails the campaign sends in one day.")

    # What happens after the last step when nobody answers.
    no_reply_days = models.PositiveSmallIntegerField(default=7, validators=[MinValueValidator(1)])
    no_reply_outcome = models.CharField(max_length=16, choices=NoReplyOutcome.choices,
                                        default=NoReplyOutcome.NURTURE)

    # Replies.
    out_of_office_days = models.PositiveSmallIntegerField(
        default=7, validators=[MinValueValidator(1)],
        help_text="How long an out-of-office reply pauses a lead when it gives no return date.")
    soft_bounce_limit = models.PositiveSmallIntegerField(
        default=3, validators=[MinValueValidator(1)],
        help_text="Soft bounces of one email before the lead counts as bounced.")
    stop_company_on_reply = models.BooleanField(
        default=False, help_text="When one lead replies, stop every lead of the same company domain.")

    # Deliverability guard rails, in percent; the rules engine pauses the campaign past them.
    max_hard_bounce_rate = models.DecimalField(
        max_digits=5, decimal_places=2, default=5,
        validators=[MinValueValidator(0), MaxValueValidator(100)], help_text="Pause above this hard-bounce %.")
    max_complaint_rate = models.DecimalField(
        max_digits=5, decimal_places=2, default="0.30",
        validators=[MinValueValidator(0), MaxValueValidator(100)], help_text="Pause above this complaint %.")

    mailboxes = models.ManyToManyField("cam.Mailbox", related_name="campaigns", blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(min_score__lte=100), name="campaign_min_score_0_100"),
            models.CheckConstraint(condition=Q(send_start_hour__lte=23), name="campaign_send_start_hour_range"),
            models.CheckConstraint(condition=Q(send_end_hour__gte=1, send_end_hour__lte=24),
                                   name="campaign_send_end_hour_range"),
            models.CheckConstraint(condition=Q(send_start_hour__lt=F("send_end_hour")),
                                   name="campaign_send_window_start_before_end",
                                   violation_error_code=SEND_WINDOW.code, violation_error_message=SEND_WINDOW.message),
            models.CheckConstraint(condition=Q(daily_cap__gte=1), name="campaign_daily_cap_positive"),
            models.CheckConstraint(condition=Q(no_reply_days__gte=1), name="campaign_no_reply_days_positive"),
            models.CheckConstraint(condition=Q(out_of_office_days__gte=1, soft_bounce_limit__gte=1),
                                   name="campaign_reply_settings_positive"),
            models.CheckConstraint(
                condition=Q(icp_company_size_min__isnull=True) | Q(icp_company_size_max__isnull=True)
                | Q(icp_company_size_min__lte=F("icp_company_size_max")),
                name="campaign_company_size_range_ordered",
                violation_error_code=COMPANY_SIZE_RANGE.code,
                violation_error_message=COMPANY_SIZE_RANGE.message,
            ),
            models.CheckConstraint(
                condition=Q(weight_industry__lte=100, weight_title__lte=100, weight_country__lte=100,
                            weight_company_size__lte=100, penalty_free_mail__lte=100,
                            penalty_role_account__lte=100),
                name="campaign_weights_0_100",
            ),
            models.CheckConstraint(
                condition=Q(max_hard_bounce_rate__gte=0, max_hard_bounce_rate__lte=100,
                            max_complaint_rate__gte=0, max_complaint_rate__lte=100),
                name="campaign_rate_thresholds_0_100",
            ),
        ]
        indexes = [models.Index(fields=["status"], name="campaign_status_idx")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """The cross-field rules, each on the field it names (the check constraints hold the same rules)."""
        errors = {}
        low, high = self.icp_company_size_min, self.icp_company_size_max
        if low is not None and high is not None and low > high:
            errors[COMPANY_SIZE_RANGE.field] = COMPANY_SIZE_RANGE.error()
        start, end = self.send_start_hour, self.send_end_hour
        if start is not None and end is not None and start >= end:
            errors[SEND_WINDOW.field] = SEND_WINDOW.error()
        if errors:
            raise ValidationError(errors)


StepT = TypeVar("StepT", bound="SequenceStep")


def step_after(steps: Iterable[StepT], position: int) -> StepT | None:
    """The step that follows ``position`` among one campaign's enabled ``steps``: the one with the lowest
    position above it, or None after the last. Positions may have gaps (steps at 2, 3 and 5): what counts is
    their order, so ``step_after(steps, 0)`` is the campaign's first step, the step at 2. A disabled step is
    passed over, as if it were not there: its leads go on to the next enabled one."""
    return min((step for step in steps if step.position > position and step.is_enabled),
               key=lambda step: step.position, default=None)


def first_step(steps: Iterable[StepT]) -> StepT | None:
    """The campaign's first step among ``steps`` (as saved or as they would be saved): the lowest enabled
    position."""
    return step_after(steps, 0)


class SequenceStepQuerySet(models.QuerySet):
    def first_of(self, campaign: Campaign | int) -> SequenceStep | None:
        """The campaign's first step as saved (``first_step``: the lowest enabled position), or None without
        one."""
        # This queryset's model is SequenceStep, which the un-parametrised QuerySet does not tell the checker.
        return first_step(cast("Iterable[SequenceStep]", self.filter(campaign=campaign)))


class SequenceStep(models.Model):
    """One email of a campaign's sequence. Steps after the first are sent as replies in its thread.

    Written through ``cam.sequences``, which every door calls: it keeps the first step's subject, never
    deletes a step that has emails, and renumbers the steps after one it deletes."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField(validators=[MinValueValidator(1)],
                                                help_text="The order of the steps: the lowest position is the first "
                                                          "email, the next one the first follow-up, …")
    delay_days = models.PositiveSmallIntegerField(default=0, help_text="Days after the previous step.")
    delay_hours = models.PositiveSmallIntegerField(default=0, help_text="Hours on top of the days.")
    subject_template = models.CharField(
        max_length=500, blank=True,
        help_text="Django template. Follow-ups may leave it empty: they go out as “Re: <first subject>”.")
    body_template = models.TextField(help_text='Plain-text body, a Django template: {{ first_name|default:"there" }}')
    html_template = models.TextField(blank=True, help_text="Optional HTML body, a Django template.")
    # A step that has emails is kept (its emails and their threads point at it): disabling is how it leaves
    # the sequence.
    is_enabled = models.BooleanField(
        "enabled", default=True,
        help_text="A disabled step is skipped: its leads go on to the next enabled step. A step that has emails "
                  "cannot be deleted; disable it instead.")

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = SequenceStepQuerySet.as_manager()

    class Meta:
        ordering = ["campaign", "position"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "position"], name="sequence_step_unique_position"),
            models.CheckConstraint(condition=Q(position__gte=1), name="sequence_step_position_positive"),
            # "The first step needs a subject" is a rule of the whole sequence (the first is the lowest
            # position, whatever it is), so no row constraint states it: cam.campaigns checks it.
        ]

    def __str__(self) -> str:
        return f"{self.campaign} · step {self.position}"
