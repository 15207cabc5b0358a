"""API: how CAM is doing — ``metrics`` (the dashboard), ``health`` (for load balancers), ``worker``
(the heartbeats) and ``alerts`` (the alerts sent to people)."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from datetime import datetime
from typing import Any

import redis
from django.conf import settings
from django.core.cache import cache
from django.core.cache.backends.db import BaseDatabaseCache
from django.db import DatabaseError, connection, transaction
from django.db.models import Max, Q, QuerySet
from django.urls import path
from django.utils import timezone
from django_q.models import Schedule
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter
from rest_framework.views import APIView

from cam.api.auth import Public
from cam.api.filters import apply_filters, id_filter, query_filters
from cam.api.serializers import PATH_ID_CONVERTER, StrictSerializer
from cam.dashboard import DEGRADED, HEALTHY, OVERDUE_GRACE, UNHEALTHY, get_dashboard
from cam.jobs.heartbeat import stale_after
from cam.jobs.schedules import declared_schedules
from cam.models import Campaign, HumanAlertLog, JobExecution, WorkerHeartbeat

logger = logging.getLogger(__name__)

# Seconds the health check waits for Redis: a load balancer's probe must answer quickly.
BROKER_TIMEOUT_SECONDS = 2


# -- metrics ------------------------------------------------------------------------------------


class MetricsExecutionSerializer(serializers.Serializer):
    execution_id = serializers.CharField()
    job = serializers.CharField()
    campaign = serializers.IntegerField(allow_null=True, help_text="The campaign's id, when the run was for one.")
    status = serializers.ChoiceField(choices=JobExecution.Status.choices)
    trigger = serializers.ChoiceField(choices=JobExecution.Trigger.choices)
    reason = serializers.CharField(help_text="Why a run was skipped.")
    counts = serializers.DictField(help_text="What the run did, by outcome.")
    error = serializers.CharField()
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    duration_seconds = serializers.FloatField(allow_null=True)


class MetricsScheduleSerializer(serializers.Serializer):
    job = serializers.CharField()
    schedule = serializers.CharField(help_text='When it runs, e.g. "daily at 02:00 UTC" or "every 60 s".')
    next_run = serializers.DateTimeField(allow_null=True, help_text="Empty when the schedule is not installed.")
    last_run = MetricsExecutionSerializer(allow_null=True, help_text="The latest run that was not skipped.")
    last_status = serializers.ChoiceField(choices=JobExecution.Status.choices, allow_null=True)
    health = serializers.ChoiceField(choices=["ok", "not_installed", "overdue", "failing"])


class MetricsJobSerializer(serializers.Serializer):
    runs = serializers.IntegerField()
    completed = serializers.IntegerField()
    failed = serializers.IntegerField()
    skipped = serializers.IntegerField()
    running = serializers.IntegerField()
    mean_duration_seconds = serializers.FloatField(allow_null=True)
    p95_duration_seconds = serializers.FloatField(allow_null=True)


class MetricsHeartbeatSerializer(serializers.Serializer):
    worker_id = serializers.CharField()
    status = serializers.ChoiceField(choices=WorkerHeartbeat.Status.choices)
    current_step = serializers.CharField()
    hostname = serializers.CharField()
    pid = serializers.IntegerField(allow_null=True)
    last_seen_at = serializers.DateTimeField()
    last_cycle_started_at = serializers.DateTimeField(allow_null=True)
    last_cycle_finished_at = serializers.DateTimeField(allow_null=True)
    cycles_completed = serializers.IntegerField()
    last_error = serializers.CharField()


class MetricsWorkerSerializer(serializers.Serializer):
    last_seen_at = serializers.DateTimeField(allow_null=True, help_text="The newest heartbeat of any worker.")
    stale_after_seconds = serializers.IntegerField()
    stale = serializers.BooleanField(help_text="The newest heartbeat is older than stale_after_seconds "
                                               "(false before any worker reported).")
    workers = MetricsHeartbeatSerializer(many=True, help_text="The 20 most recently seen workers.")


class MetricsKeyRatesSerializer(serializers.Serializer):
    """Counts of emails and their rates in percent of the emails sent (empty before the first send)."""

    sent = serializers.IntegerField()
    replies = serializers.IntegerField()
    replies_rate = serializers.FloatField(allow_null=True)
    positive = serializers.IntegerField()
    positive_rate = serializers.FloatField(allow_null=True)
    bounced_hard = serializers.IntegerField()
    bounced_hard_rate = serializers.FloatField(allow_null=True)
    complaints = serializers.IntegerField()
    complaints_rate = serializers.FloatField(allow_null=True)
    unsubscribes = serializers.IntegerField()
    unsubscribes_rate = serializers.FloatField(allow_null=True)


class MetricsSnapshotFields(serializers.Serializer):
    computed_at = serializers.DateTimeField(allow_null=True, help_text="When the metrics were last computed; "
                                                                       "empty if never.")
    window_days = serializers.IntegerField(allow_null=True)
    window = MetricsKeyRatesSerializer(allow_null=True, help_text="Over the last window_days.")
    all_time = MetricsKeyRatesSerializer(allow_null=True)


class MetricsCampaignSerializer(MetricsSnapshotFields):
    id = serializers.IntegerField()
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=Campaign.Status.choices)
    status_reason = serializers.CharField()
    daily_cap = serializers.IntegerField(help_text="The campaign's own daily cap, as set.")
    effective_daily_cap = serializers.IntegerField(
        help_text="The most the planner lets it send in 24 hours now: its daily cap, or while DEGRADED half of what "
                  "its caps allow together (the lower of its own cap and its active mailboxes' caps added up), "
                  "rounded down, at least 1.")
    cap_note = serializers.CharField(help_text="While DEGRADED: “sending at half its caps (25 of 50 a day) until "
                                               "resumed or the rule clears”; empty otherwise.")


class MetricsMailboxSerializer(MetricsSnapshotFields):
    id = serializers.IntegerField()
    name = serializers.CharField()
    provider = serializers.CharField()
    is_active = serializers.BooleanField()
    poll_error = serializers.CharField(help_text="Why the last IMAP poll failed; empty when it worked.")
    send_error = serializers.CharField(help_text="Why the last send batch could not send at all (the server "
                                                 "unreachable, the login or API key refused); empty once an "
                                                 "email went out.")


class MetricsSerializer(serializers.Serializer):
    timestamp = serializers.DateTimeField()
    health_status = serializers.ChoiceField(choices=[HEALTHY, DEGRADED, UNHEALTHY])
    health_reasons = serializers.ListField(child=serializers.CharField())
    scheduler_status = MetricsScheduleSerializer(many=True)
    job_metrics = serializers.DictField(child=MetricsJobSerializer(), help_text="Per job, over the last 7 days.")
    recent_jobs = MetricsExecutionSerializer(many=True, help_text="The ten latest runs, newest first.")
    worker = MetricsWorkerSerializer()
    campaigns = MetricsCampaignSerializer(many=True)
    mailboxes = MetricsMailboxSerializer(many=True)


class MetricsView(APIView):
    required_permissions = {"GET": ["cam.view_jobexecution"]}

    @extend_schema(operation_id="metrics_retrieve", responses={200: MetricsSerializer},
                   summary="The dashboard: health, schedules, job metrics, recent runs, worker, campaigns, mailboxes")
    def get(self, request: Request) -> Response:
        return Response(MetricsSerializer(get_dashboard()).data)


# -- health -------------------------------------------------------------------------------------

OK, FAILED = "ok", "failed"


class HealthCheckSerializer(serializers.Serializer):
    name = serializers.ChoiceField(choices=["database", "broker", "heartbeat", "cache"])
    status = serializers.ChoiceField(choices=[OK, FAILED])
    message = serializers.CharField()


class HealthReportSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=[HEALTHY, UNHEALTHY])
    timestamp = serializers.DateTimeField()
    heartbeat_age_seconds = serializers.IntegerField(allow_null=True, help_text="Age of the newest worker "
                                                                                "heartbeat; empty before any.")
    checks = HealthCheckSerializer(many=True)


def _check(name: str, ok: bool, message: str) -> dict[str, str]:
    return {"name": name, "status": OK if ok else FAILED, "message": message}


def health_database() -> dict[str, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        return _check("database", False, "The database did not answer.")
    return _check("database", True, "The database answers.")


# Seconds the cache check's key lives: long enough to read it back, gone soon after.
CACHE_PROBE_SECONDS = 10
# Seconds a cache probe's answer is reused. The endpoint needs no key and has no throttle, so without
# this every call from anyone would be a write to the cache (a row in the database cache's table).
CACHE_PROBE_INTERVAL_SECONDS = 5.0


class CacheProbe:
    """The last answer of ``probe_cache`` and when it was taken (monotonic seconds), for the process.
    Threads share it; one probes while the others wait for its answer."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._answer: dict[str, str] | None = None
        self._taken_at = 0.0

    def check(self) -> dict[str, str]:
        with self._lock:
            if self._answer is None or self.clock() - self._taken_at >= CACHE_PROBE_INTERVAL_SECONDS:
                self._answer = probe_cache()
                self._taken_at = self.clock()
            return dict(self._answer)

    def forget(self) -> None:
        with self._lock:
            self._answer = None


cache_probe = CacheProbe()


def health_cache() -> dict[str, str]:
    """The cache's health, probed at most every ``CACHE_PROBE_INTERVAL_SECONDS`` in this process."""
    return cache_probe.check()


def probe_cache() -> dict[str, str]:
    """Write a short-lived key to the shared cache and read it back: the API counts its throttles there,
    so every authenticated request fails while it does not work (a missing cache table, Redis down)."""
    key, value = "cam:health:probe", uuid.uuid4().hex
    try:
        # A database cache in its own transaction: a failed query (no cache table) must not spoil the
        # transaction around it.
        with transaction.atomic() if isinstance(cache, BaseDatabaseCache) else nullcontext():
            cache.set(key, value, timeout=CACHE_PROBE_SECONDS)
            ok = cache.get(key) == value
    except Exception:  # whatever the backend raises (a missing table, a refused connection), a probe gets a 503
        logger.warning("Health check: the cache did not answer.", exc_info=True)
        return _check("cache", False, "The cache did not answer.")
    if not ok:
        return _check("cache", False, "The cache did not return what was written to it.")
    return _check("cache", True, "The cache answers.")


def health_broker(database_ok: bool) -> dict[str, str]:
    """Redis when ``REDIS_URL`` is set; otherwise the task queue lives in the database."""
    if not settings.REDIS_URL:
        return _check("broker", database_ok, "The task queue is in the database, which "
                                             f"{'answers' if database_ok else 'did not answer'}.")
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=BROKER_TIMEOUT_SECONDS,
                                  socket_timeout=BROKER_TIMEOUT_SECONDS)
    try:
        client.ping()
    except Exception:  # whatever the client raises (refused, timeout, garbled reply), a probe gets a 503
        logger.warning("Health check: Redis did not answer.", exc_info=True)
        return _check("broker", False, "Redis did not answer.")
    finally:
        client.close()
    return _check("broker", True, "Redis answers.")


def health_heartbeat(now: datetime) -> tuple[dict[str, str], int | None]:
    """The newest heartbeat of any worker, judged as the dashboard judges it: stale after three
    intervals. Before any worker has reported, only an overdue worker-cycle schedule (no cluster is
    taking it) fails the check, so a fresh deployment is healthy while its first cycle is due."""
    if not settings.AICMO_CAM_WORKER_ENABLED:
        return _check("heartbeat", True, "The worker is disabled; no heartbeat is expected."), None
    limit = stale_after()
    try:
        last_seen = WorkerHeartbeat.objects.aggregate(at=Max("last_seen_at"))["at"]
        if last_seen is None:
            names = [spec.schedule_name for spec in declared_schedules() if spec.job == "worker_cycle"]
            overdue = Schedule.objects.filter(name__in=names, next_run__lt=now - OVERDUE_GRACE).exists()
    except DatabaseError:
        return _check("heartbeat", False, "The heartbeats could not be read."), None
    if last_seen is None:
        if overdue:
            return _check("heartbeat", False, "No worker has reported and the worker-cycle schedule is "
                                              "overdue; is qcluster running?"), None
        return _check("heartbeat", True, "No worker has reported yet."), None
    age = max(0, int((now - last_seen).total_seconds()))
    if now - last_seen > limit:
        return _check("heartbeat", False, f"The newest heartbeat is {age} s old (stale after "
                                          f"{int(limit.total_seconds())} s); is a worker running?"), age
    return _check("heartbeat", True, f"The newest heartbeat is {age} s old."), age


class HealthView(APIView):
    """For load balancers and monitors: no key, no throttle (a probe must never be refused), and
    nothing personal in the body."""

    authentication_classes: list = []
    permission_classes = [Public]
    throttle_classes: list = []

    @extend_schema(operation_id="health_retrieve", auth=[],
                   responses={200: OpenApiResponse(HealthReportSerializer, description="Every check passed."),
                              503: OpenApiResponse(HealthReportSerializer, description="At least one check failed.")},
                   summary="Database, broker, worker heartbeat and cache: 200 when all pass, 503 otherwise")
    def get(self, request: Request) -> Response:
        now = timezone.now()
        database = health_database()
        broker = health_broker(database["status"] == OK)
        heartbeat, age = health_heartbeat(now)
        checks = [database, broker, heartbeat, health_cache()]
        healthy = all(check["status"] == OK for check in checks)
        body = {"status": HEALTHY if healthy else UNHEALTHY, "timestamp": now, "heartbeat_age_seconds": age,
                "checks": checks}
        return Response(HealthReportSerializer(body).data,
                        status=status.HTTP_200_OK if healthy else status.HTTP_503_SERVICE_UNAVAILABLE)


# -- worker -------------------------------------------------------------------------------------


class WorkerHeartbeatSerializer(serializers.ModelSerializer):
    stale = serializers.SerializerMethodField(help_text="Not seen for longer than stale_after_seconds.")
    stale_after_seconds = serializers.SerializerMethodField()

    class Meta:
        model = WorkerHeartbeat
        fields = ["id", "worker_id", "status", "current_step", "hostname", "pid", "started_at",
                  "last_cycle_started_at", "last_cycle_finished_at", "cycles_completed", "last_error",
                  "last_seen_at", "stale", "stale_after_seconds"]
        read_only_fields = fields

    def get_stale(self, obj: WorkerHeartbeat) -> bool:
        return obj.last_seen_at < self.context["now"] - stale_after()

    def get_stale_after_seconds(self, obj: WorkerHeartbeat) -> int:
        return int(stale_after().total_seconds())


class WorkerFilterSerializer(StrictSerializer):
    """No filters: only pagination (an unknown parameter is refused rather than ignored)."""


@extend_schema_view(list=extend_schema(summary="The workers' heartbeats, most recently seen first",
                                       responses={200: WorkerHeartbeatSerializer(many=True)}))
class WorkerViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = WorkerHeartbeatSerializer

    def get_queryset(self) -> QuerySet[WorkerHeartbeat]:
        query_filters(WorkerFilterSerializer, self.request)
        return WorkerHeartbeat.objects.order_by("-last_seen_at", "-id")

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "now": timezone.now()}


# -- alerts -------------------------------------------------------------------------------------

SENT, PENDING = "sent", "pending"
ALERT_STATUSES = {
    SENT: Q(sent_successfully=True),
    FAILED: Q(sent_successfully=False, failed_at__isnull=False),
    PENDING: Q(sent_successfully=False, failed_at__isnull=True),
}


class AlertFilterSerializer(StrictSerializer):
    type = serializers.ChoiceField(choices=HumanAlertLog.AlertType.choices, required=False,
                                   help_text="The alert type.")
    status = serializers.ChoiceField(choices=list(ALERT_STATUSES), required=False,
                                     help_text="sent; failed (dispatch gave up); pending (still to be sent).")
    campaign = id_filter("The campaign's id.")
    created_after = serializers.DateTimeField(required=False, help_text="Created at or after (ISO 8601).")
    created_before = serializers.DateTimeField(required=False, help_text="Created before (ISO 8601).")


ALERT_LOOKUPS = {"type": "alert_type", "campaign": "campaign_id", "created_after": "created_at__gte",
                 "created_before": "created_at__lt"}


class AlertSerializer(serializers.ModelSerializer):
    status = serializers.SerializerMethodField(help_text="sent, failed (dispatch gave up) or pending.")
    channel_name = serializers.CharField(source="channel.name", allow_null=True, default=None,
                                         help_text="Empty: the AICMO_CAM_ALERT_EMAILS list.")

    class Meta:
        model = HumanAlertLog
        fields = ["id", "alert_type", "title", "body", "status", "channel", "channel_name", "recipients",
                  "sent_at", "failed_at", "attempts", "last_error", "campaign", "lead", "inbound_email",
                  "created_at"]
        read_only_fields = fields

    def get_status(self, obj: HumanAlertLog) -> str:
        if obj.sent_successfully:
            return SENT
        return FAILED if obj.failed_at else PENDING


@extend_schema_view(
    list=extend_schema(summary="Alerts to people, newest first", parameters=[AlertFilterSerializer],
                       responses={200: AlertSerializer(many=True)}),
    retrieve=extend_schema(summary="One alert", responses={200: AlertSerializer}),
)
class AlertViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = AlertSerializer
    lookup_value_converter = PATH_ID_CONVERTER

    def get_queryset(self) -> QuerySet[HumanAlertLog]:
        queryset = HumanAlertLog.objects.select_related("channel").order_by("-created_at", "-id")
        if self.action != "list":
            return queryset
        filters = query_filters(AlertFilterSerializer, self.request)
        if "status" in filters:
            queryset = queryset.filter(ALERT_STATUSES[filters["status"]])
        return apply_filters(queryset, filters, ALERT_LOOKUPS)


router = SimpleRouter(use_regex_path=False)
router.register("worker", WorkerViewSet, basename="worker")
router.register("alerts", AlertViewSet, basename="alert")

urlpatterns = [
    path("metrics/", MetricsView.as_view(), name="metrics"),
    path("health/", HealthView.as_view(), name="health"),
    *router.urls,
]
