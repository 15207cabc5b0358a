"""API: campaigns (list, read, create, update), their status (pause, resume, activate), their stored
metrics, and their sequence steps, nested under the campaign (``campaigns/{id}/steps/``)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Count, IntegerField, OuterRef, Prefetch, Subquery
from django.db.models.functions import Coalesce
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.generics import get_object_or_404
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from cam.api.auth import actor_of
from cam.api.errors import Conflict
from cam.api.filters import NoFilters, query_filters
from cam.api.schema import error_response
from cam.api.serializers import (
    PATH_ID_CONVERTER,
    TIMEZONE_HELP,
    IdRelatedField,
    StrictModelSerializer,
    StrictSerializer,
    WholeNumberField,
    model_validated,
    validate_timezone_name,
)
from cam.campaigns import (
    ACTIVATABLE,
    PAUSABLE,
    RESUMABLE,
    campaign_create,
    campaign_update,
    campaigns_activate,
    campaigns_pause,
    campaigns_resume,
)
from cam.models import Campaign, Mailbox, MetricSnapshot, SequenceStep
from cam.models.decisions import Scope, snapshot_computed_at
from cam.outreach.rendering import check_templates
from cam.sequences import (
    FirstStepWithoutSubject,
    StepInUse,
    sequence_step_check,
    sequence_step_delete,
    sequence_step_save,
)

# -- campaigns -------------------------------------------------------------------------------------

def _string_list(help_text: str) -> serializers.ListField:
    return serializers.ListField(child=serializers.CharField(max_length=200), required=False, max_length=500,
                                 help_text=help_text)


class CampaignSerializer(StrictModelSerializer):
    """A campaign as the API shows it; the same fields (but status and times) are writable."""

    icp_industries = _string_list('Industries that fit, e.g. ["software"].')
    icp_title_keywords = _string_list('Words in a job title, e.g. ["cto"].')
    icp_countries = _string_list('Country codes or names, e.g. ["DE", "AT"].')
    send_days = serializers.ListField(child=WholeNumberField(min_value=1, max_value=7), min_length=1,
                                      max_length=7, required=False,
                                      help_text="ISO weekdays to send on: 1 is Monday, 7 is Sunday.")
    timezone = serializers.CharField(max_length=64, required=False, validators=[validate_timezone_name],
                                     help_text=TIMEZONE_HELP)
    mailboxes = IdRelatedField(many=True, required=False, queryset=Mailbox.objects.all(),
                               help_text="Ids of the mailboxes the campaign sends from (each must exist).")
    step_count = serializers.IntegerField(read_only=True, help_text="How many sequence steps it has.")

    class Meta:
        model = Campaign
        fields = [
            "id", "name", "description", "status", "status_reason", "status_changed_at",
            "icp_industries", "icp_title_keywords", "icp_countries", "icp_company_size_min", "icp_company_size_max",
            "weight_industry", "weight_title", "weight_country", "weight_company_size", "penalty_free_mail",
            "penalty_role_account", "min_score",
            "send_days", "send_start_hour", "send_end_hour", "timezone", "daily_cap", "mailboxes",
            "no_reply_days", "no_reply_outcome", "out_of_office_days", "soft_bounce_limit", "stop_company_on_reply",
            "max_hard_bounce_rate", "max_complaint_rate",
            "step_count", "created_at", "updated_at",
        ]
        read_only_fields = ["status", "status_reason", "status_changed_at", "created_at", "updated_at"]
        # Bounds the model leaves to the column type (which SQLite does not enforce): stated here, so a
        # huge number is a 400 on every database rather than an overflow on PostgreSQL. The rules the
        # schema's types cannot state (a unique name, one field against another) are in the descriptions.
        extra_kwargs = {"name": {"help_text": "Unique among campaigns (another campaign's name is a 400)."},
                        "description": {"help_text": "Free text for staff."},
                        "icp_company_size_min": {"max_value": 10_000_000,
                                                 "help_text": "Smallest company size that fits; null: no lower bound."},
                        "icp_company_size_max": {"max_value": 10_000_000,
                                                 "help_text": "Largest company size that fits; null: no upper bound. "
                                                              "At least icp_company_size_min."},
                        "send_end_hour": {"help_text": "Sending stops at this hour (1–24); greater than "
                                                       "send_start_hour."},
                        "daily_cap": {"max_value": 1_000_000},
                        "no_reply_days": {"max_value": 3650,
                                          "help_text": "Days after the last step without a reply before "
                                                       "no_reply_outcome applies."},
                        "no_reply_outcome": {"help_text": "The lead's status when nobody answered the sequence."},
                        "out_of_office_days": {"max_value": 365},
                        "soft_bounce_limit": {"max_value": 100}}

    def validate_send_days(self, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValidationError("Each day may appear once.")
        return sorted(value)

    def validate(self, attrs: dict) -> dict:
        # The model's own rules, the cross-field ones among them, over the stored values of what a PATCH
        # leaves out: the admin and the services refuse the same, with the same messages.
        model_validated(self.instance if self.instance is not None else Campaign(), attrs)
        return attrs

    def create(self, validated_data: dict) -> Campaign:
        mailboxes = validated_data.pop("mailboxes", None)
        return campaign_create(fields=validated_data, mailboxes=mailboxes)

    def update(self, instance: Campaign, validated_data: dict) -> Campaign:
        mailboxes = validated_data.pop("mailboxes", None)
        return campaign_update(campaign=instance, fields=validated_data, mailboxes=mailboxes)


class CampaignStatusChangeSerializer(StrictSerializer):
    """The body of pause, resume and activate (optional; it may be empty)."""

    reason = serializers.CharField(required=False, allow_blank=True, max_length=1000,
                                   help_text="Why; kept on the campaign with who made the change.")


class CampaignListQuerySerializer(StrictSerializer):
    """The list's filters, from the query string."""

    status = serializers.ChoiceField(choices=Campaign.Status.choices, required=False, help_text="Only this status.")


class CampaignMetricsPeriodSerializer(serializers.Serializer):
    """Counts of emails over one period, and each outcome's rate in percent of the emails sent
    (null before the first send)."""

    sent = serializers.IntegerField(required=False)
    failed = serializers.IntegerField(required=False)
    delivered = serializers.IntegerField(required=False)
    bounced_hard = serializers.IntegerField(required=False)
    bounced_soft = serializers.IntegerField(required=False)
    complaints = serializers.IntegerField(required=False)
    replies = serializers.IntegerField(required=False)
    positive = serializers.IntegerField(required=False)
    negative = serializers.IntegerField(required=False)
    unsubscribes = serializers.IntegerField(required=False)
    out_of_office = serializers.IntegerField(required=False)
    bounced_hard_rate = serializers.FloatField(required=False, allow_null=True)
    bounced_soft_rate = serializers.FloatField(required=False, allow_null=True)
    complaints_rate = serializers.FloatField(required=False, allow_null=True)
    replies_rate = serializers.FloatField(required=False, allow_null=True)
    positive_rate = serializers.FloatField(required=False, allow_null=True)
    negative_rate = serializers.FloatField(required=False, allow_null=True)
    unsubscribes_rate = serializers.FloatField(required=False, allow_null=True)
    out_of_office_rate = serializers.FloatField(required=False, allow_null=True)


class CampaignMetricsSerializer(serializers.Serializer):
    campaign = serializers.IntegerField()
    computed_at = serializers.DateTimeField(allow_null=True,
                                            help_text="When the worker counted them; null: not counted yet "
                                                      "(window and all_time are then empty).")
    window_days = serializers.IntegerField(allow_null=True, help_text="The rolling window, in days.")
    window = CampaignMetricsPeriodSerializer(help_text="Over the last window_days.")
    all_time = CampaignMetricsPeriodSerializer(help_text="Since the first send.")


def _step_count() -> Coalesce:
    counted = (SequenceStep.objects.filter(campaign=OuterRef("pk")).order_by().values("campaign")
               .annotate(n=Count("pk")).values("n"))
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


STATUS_CHANGES = {
    # action: (service, the statuses it applies to, what it did for the status reason)
    "pause": (campaigns_pause, PAUSABLE, "Paused"),
    "resume": (campaigns_resume, RESUMABLE, "Resumed"),
    "activate": (campaigns_activate, ACTIVATABLE, "Activated"),
}


def _status_change_schema(verb: str, applies_to) -> dict:
    names = " or ".join(str(status) for status in applies_to)
    return {"request": CampaignStatusChangeSerializer, "summary": f"{verb.capitalize()} a campaign",
            "description": f"{verb.capitalize()} a campaign that is {names}; in any other status it "
                           f"is left as it is and the answer is 409.",
            "responses": {200: CampaignSerializer,
                          409: error_response(f"The campaign is not {names} (or its status changed "
                                              f"meanwhile); it is left as it is.")}}


@extend_schema_view(
    list=extend_schema(summary="List campaigns", parameters=[CampaignListQuerySerializer],
                       responses={200: CampaignSerializer(many=True)}),
    retrieve=extend_schema(summary="Read a campaign", responses={200: CampaignSerializer}),
    create=extend_schema(summary="Create a campaign",
                         description="A new campaign is a draft, with the default rules (bounce and complaint "
                                     "guard rails from its own thresholds, a low positive-reply rate).",
                         responses={201: CampaignSerializer}),
    update=extend_schema(summary="Replace a campaign's settings",
                         responses={200: CampaignSerializer}),
    partial_update=extend_schema(summary="Change some of a campaign's settings",
                                 responses={200: CampaignSerializer}),
    pause=extend_schema(**_status_change_schema("pause", PAUSABLE)),
    resume=extend_schema(**_status_change_schema("resume", RESUMABLE)),
    activate=extend_schema(**_status_change_schema("activate", ACTIVATABLE)),
    metrics=extend_schema(summary="A campaign's stored metrics",
                          description="The latest metric snapshot the worker stored for the campaign, over the "
                                      "rolling window and all time. Before the first one, computed_at is null "
                                      "and the periods are empty.",
                          responses={200: CampaignMetricsSerializer}),
)
class CampaignViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                      mixins.UpdateModelMixin, viewsets.GenericViewSet):
    serializer_class = CampaignSerializer
    lookup_value_converter = PATH_ID_CONVERTER

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Campaign.objects.none()
        queryset = (Campaign.objects.annotate(step_count=_step_count())
                    .prefetch_related(Prefetch("mailboxes", queryset=Mailbox.objects.only("pk"))))
        if self.action == "list":
            filters = query_filters(CampaignListQuerySerializer, self.request)
            if "status" in filters:
                queryset = queryset.filter(status=filters["status"])
        return queryset.order_by("name", "pk")

    def _fresh(self, pk: int) -> Campaign:
        return self.get_queryset().get(pk=pk)

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        campaign = serializer.save()
        return Response(CampaignSerializer(self._fresh(campaign.pk)).data, status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        serializer = self.get_serializer(self.get_object(), data=request.data, partial=kwargs.pop("partial", False))
        serializer.is_valid(raise_exception=True)
        campaign = serializer.save()
        return Response(CampaignSerializer(self._fresh(campaign.pk)).data)

    def _change_status(self, request, change: str) -> Response:
        campaign = self.get_object()
        body = CampaignStatusChangeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        service, applies_to, done = STATUS_CHANGES[change]
        why = body.validated_data.get("reason", "").strip()
        reason = f"{done} by {actor_of(request)}" + (f": {why}" if why else "")
        if not service(campaign_ids=[campaign.pk], reason=reason):
            # The change is one conditional update: it changed nothing because the status did not allow
            # it when it ran. Read now, the status may have changed again since (another request).
            current = Campaign.objects.filter(pk=campaign.pk).values_list("status", flat=True).first()
            names = " or ".join(str(s) for s in applies_to)
            if current in applies_to:
                raise Conflict(f"The campaign's status changed meanwhile (another change was made at the same "
                               f"time; it is now {current}): nothing was {done.lower()}. Read it and try again.")
            raise Conflict(f"The campaign is {current}: only campaigns that are {names} can be {done.lower()}.")
        return Response(CampaignSerializer(self._fresh(campaign.pk)).data)

    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        return self._change_status(request, "pause")

    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return self._change_status(request, "resume")

    @action(detail=True, methods=["post"])
    def activate(self, request, pk=None):
        return self._change_status(request, "activate")

    @action(detail=True, methods=["get"])
    def metrics(self, request, pk=None):
        campaign = get_object_or_404(Campaign.objects.only("pk"), pk=pk)
        snapshot = (MetricSnapshot.objects.filter(scope=Scope.CAMPAIGN, campaign=campaign)
                    .annotate(_computed_at=snapshot_computed_at("computed_at")).first())
        data: dict[str, Any] = {"campaign": campaign.pk, "computed_at": None, "window_days": None, "window": {},
                                "all_time": {}}
        if snapshot is not None:
            data.update(computed_at=snapshot._computed_at, window_days=snapshot.window_days,
                        window=snapshot.window or {}, all_time=snapshot.all_time or {})
        # The stored periods are returned as the worker wrote them (CampaignMetricsSerializer documents them).
        return Response(data)


# -- sequence steps ------------------------------------------------------------------------------

class CampaignStepSerializer(StrictModelSerializer):
    """One email of a campaign's sequence; templates are Django templates, checked before they are saved."""

    class Meta:
        model = SequenceStep
        fields = ["id", "campaign", "position", "delay_days", "delay_hours", "is_enabled", "subject_template",
                  "body_template", "html_template", "created_at", "updated_at"]
        read_only_fields = ["campaign", "created_at", "updated_at"]
        extra_kwargs = {"position": {"max_value": 1000,
                                     "help_text": "The step's place in the sequence: the lowest position is the "
                                                  "first email, the next one the first follow-up, … (gaps are "
                                                  "allowed); unique within the campaign (a position taken is a "
                                                  "400)."},
                        "delay_days": {"max_value": 3650}, "delay_hours": {"max_value": 10_000},
                        "is_enabled": {"help_text": "false: the step is skipped, and its leads go on to the next "
                                                    "enabled step. A step that has emails cannot be deleted: "
                                                    "disable it instead. Disabling the first step while the "
                                                    "next enabled one has no subject is a 409."},
                        "subject_template": {"help_text": "A Django template (a syntax error is a 400 naming "
                                                          "it). The first step (the lowest position) needs "
                                                          "one; follow-ups may leave it empty: they go out as "
                                                          "“Re: <first subject>”."},
                        "body_template": {"help_text": "Plain-text body, a Django template (a syntax error is "
                                                       "a 400 naming it): {{ first_name|default:\"there\" }}"},
                        "html_template": {"help_text": "Optional HTML body, a Django template (a syntax error "
                                                       "is a 400 naming it)."}}

    def validate(self, attrs: dict) -> dict:
        campaign = self.context["campaign"]
        position = attrs.get("position", getattr(self.instance, "position", None))
        if position is None:
            raise ValidationError({"position": ["This field is required."]})
        taken = SequenceStep.objects.filter(campaign=campaign, position=position)
        if self.instance is not None:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise ValidationError({"position": [f"The campaign already has a step {position}."]})
        step = model_validated(self.instance if self.instance is not None else SequenceStep(campaign=campaign),
                               attrs)
        errors: dict[str, list[str]] = {}
        for field, message in check_templates(subject=step.subject_template or "", body=step.body_template or "",
                                              html=step.html_template or ""):
            errors.setdefault(field, []).append(message)
        try:
            sequence_step_check(step)
        except DjangoValidationError as exc:
            for field, messages in exc.message_dict.items():
                errors.setdefault(field, []).extend(messages)
        except FirstStepWithoutSubject as exc:
            if not errors:
                raise Conflict(str(exc)) from None
        if errors:
            raise ValidationError(errors)
        return attrs

    def create(self, validated_data: dict) -> SequenceStep:
        return sequence_step_save(step=SequenceStep(campaign=self.context["campaign"]), fields=validated_data)

    def update(self, instance: SequenceStep, validated_data: dict) -> SequenceStep:
        return sequence_step_save(step=instance, fields=validated_data)


STEP_FIRST_RULE = ("The campaign's first step (its lowest enabled position) needs a subject: a move, or disabling "
                   "a step, that would make a step without one the first is refused with 409.")
STEP_FIRST_CONFLICT = "The change would leave the campaign's first step without a subject."
CAMPAIGN_ID = OpenApiParameter("campaign_pk", OpenApiTypes.INT, OpenApiParameter.PATH,
                               description="The campaign's id.")


@extend_schema_view(
    list=extend_schema(summary="List a campaign's sequence steps", parameters=[CAMPAIGN_ID],
                       responses={200: CampaignStepSerializer(many=True)}),
    retrieve=extend_schema(summary="Read a sequence step", parameters=[CAMPAIGN_ID],
                           responses={200: CampaignStepSerializer}),
    create=extend_schema(summary="Add a sequence step", parameters=[CAMPAIGN_ID],
                         responses={201: CampaignStepSerializer}),
    update=extend_schema(summary="Replace a sequence step", parameters=[CAMPAIGN_ID],
                         description=STEP_FIRST_RULE,
                         responses={200: CampaignStepSerializer, 409: error_response(STEP_FIRST_CONFLICT)}),
    partial_update=extend_schema(summary="Change a sequence step", parameters=[CAMPAIGN_ID],
                                 description=STEP_FIRST_RULE,
                                 responses={200: CampaignStepSerializer, 409: error_response(STEP_FIRST_CONFLICT)}),
    destroy=extend_schema(summary="Delete a sequence step",
                          description="Only a step no email was sent or queued from (otherwise 409: “Step 2 has "
                                      "340 emails; disable it instead.”), and not the first step while the next "
                                      "enabled one has no subject (409). The later steps move up one place, so "
                                      "positions 1..n stay 1..n-1, and the leads' current_step with them.",
                          parameters=[CAMPAIGN_ID],
                          responses={204: None, 409: error_response("The step has emails (disable it instead), "
                                                                   "or the step after the first has no subject: "
                                                                   "it is kept.")}),
)
class CampaignStepViewSet(viewsets.ModelViewSet):
    serializer_class = CampaignStepSerializer
    lookup_value_converter = PATH_ID_CONVERTER
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def campaign(self) -> Campaign:
        if not hasattr(self, "_campaign"):
            self._campaign = get_object_or_404(Campaign.objects.only("pk", "name"), pk=self.kwargs["campaign_pk"])
        return self._campaign

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return SequenceStep.objects.none()
        if self.action == "list":
            query_filters(NoFilters, self.request)
        return SequenceStep.objects.filter(campaign=self.campaign()).order_by("position")

    def get_serializer_context(self) -> dict:
        context: dict[str, Any] = super().get_serializer_context()  # type: ignore[assignment]  # a dict; the stubs say Mapping
        if not getattr(self, "swagger_fake_view", False):
            context["campaign"] = self.campaign()
        return context

    def perform_update(self, serializer: serializers.BaseSerializer[SequenceStep]) -> None:
        try:
            serializer.save()
        except FirstStepWithoutSubject as exc:
            raise Conflict(str(exc)) from None

    def perform_destroy(self, instance: SequenceStep) -> None:
        try:
            sequence_step_delete(step=instance)
        except (StepInUse, FirstStepWithoutSubject) as exc:
            raise Conflict(str(exc)) from None


router = SimpleRouter(use_regex_path=False)
router.register("campaigns", CampaignViewSet, basename="campaign")
router.register(f"campaigns/<{PATH_ID_CONVERTER}:campaign_pk>/steps", CampaignStepViewSet, basename="campaign-step")

urlpatterns = router.urls
