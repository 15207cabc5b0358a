"""API: jobs — run one now or queue it to the cluster; list and read job executions.

A run goes through ``cam.jobs.request.job_request``, as from every other door: the job's rules (its
campaign, its parameters, whether it may run in the request) are its spec's, and the runner's hold: one
run per job, campaign and slot (a second run of the slot, ran or queued, is recorded and answered as
SKIPPED), and never two overlapping runs of a job: for the same campaign, or one for a campaign and one
for all (here: 409). Only quick jobs run in the request.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.db.models import QuerySet
from django.urls import path, reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from cam.api.errors import Conflict
from cam.api.filters import MAX_ID, apply_filters, id_filter, query_filters
from cam.api.schema import error_response
from cam.api.serializers import StrictSerializer, WholeNumberField
from cam.jobs.registry import UnknownJob, job_names, jobs_where
from cam.jobs.request import JobOutcome, JobRefused, job_request
from cam.jobs.runner import ALREADY_RUNNING, running_execution
from cam.models import Campaign, JobExecution

# For the help texts: the jobs that take a campaign, and those that may run in the request.
CAMPAIGN_JOBS = jobs_where(lambda spec: spec.campaign != "refused")
WAIT_JOBS = jobs_where(lambda spec: spec.inline_allowed)
# The parameters a job may be sent, each read by the jobs whose spec lists it.
PARAMETERS = ("max_leads",)
MAX_LEADS_LIMIT = 100_000
# Slots outside these bounds cannot be turned into an execution id in every time zone.
SLOT_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
SLOT_LATEST = datetime(9000, 1, 1, tzinfo=UTC)
QUEUED = "QUEUED"


# --- Serializers ------------------------------------------------------------------------------------


class JobsExecutionSerializer(serializers.ModelSerializer):
    """A job execution: one run, or one refused run, of a job."""

    campaign: serializers.PrimaryKeyRelatedField[Campaign] = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True, help_text="The campaign it worked on; null for all.")
    counts = serializers.DictField(read_only=True, help_text="What the job did, as the job reports it.")
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = JobExecution
        fields = ["execution_id", "job", "campaign", "scheduled_for", "status", "trigger", "counts", "error",
                  "reason", "started_at", "finished_at", "duration_seconds"]
        read_only_fields = fields


class JobsRunInputSerializer(StrictSerializer):
    campaign = WholeNumberField(
        required=False, allow_null=True, min_value=1, max_value=MAX_ID,
        help_text=f"Campaign id; only for {', '.join(CAMPAIGN_JOBS)}. Without it they work on every "
                  "active or degraded campaign.")
    max_leads = WholeNumberField(
        required=False, allow_null=True, min_value=1, max_value=MAX_LEADS_LIMIT,
        help_text=f"{', '.join(jobs_where(lambda spec: 'max_leads' in spec.params))} only: create at most this "
                  "many leads.")
    scheduled_for = serializers.DateTimeField(
        required=False, allow_null=True,
        help_text="The slot this run belongs to (ISO 8601). Default: now, a slot of its own.")
    force = serializers.BooleanField(default=False, help_text="Run even if the slot already ran (under a new id).")
    wait = serializers.BooleanField(
        default=False, help_text="true: run in this request and answer the outcome (only "
                                 f"{', '.join(WAIT_JOBS)}); false: queue it to the cluster and answer "
                                 "202 at once.")

    def validate_campaign(self, value: int | None) -> Campaign | None:
        if value is None:
            return None
        campaign = Campaign.objects.filter(pk=value).first()
        if campaign is None:
            raise serializers.ValidationError(f"No campaign with id {value}.")
        return campaign

    def validate_scheduled_for(self, value: datetime | None) -> datetime | None:
        if value is not None and not SLOT_EARLIEST <= value < SLOT_LATEST:
            raise serializers.ValidationError("Choose a slot between 1970 and 9000.")
        return value

class JobsQueuedSerializer(serializers.Serializer):
    execution_id = serializers.CharField(help_text="The id the run will be recorded under.")
    job = serializers.CharField()
    campaign = serializers.IntegerField(allow_null=True)
    scheduled_for = serializers.DateTimeField()
    status = serializers.ChoiceField(choices=[QUEUED])
    url = serializers.URLField(help_text="Where to read the execution (404 until the cluster has started it).")


class JobsRunningSerializer(serializers.Serializer):
    detail = serializers.CharField()
    running = JobsExecutionSerializer(allow_null=True, help_text="The run holding the job now, if recorded yet.")


class JobsUnknownSerializer(serializers.Serializer):
    detail = serializers.CharField()
    known_jobs = serializers.ListField(child=serializers.CharField())


class JobsExecutionFilterSerializer(StrictSerializer):
    """The list's query string; any other parameter is refused by name (a typo would filter nothing)."""

    job = serializers.ChoiceField(
        required=False, choices=job_names(), help_text="A job name.",
        error_messages={"invalid_choice": f"Unknown job; known jobs: {', '.join(job_names())}."})
    campaign = id_filter("The campaign's id.")
    status = serializers.ChoiceField(required=False, choices=JobExecution.Status.choices)
    trigger = serializers.ChoiceField(required=False, choices=JobExecution.Trigger.choices)
    started_after = serializers.DateTimeField(required=False, help_text="Started at or after (ISO 8601).")
    started_before = serializers.DateTimeField(required=False,
                                               help_text="Started before (ISO 8601); later than started_after.")

    def validate(self, attrs: dict) -> dict:
        after, before = attrs.get("started_after"), attrs.get("started_before")
        if after and before and after >= before:
            raise serializers.ValidationError({"started_before": ["Must be later than started_after."]})
        return attrs


# --- Errors with a body of their own ---------------------------------------------------------------


class JobNotFound(exceptions.NotFound):
    def __init__(self, name: str) -> None:
        super().__init__()
        # A dict detail is sent as it is by DRF's handler: the names stay a list of strings. (The stubs
        # want ErrorDetails throughout.)
        self.detail = {"detail": f"Unknown job {name!r}.", "known_jobs": job_names()}  # type: ignore[dict-item]


class JobRunning(Conflict):
    """A run of the job that the asked run would overlap is going on; the body names it."""

    def __init__(self, outcome: JobOutcome) -> None:
        super().__init__()
        holder = running_execution(job=outcome.job, campaign_id=outcome.running_campaign_id)
        self.detail = {"detail": outcome.busy_message,  # type: ignore[dict-item]  # as above
                       "running": JobsExecutionSerializer(holder).data if holder else None}  # type: ignore[dict-item]


# --- Views ------------------------------------------------------------------------------------------


def _execution_url(request, execution_id: str) -> str:
    return request.build_absolute_uri(reverse("cam-api:job-execution-detail", args=[execution_id]))


def _execution_response(execution_id: str) -> Response:
    execution = JobExecution.objects.get(execution_id=execution_id)
    return Response(JobsExecutionSerializer(execution).data, status=status.HTTP_200_OK)


class JobRunView(APIView):
    throttle_scope = "cam_jobs"
    required_permissions = {"GET": ["cam.view_jobexecution"], "POST": ["cam.add_jobexecution"]}

    @extend_schema(
        operation_id="jobs_run",
        summary="Run a job now, or queue it",
        description=(
            "Runs the job `name` for its slot. With `wait: true` the job runs in the request and the answer "
            "is its execution record (status COMPLETED or FAILED); only quick jobs "
            f"({', '.join(WAIT_JOBS)}) run in the request, the others answer 400 on `wait: true`. "
            "With `wait: false` (the default) it is queued to the task cluster and the answer is 202 with "
            "the id to poll. Either way, a second run for a slot that already ran, or that is queued and "
            "not run yet, answers 200 with the SKIPPED record of that refusal; a run while a run of the "
            "same job it would overlap is going on (for the same campaign, for all campaigns, or - asked "
            "for all - for any campaign) answers 409 with the running execution. "
            f"Jobs: {', '.join(job_names())}."),
        # The known names, as an enum: any other name is a 404 listing them.
        parameters=[OpenApiParameter("name", OpenApiTypes.STR, OpenApiParameter.PATH, enum=job_names(),
                                     description="The job name.")],
        request=JobsRunInputSerializer,
        responses={
            200: OpenApiResponse(JobsExecutionSerializer, description="Ran (wait), or refused as SKIPPED."),
            202: OpenApiResponse(JobsQueuedSerializer, description="Queued; poll `url`."),
            400: error_response("Per-field messages, e.g. `wait` for a job that only runs queued."),
            404: OpenApiResponse(JobsUnknownSerializer, description="Unknown job; the known ones are listed."),
            409: OpenApiResponse(JobsRunningSerializer, description="The job is running now."),
        },
    )
    def post(self, request, name: str) -> Response:
        if name not in job_names():
            raise JobNotFound(name)
        serializer = JobsRunInputSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        attrs = serializer.validated_data
        try:
            outcome = job_request(name, where="request" if attrs["wait"] else "queue",
                                  trigger=JobExecution.Trigger.API, campaign=attrs.get("campaign"),
                                  params={key: attrs[key] for key in PARAMETERS if attrs.get(key) is not None},
                                  scheduled_for=attrs.get("scheduled_for"), force=attrs["force"])
        except UnknownJob:
            raise JobNotFound(name) from None
        except JobRefused as exc:
            raise serializers.ValidationError(exc.errors) from None
        if outcome.busy:
            raise JobRunning(outcome)
        if not outcome.queued:
            return _execution_response(outcome.execution_id)
        url = _execution_url(request, outcome.execution_id)
        body = JobsQueuedSerializer({"execution_id": outcome.execution_id, "job": name,
                                     "campaign": outcome.campaign_id, "scheduled_for": outcome.slot,
                                     "status": QUEUED, "url": url}).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": url})


EXECUTION_LOOKUPS = {"job": "job", "status": "status", "trigger": "trigger", "campaign": "campaign_id",
                     "started_after": "started_at__gte", "started_before": "started_at__lt"}


@extend_schema(
    summary="List job executions, newest first",
    parameters=[JobsExecutionFilterSerializer],
    responses={200: JobsExecutionSerializer(many=True)},
)
class JobExecutionListView(generics.ListAPIView):
    serializer_class = JobsExecutionSerializer

    def get_queryset(self) -> QuerySet[JobExecution]:
        filters = query_filters(JobsExecutionFilterSerializer, self.request)
        return apply_filters(JobExecution.objects.order_by("-started_at", "-id"), filters, EXECUTION_LOOKUPS)


@extend_schema(
    summary="Read one job execution",
    description="By `execution_id` (percent-encode it in the path). For a slot's id whose run was refused "
                "because the job was running, the record of that refusal (SKIPPED).",
    parameters=[OpenApiParameter("execution_id", OpenApiTypes.STR, OpenApiParameter.PATH)],
    responses={200: JobsExecutionSerializer,
               404: error_response("No such execution (yet: a queued run appears once the cluster has "
                                   "started it).")},
)
class JobExecutionDetailView(generics.RetrieveAPIView):
    serializer_class = JobsExecutionSerializer
    queryset = JobExecution.objects.all()

    def get_object(self) -> JobExecution:
        execution_id = self.kwargs["execution_id"]
        execution = JobExecution.objects.filter(execution_id=execution_id).first()
        if execution is None:
            # A queued run is handed its slot's id; if the runner refused it because the job was running,
            # the refusal is recorded under the slot's id plus a suffix (the slot stays free to run). Other
            # refusals of the slot (a second request while it was queued) say nothing about this run.
            execution = (JobExecution.objects.filter(execution_id__startswith=f"{execution_id}:skipped-",
                                                     status=JobExecution.Status.SKIPPED,
                                                     reason__startswith=ALREADY_RUNNING)
                         .order_by("-started_at", "-id").first())
        if execution is None:
            raise exceptions.NotFound(f"No job execution {execution_id!r}.")
        self.check_object_permissions(self.request, execution)
        return execution


urlpatterns = [
    path("jobs/executions/", JobExecutionListView.as_view(), name="job-execution-list"),
    path("jobs/executions/<str:execution_id>/", JobExecutionDetailView.as_view(), name="job-execution-detail"),
    path("jobs/<str:name>/run/", JobRunView.as_view(), name="job-run"),
]
