"""API: leads — list with filters, read, create one, create many at once, and change a lead's status
within the transitions ``cam.leads`` allows a person."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import ProhibitNullCharactersValidator
from django.db.models import Q
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter
from rest_framework.settings import api_settings
from rest_framework.validators import ProhibitSurrogateCharactersValidator

from cam.addresses import search_spellings
from cam.api.auth import actor_of
from cam.api.filters import MAX_ID, apply_filters, id_filter, query_filters, whole_number_filter
from cam.api.serializers import (
    PATH_ID_CONVERTER,
    TIMEZONE_HELP,
    StrictSerializer,
    WholeNumberField,
)
from cam.leads import TransitionRefused, lead_change_status, lead_statuses_allowed
from cam.models import Campaign, Lead
from cam.models.fields import max_length
from cam.pipeline.intake import IntakeProblem, IntakeReport, leads_intake
from cam.pipeline.records import MAX_COMPANY_SIZE
from cam.sources import SourceRecord

# -- serializers ------------------------------------------------------------------------------------

class LeadSerializer(serializers.ModelSerializer):
    """A lead as the API shows it (read-only: leads change through create, bulk and status)."""

    full_name = serializers.CharField(read_only=True)
    # Declared, not derived: both may be empty, which a derived URL field or choice field would not
    # admit in the schema.
    website = serializers.CharField(read_only=True, help_text="The company's website; empty when unknown.")
    blocked_reason = serializers.ChoiceField(choices=Lead.BlockedReason.choices, allow_blank=True, read_only=True,
                                             help_text="Why the lead is held back from sending; empty when it is not.")

    class Meta:
        model = Lead
        fields = ["id", "campaign", "email", "email_domain", "first_name", "last_name", "full_name", "company",
                  "title", "industry", "country", "company_size", "website", "timezone", "is_role_account",
                  "is_free_mail", "source", "harvested_at", "score", "score_breakdown", "scored_at", "status",
                  "status_reason", "status_changed_at", "current_step", "next_send_at", "blocked_reason",
                  "paused_until", "mailbox", "last_contacted_at", "replied_at", "created_at", "updated_at"]
        read_only_fields = fields


class IntakeCheckedCharField(serializers.CharField):
    """Text whose storability the lead intake judges (``records.unstorable_reason``), like every other
    meaning check: DRF's own refusal of NUL and lone surrogates would give an API client another reason
    than a CSV import gives for the same value."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        refused_by_drf = (ProhibitNullCharactersValidator, ProhibitSurrogateCharactersValidator)
        self.validators = [validator for validator in self.validators if not isinstance(validator, refused_by_drf)]


@extend_schema_field({"type": "integer", "minimum": 0, "maximum": MAX_COMPANY_SIZE, "nullable": True})
class CompanySizeField(WholeNumberField):
    """A head count as a JSON integer. Its range is stated in the schema and checked by the intake
    (``records.parse_company_size``), which gives the same reason as for a CSV file's value."""


def _text(name: str, **kwargs) -> serializers.CharField:
    return IntakeCheckedCharField(max_length=max_length(Lead, name), required=False, allow_blank=True,
                                  **kwargs)


class LeadInputSerializer(StrictSerializer):
    """A lead to add or update. This checks the JSON's types and lengths only; what the values mean (the
    address, the company size, the website, the time zone, what can be stored) is judged by the lead
    intake, as for a harvest or a CSV import (``cam.pipeline.intake``)."""

    campaign = WholeNumberField(min_value=1, max_value=MAX_ID,
                                help_text="The campaign's id; no campaign with it is a 400 naming `campaign`.")
    email = IntakeCheckedCharField(
        max_length=320, allow_blank=True,
        help_text="An email address, checked and normalised as the harvest does (trimmed, lower case, the domain "
                  "checked): a bad address, one longer than 254 characters once normalised, one on the suppression "
                  "list, or one already a lead of the campaign with nothing new is a 400 naming `email`.")
    first_name = _text("first_name")
    last_name = _text("last_name")
    company = _text("company")
    title = _text("title")
    industry = _text("industry")
    country = _text("country")
    company_size = CompanySizeField(required=False, allow_null=True,
                                    help_text=f"A head count, 0 to {MAX_COMPANY_SIZE:,}; out of range is a 400 "
                                              "naming `company_size`.")
    website = _text("website", help_text="The company's website (http or https; https:// is assumed when "
                                         "no scheme is given).")
    timezone = IntakeCheckedCharField(max_length=64, required=False, allow_blank=True,
                                      help_text=f"{TIMEZONE_HELP} Empty: unknown.")

    def record(self, index: int) -> SourceRecord:
        """The item as the intake reads it: as the client sent it, but for the campaign, which is the intake's
        target. It is also what the lead keeps as its raw data."""
        data = {name: value for name, value in self.initial_data.items() if name != "campaign"}
        return SourceRecord(line=index, data=data)


class LeadItemsField(serializers.ListField):
    """The items of a bulk request, each checked on its own so one bad item does not refuse the others.
    The schema shows each as a lead to add (cam.api.schema.LeadItemsScheme)."""

    # Any JSON value: an item that is not an object (null, a number, a list) is that item's error.
    child = serializers.JSONField(allow_null=True)


class LeadBulkInputSerializer(StrictSerializer):
    """Many leads at once; each item as for a single create."""

    leads = LeadItemsField(allow_empty=False,
                           help_text="The leads to add, each as for a single create; at most "
                                     "AICMO_CAM_API_BULK_MAX_ITEMS (500 unless configured) per request.")

    def validate_leads(self, value: list) -> list:
        limit = settings.AICMO_CAM_API_BULK_MAX_ITEMS
        if len(value) > limit:
            raise ValidationError(f"At most {limit} leads per request; this one has {len(value)}.")
        return value


class LeadBulkCreatedSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="The item's position in the request, from 0.")
    lead = LeadSerializer()


class LeadBulkErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="The item's position in the request, from 0.")
    # DRF's metaclass takes declared fields off the class, so they may share a name with its attributes.
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()),  # type: ignore[assignment]
                                   help_text='Messages per field, e.g. {"email": ["…"]}.')


class LeadBulkResultSerializer(serializers.Serializer):
    created_count = serializers.IntegerField()
    updated_count = serializers.IntegerField(help_text="Items that were already leads and brought new values.")
    error_count = serializers.IntegerField()
    created = LeadBulkCreatedSerializer(many=True)
    updated = LeadBulkCreatedSerializer(many=True, help_text="The leads updated, by the item's index.")
    errors = LeadBulkErrorSerializer(many=True)  # type: ignore[assignment]  # as above


class LeadStatusChangeSerializer(StrictSerializer):
    """A status change asked by a person, with why."""

    status = serializers.ChoiceField(choices=Lead.Status.choices,
                                     help_text="The new status; which ones are allowed depends on the current one.")
    reason = serializers.CharField(required=False, allow_blank=True, max_length=1000,
                                   help_text="Why; recorded on the lead and its event.")


class LeadListQuerySerializer(StrictSerializer):
    """The list's filters, from the query string."""

    campaign = id_filter("Only leads of this campaign (its id).")
    status = serializers.ChoiceField(choices=Lead.Status.choices, required=False, help_text="Only this status.")
    score_min = whole_number_filter("Score at least this (0–100); unscored leads are left out.",
                                    min_value=0, max_value=100)
    score_max = whole_number_filter("Score at most this (0–100), at least score_min; unscored leads are left out.",
                                    min_value=0, max_value=100)
    created_after = serializers.DateTimeField(required=False, help_text="Created at or after (ISO 8601).")
    created_before = serializers.DateTimeField(required=False,
                                               help_text="Created before (ISO 8601); not earlier than created_after.")
    search = serializers.CharField(max_length=200, required=False, allow_blank=True,
                                   help_text="Words that must each appear in the email, first or last name or "
                                             "company (any case).")

    def validate(self, attrs: dict) -> dict:
        if attrs.get("score_min", 0) > attrs.get("score_max", 100):
            raise ValidationError({"score_max": ["Must be at least score_min."]})
        after, before = attrs.get("created_after"), attrs.get("created_before")
        if after is not None and before is not None and after > before:
            raise ValidationError({"created_before": ["Must be later than created_after."]})
        return attrs


LIST_LOOKUPS = {"campaign": "campaign_id", "status": "status", "score_min": "score__gte",
                "score_max": "score__lte", "created_after": "created_at__gte", "created_before": "created_at__lt"}


# -- views ----------------------------------------------------------------------------------------

@extend_schema_view(
    list=extend_schema(summary="List leads", parameters=[LeadListQuerySerializer],
                       responses={200: LeadSerializer(many=True)}),
    retrieve=extend_schema(summary="Read a lead", responses={200: LeadSerializer}),
    create=extend_schema(
        summary="Add or update a lead", request=LeadInputSerializer,
        description="The item goes through the same lead intake as a harvest or a CSV import, so it ends the same "
                    "way. A new address becomes a lead (201): it starts NEW, and scoring and qualification take it "
                    "from there. An address already a lead of the campaign whose item brings different non-empty "
                    "profile values updates that lead (200; its status and sequence are left alone). An address "
                    "already a lead with nothing new, or on the suppression list, is refused (400 naming `email`); "
                    "a value the intake rejects (a bad address, company size, website or time zone, a NUL "
                    "character) is a 400 naming its field, and is also listed under harvest rejections with "
                    "item 0.",
        responses={201: LeadSerializer, 200: LeadSerializer}),
    bulk=extend_schema(
        summary="Add or update many leads", request=LeadBulkInputSerializer,
        description="Each item ends as it would in a single create: created (listed under `created`), updated "
                    "(under `updated`), or refused, listed under `errors` with its index and messages per field. "
                    "An item repeating an earlier item's address for the same campaign is refused naming that "
                    "item. Rejected values are also listed under harvest rejections with the item's index. More "
                    "items than AICMO_CAM_API_BULK_MAX_ITEMS refuses the whole request.",
        responses={200: LeadBulkResultSerializer}),
    change_status=extend_schema(
        summary="Change a lead's status", request=LeadStatusChangeSerializer,
        description="Only the changes a person may make: the outcomes of a conversation (INTERESTED, REFERRED, "
                    "MEETING_BOOKED, NOT_INTERESTED, NURTURE, DEAD, WON, LOST), DISQUALIFIED before any contact, "
                    "UNSUBSCRIBED or BOUNCED (the address is then suppressed everywhere). Nothing re-enters a "
                    "sequence. An UNSUBSCRIBED or BOUNCED lead leaves for a conversation's outcome only once no "
                    "suppression covers its address: while one does, the change is a 400 naming `status` that "
                    "says to remove the suppression first. Any other change is a 400 naming `status` with the "
                    "allowed ones. Asking for the current status changes nothing. Recorded as a lead event.",
        responses={200: LeadSerializer}),
)
class LeadViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = LeadSerializer
    lookup_value_converter = PATH_ID_CONVERTER

    def get_queryset(self):
        queryset = Lead.objects.order_by("-created_at", "-id")
        if self.action == "list" and not getattr(self, "swagger_fake_view", False):
            filters = query_filters(LeadListQuerySerializer, self.request)
            queryset = apply_filters(queryset, filters, LIST_LOOKUPS)
            for word in filters.get("search", "").split():
                # A whole address or domain also in its other spelling (Unicode or punycode).
                in_email = Q()
                for spelling in search_spellings(word):
                    in_email |= Q(email__icontains=spelling)
                queryset = queryset.filter(in_email | Q(first_name__icontains=word) | Q(last_name__icontains=word)
                                           | Q(company__icontains=word))
        return queryset

    def create(self, request, *args, **kwargs):
        item = LeadInputSerializer(data=request.data)
        item.is_valid(raise_exception=True)
        campaign = Campaign.objects.filter(pk=item.validated_data["campaign"]).first()
        if campaign is None:
            raise ValidationError({"campaign": [f"No campaign with id {item.validated_data['campaign']}."]})
        report = _intake(campaign, [item.record(0)])
        if report.leads:
            outcome, lead = report.leads[0]
            return Response(LeadSerializer(lead).data,
                            status=status.HTTP_201_CREATED if outcome == "created" else status.HTTP_200_OK)
        raise ValidationError(_problem_errors(report.problems[0]))

    @action(detail=False, methods=["post"])
    def bulk(self, request):
        body = LeadBulkInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        errors: dict[int, dict[str, list[str]]] = {}
        by_campaign: dict[int, list[SourceRecord]] = {}
        for index, data in enumerate(body.validated_data["leads"]):
            item = LeadInputSerializer(data=data)
            if item.is_valid():
                by_campaign.setdefault(item.validated_data["campaign"], []).append(item.record(index))
            else:
                errors[index] = {name: [str(message) for message in messages]
                                 for name, messages in item.errors.items()}
        campaigns = Campaign.objects.in_bulk(list(by_campaign)) if by_campaign else {}
        outcomes: dict[str, list[dict]] = {"created": [], "updated": []}
        # One intake per campaign named in the request (almost always one): the same few queries each.
        for campaign_id, records in by_campaign.items():
            campaign = campaigns.get(campaign_id)
            if campaign is None:
                for record in records:
                    assert record.line is not None  # the item's index, see LeadInputSerializer.record
                    errors[record.line] = {"campaign": [f"No campaign with id {campaign_id}."]}
                continue
            report = _intake(campaign, records)
            for index, (outcome, lead) in report.leads.items():
                outcomes[outcome].append({"index": index, "lead": lead})
            for problem in report.problems:
                assert problem.line is not None  # every item has its index
                errors[problem.line] = _problem_errors(problem)
        created = sorted(outcomes["created"], key=lambda item: item["index"])
        updated = sorted(outcomes["updated"], key=lambda item: item["index"])
        result = {"created_count": len(created), "updated_count": len(updated), "error_count": len(errors),
                  "created": created, "updated": updated,
                  "errors": [{"index": index, "errors": errors[index]} for index in sorted(errors)]}
        return Response(LeadBulkResultSerializer(result).data)

    @action(detail=True, methods=["post"], url_path="status", url_name="status")
    def change_status(self, request, pk=None):
        lead = self.get_object()
        body = LeadStatusChangeSerializer(data=request.data)
        if not body.is_valid():
            errors = dict(body.errors)
            if "status" in errors:
                allowed = ", ".join(lead_statuses_allowed(lead.status)) or "none"
                errors["status"] = [*errors["status"], f"Allowed from {lead.status}: {allowed}."]
            raise ValidationError(errors)
        try:
            lead_change_status(lead=lead, to_status=body.validated_data["status"], actor=actor_of(request),
                               reason=body.validated_data.get("reason", "").strip())
        except TransitionRefused as exc:
            raise ValidationError({"status": [str(exc)]}) from None
        return Response(LeadSerializer(lead).data)


def _intake(campaign: Campaign, records: list[SourceRecord]) -> IntakeReport:
    # A request holds at most AICMO_CAM_API_BULK_MAX_ITEMS items: every outcome is kept for the answer.
    return leads_intake(campaign=campaign, records=records, numbering="item", problems_kept=None, leads_kept=None)


def _problem_errors(problem: IntakeProblem) -> dict[str, list[str]]:
    """An item the intake did not create or update, as a 400's body: the reason under the field it is about."""
    return {problem.field or api_settings.NON_FIELD_ERRORS_KEY: [problem.reason]}


router = SimpleRouter(use_regex_path=False)
router.register("leads", LeadViewSet, basename="lead")

urlpatterns = router.urls
