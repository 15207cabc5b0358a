"""API: leads — list with filters, read, create one, create many at once, and change a lead's status
within the transitions ``cam.leads`` allows a person."""

from __future__ import annotations

from django.conf import settings
from django.db.models import Q
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from cam.addresses import RejectedAddress, normalize_address
from cam.api.auth import actor_of
from cam.api.filters import MAX_ID, apply_filters, id_filter, query_filters, whole_number_filter
from cam.api.serializers import (
    PATH_ID_CONVERTER,
    TIMEZONE_HELP,
    StrictSerializer,
    WholeNumberField,
    validate_timezone_name,
)
from cam.leads import NewLead, TransitionRefused, lead_change_status, lead_statuses_allowed, leads_add
from cam.models import Campaign, Lead
from cam.models.fields import max_length
from cam.pipeline.records import MAX_COMPANY_SIZE

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


def _text(name: str) -> serializers.CharField:
    return serializers.CharField(max_length=max_length(Lead, name), required=False, allow_blank=True)


class LeadInputSerializer(StrictSerializer):
    """A lead to add. The address is normalised as the harvest does (trimmed, lower case, syntax checked);
    role accounts and free-mail addresses are flagged from it."""

    campaign = WholeNumberField(min_value=1, max_value=MAX_ID,
                                help_text="The campaign's id; no campaign with it is a 400 naming `campaign`.")
    email = serializers.CharField(
        max_length=320,
        help_text="An email address, checked and normalised as the harvest does (trimmed, lower case, the domain "
                  "checked): a bad address, one longer than 254 characters once normalised, one already a lead of "
                  "the campaign or one on the suppression list is a 400 naming `email`.")
    first_name = _text("first_name")
    last_name = _text("last_name")
    company = _text("company")
    title = _text("title")
    industry = _text("industry")
    country = _text("country")
    company_size = WholeNumberField(min_value=0, max_value=MAX_COMPANY_SIZE, required=False, allow_null=True)
    website = serializers.URLField(max_length=500, required=False, allow_blank=True)
    timezone = serializers.CharField(max_length=64, required=False, allow_blank=True,
                                     validators=[validate_timezone_name], help_text=f"{TIMEZONE_HELP} Empty: unknown.")

    def validate_email(self, value: str):
        try:
            address = normalize_address(value)
        except RejectedAddress as exc:
            raise ValidationError(str(exc)) from None
        if len(address.email) > max_length(Lead, "email"):
            raise ValidationError("The address is longer than 254 characters.")
        return address

    def new_lead(self) -> NewLead:
        data = dict(self.validated_data)
        address = data.pop("email")
        campaign_id = data.pop("campaign")
        raw = {name: value for name, value in self.initial_data.items() if name != "campaign"}
        return NewLead(campaign_id=campaign_id, email=address.email, is_role_account=address.is_role_account,
                       is_free_mail=address.is_free_mail, fields=data, raw_data=raw)


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
    error_count = serializers.IntegerField()
    created = LeadBulkCreatedSerializer(many=True)
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
    create=extend_schema(summary="Add a lead", request=LeadInputSerializer,
                         description="The address is normalised as the harvest does. An address already a lead "
                                     "of the campaign, or on the suppression list, is refused (400 naming "
                                     "`email`). The lead starts NEW; scoring and qualification take it from there.",
                         responses={201: LeadSerializer}),
    bulk=extend_schema(summary="Add many leads", request=LeadBulkInputSerializer,
                       description="Each item is checked as for a single create. Valid items are saved; each "
                                   "refused one is listed with its index and messages. More items than "
                                   "AICMO_CAM_API_BULK_MAX_ITEMS refuses the whole request.",
                       responses={200: LeadBulkResultSerializer}),
    change_status=extend_schema(
        summary="Change a lead's status", request=LeadStatusChangeSerializer,
        description="Only the changes a person may make: the outcomes of a conversation (INTERESTED, REFERRED, "
                    "NOT_INTERESTED, NURTURE, DEAD, WON, LOST), DISQUALIFIED before any contact, UNSUBSCRIBED or "
                    "BOUNCED (the address is then suppressed everywhere). Nothing re-enters a sequence and "
                    "nothing leaves UNSUBSCRIBED. Any other change is a 400 naming `status` with the allowed "
                    "ones. Asking for the current status changes nothing. Recorded as a lead event.",
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
                queryset = queryset.filter(Q(email__icontains=word) | Q(first_name__icontains=word)
                                           | Q(last_name__icontains=word) | Q(company__icontains=word))
        return queryset

    def create(self, request, *args, **kwargs):
        item = LeadInputSerializer(data=request.data)
        item.is_valid(raise_exception=True)
        new = item.new_lead()
        if not Campaign.objects.filter(pk=new.campaign_id).exists():
            raise ValidationError({"campaign": [f"No campaign with id {new.campaign_id}."]})
        added = leads_add(items=[new])
        if added.refused:
            raise ValidationError({"email": [added.refused[0]]})
        return Response(LeadSerializer(added.created[0]).data, status=status.HTTP_201_CREATED)

    @action(detail=False, methods=["post"])
    def bulk(self, request):
        body = LeadBulkInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        errors: dict[int, dict[str, list[str]]] = {}
        valid: dict[int, NewLead] = {}
        for index, data in enumerate(body.validated_data["leads"]):
            item = LeadInputSerializer(data=data)
            if item.is_valid():
                valid[index] = item.new_lead()
            else:
                errors[index] = {name: [str(message) for message in messages]
                                 for name, messages in item.errors.items()}
        campaigns = set(Campaign.objects.filter(pk__in={new.campaign_id for new in valid.values()})
                        .values_list("pk", flat=True)) if valid else set()
        for index, new in list(valid.items()):
            if new.campaign_id not in campaigns:
                errors[index] = {"campaign": [f"No campaign with id {new.campaign_id}."]}
                del valid[index]
        indexes = list(valid)
        added = leads_add(items=list(valid.values()), numbers=indexes)
        for position, reason in added.refused.items():
            errors[indexes[position]] = {"email": [reason]}
        created = [{"index": indexes[position], "lead": lead} for position, lead in added.created.items()]
        result = {"created_count": len(created), "error_count": len(errors), "created": created,
                  "errors": [{"index": index, "errors": errors[index]} for index in sorted(errors)]}
        return Response(LeadBulkResultSerializer(result).data)

    @action(detail=True, methods=["post"], url_path="status", url_name="status")
    def change_status(self, request, pk=None):
        lead = self.get_object()
        body = LeadStatusChangeSerializer(data=request.data)
        if not body.is_valid():
            errors = dict(body.errors)
            if "status" in errors:
                allowed = ", ".join(lead_statuses_allowed(lead.status)) or "none: the lead's status is final"
                errors["status"] = [*errors["status"], f"Allowed from {lead.status}: {allowed}."]
            raise ValidationError(errors)
        try:
            lead_change_status(lead=lead, to_status=body.validated_data["status"], actor=actor_of(request),
                               reason=body.validated_data.get("reason", "").strip())
        except TransitionRefused as exc:
            raise ValidationError({"status": [str(exc)]}) from None
        return Response(LeadSerializer(lead).data)


router = SimpleRouter(use_regex_path=False)
router.register("leads", LeadViewSet, basename="lead")

urlpatterns = router.urls
