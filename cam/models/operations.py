"""The machinery's own records: job runs, leases, worker heartbeats and alerts to people."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from cam.secrets import validate_secret_name


class JobExecution(models.Model):
    """One run (or refused run) of a job. ``execution_id`` makes a scheduled slot run once."""

    class Status(models.TextChoices):
        RUNNING = "RUNNING", "Running"
        COMPLETED = "COMPLETED", "Completed"
        FAILED = "FAILED", "Failed"
        SKIPPED = "SKIPPED", "Skipped"

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Schedule"
        API = "api", "API"
        ADMIN = "admin", "Admin"
        COMMAND = "command", "Command"
        WORKER = "worker", "Worker cycle"

    execution_id = models.CharField(max_length=255, unique=True)
    job = models.CharField(max_length=64)
    campaign = models.ForeignKey("cam.Campaign", on_delete=models.SET_NULL, null=True, blank=True,
                                 related_name="job_executions")
    scheduled_for = models.DateTimeField(null=True, blank=True, help_text="The slot this run belongs to.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.COMMAND)
    reason = models.TextField(blank=True, help_text="Why a run was skipped.")
    params = models.JSONField(default=dict, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    worker_id = models.CharField(max_length=200, blank=True)
    holder = models.CharField(max_length=200, blank=True,
                              help_text="The lease holder running it: while RUNNING, a run whose holder no longer "
                                        "holds a live lease has died.")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["job", "started_at"], name="job_execution_job_started_idx"),
            models.Index(fields=["status", "started_at"], name="job_execution_status_idx"),
            models.Index(fields=["started_at"], name="job_execution_started_idx"),
        ]

    def __str__(self) -> str:
        return self.execution_id

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class JobRunDay(models.Model):
    """A day of a frequent job's runs, rolled up once the runs themselves are pruned
    (``cam.jobs.retention``): how many ended in each status and how long they took."""

    job = models.CharField(max_length=64)
    day = models.DateField()
    status = models.CharField(max_length=16, choices=JobExecution.Status.choices)
    runs = models.PositiveIntegerField(default=0)
    seconds_total = models.FloatField(default=0, help_text="The finished runs' durations added up.")
    seconds_max = models.FloatField(default=0)

    class Meta:
        ordering = ["-day", "job", "status"]
        constraints = [models.UniqueConstraint(fields=["job", "day", "status"], name="job_run_day_unique")]

    def __str__(self) -> str:
        return f"{self.job} on {self.day}: {self.runs} {self.status.lower()}"


class JobRunHour(models.Model):
    """An hour of a job's finished runs, kept while the hour is within the dashboard's week
    (``cam.jobs.run_hours``): how many ended in each status and how long the timed ones took, as a
    histogram of fixed buckets from which a percentile is read."""

    job = models.CharField(max_length=64)
    hour = models.DateTimeField(help_text="The hour's start (UTC) the runs started in.")
    completed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    seconds_total = models.FloatField(default=0, help_text="The timed runs' durations added up.")
    buckets = models.JSONField(default=dict, blank=True,
                               help_text="Per duration bucket: how many timed runs fell in it and the longest.")

    class Meta:
        ordering = ["-hour", "job"]
        constraints = [models.UniqueConstraint(fields=["job", "hour"], name="job_run_hour_unique")]

    def __str__(self) -> str:
        return f"{self.job} at {self.hour:%Y-%m-%d %H}:00"


class Lease(models.Model):
    """A named lock with a time to live: whatever must not overlap takes one first."""

    name = models.CharField(max_length=200, unique=True)
    holder = models.CharField(max_length=200)
    acquired_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} (held by {self.holder})"


class WorkerHeartbeat(models.Model):
    """What each autonomous worker last said about itself."""

    class Status(models.TextChoices):
        STARTING = "STARTING", "Starting"
        RUNNING = "RUNNING", "Running a cycle"
        IDLE = "IDLE", "Idle between cycles"
        STOPPED = "STOPPED", "Stopped"
        ERROR = "ERROR", "Error"
        # Not seen for several intervals without saying it stopped: found dead by the watchdog.
        LOST = "LOST", "Lost (stopped reporting)"

    worker_id = models.CharField(max_length=200, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.STARTING)
    current_step = models.CharField(max_length=64, blank=True)
    hostname = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    last_cycle_started_at = models.DateTimeField(null=True, blank=True)
    last_cycle_finished_at = models.DateTimeField(null=True, blank=True)
    cycles_completed = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    last_seen_at = models.DateTimeField()

    class Meta:
        # The earlier deployment's table, kept so its monitoring queries run unchanged.
        db_table = "cam_worker_heartbeats"
        ordering = ["-last_seen_at"]
        indexes = [models.Index(fields=["last_seen_at"], name="heartbeat_last_seen_idx")]

    def __str__(self) -> str:
        return self.worker_id


class AlertChannel(models.Model):
    """Where alerts to people go. Webhook URLs and signing secrets are named by environment variable."""

    class Kind(models.TextChoices):
        EMAIL = "email", "Email"
        SLACK = "slack", "Slack incoming webhook"
        WEBHOOK = "webhook", "Signed webhook"
        NONE = "none", "Nowhere (log only)"

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    enabled = models.BooleanField(default=True)
    recipients = models.TextField(blank=True, help_text="Email addresses, separated by commas (email channels).")
    url_env = models.CharField("URL variable", max_length=100, blank=True, validators=[validate_secret_name],
                               help_text="Name of the environment variable holding the webhook URL, "
                                         "starting with CAM_SECRET_.")
    secret_env = models.CharField("signing secret variable", max_length=100, blank=True,
                                  validators=[validate_secret_name],
                                  help_text="Name of the environment variable holding the HMAC secret, "
                                            "starting with CAM_SECRET_.")
    alert_types = models.JSONField(default=list, blank=True,
                                   help_text="Alert types to send here; empty means all.")
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"


class HumanAlertLog(models.Model):
    """An alert to a person, sent once per ``idempotency_key``."""

    class AlertType(models.TextChoices):
        POSITIVE_REPLY = "POSITIVE_REPLY", "Positive reply"
        REFERRAL = "REFERRAL", "Referral"
        CAMPAIGN_PAUSED = "CAMPAIGN_PAUSED", "Campaign paused"
        CAMPAIGN_DEGRADED = "CAMPAIGN_DEGRADED", "Campaign degraded"
        WORKER_STALE = "WORKER_STALE", "Worker stale"
        JOB_FAILED = "JOB_FAILED", "Job failed"
        MAILBOX_DISCONNECTED = "MAILBOX_DISCONNECTED", "Mailbox must be reconnected"

    alert_type = models.CharField(max_length=32, choices=AlertType.choices)
    title = models.CharField(max_length=300)
    body = models.TextField(blank=True)
    channel = models.ForeignKey(AlertChannel, on_delete=models.SET_NULL, null=True, blank=True,
                                related_name="alerts", help_text="Empty: the AICMO_CAM_ALERT_EMAILS list.")
    recipients = models.TextField(blank=True)
    idempotency_key = models.CharField(max_length=255, unique=True)
    sent_successfully = models.BooleanField(default=False)
    sent_at = models.DateTimeField(null=True, blank=True)
    # A dispatcher claims an alert before sending it, so two never send the same one; a claim older
    # than a few minutes belongs to a dispatcher that died and is taken over.
    claimed_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True, help_text="When dispatch gave up on it.")
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    campaign = models.ForeignKey("cam.Campaign", on_delete=models.SET_NULL, null=True, blank=True,
                                 related_name="alerts")
    lead = models.ForeignKey("cam.Lead", on_delete=models.SET_NULL, null=True, blank=True, related_name="alerts")
    inbound_email = models.ForeignKey("cam.InboundEmail", on_delete=models.SET_NULL, null=True, blank=True,
                                      related_name="alerts")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # The earlier deployment's table, kept so its monitoring queries run unchanged.
        db_table = "cam_human_alert_logs"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["created_at"], condition=Q(sent_successfully=False), name="alert_unsent_idx"),
            models.Index(fields=["alert_type", "created_at"], name="alert_type_created_idx"),
        ]

    def __str__(self) -> str:
        return self.title


class SecretSettingChange(models.Model):
    """One change to which variable holds a secret, or to where a secret is sent (a host, a URL).

    The values are variable names and addresses, never secrets. Written by
    ``cam.secret_settings.secret_changes_record`` whatever door the change came through.
    """

    changed_at = models.DateTimeField(auto_now_add=True)
    actor = models.CharField(max_length=200, help_text="Who: staff:<username>, command:<name>, …")
    model = models.CharField(max_length=100, help_text="What kind of record: mailbox, alert channel, lead source.")
    object_id = models.PositiveBigIntegerField()
    object_repr = models.CharField("record", max_length=300)
    field = models.CharField(max_length=100)
    old_value = models.CharField(max_length=500, blank=True)
    new_value = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-changed_at", "-id"]
        indexes = [models.Index(fields=["model", "object_id"], name="secret_change_object_idx")]
        permissions = [("change_secret_settings",
                        "Can change secret variable names and where secrets are sent")]

    def __str__(self) -> str:
        return f"{self.object_repr}: {self.field}"
