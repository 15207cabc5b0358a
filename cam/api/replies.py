"""API: replies — the messages read from the mailboxes, their classification, and staff's correction."""

from __future__ import annotations

from django.db.models import F, Q, QuerySet
from django.db.models.functions import Coalesce
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from cam.api.auth import actor_of
from cam.api.filters import apply_filters, id_filter, query_filters
from cam.api.serializers import PATH_ID_CONVERTER, StrictSerializer
from cam.inbox.processing import reply_reclassify
from cam.models import InboundEmail

CATEGORIES = InboundEmail.Category.values


class ReplyFilterSerializer(StrictSerializer):
    category = serializers.ChoiceField(choices=InboundEmail.Category.choices, required=False)
    campaign = id_filter("The campaign of the lead or of the email the reply answers.")
    unprocessed = serializers.BooleanField(required=False, help_text="true: only replies not processed yet; "
                                                                      "false: only processed ones.")
    received_after = serializers.DateTimeField(required=False, help_text="Received at or after (ISO 8601).")
    received_before = serializers.DateTimeField(required=False, help_text="Received before (ISO 8601).")


class ReplySerializer(serializers.ModelSerializer):
    campaign = serializers.IntegerField(source="campaign_id", read_only=True, allow_null=True,
                                        help_text="The campaign of the email it answers, else of its lead.")
    outbound_email = serializers.IntegerField(source="outbound_email_id", read_only=True, allow_null=True,
                                              help_text="The email it answers, when matched.")
    lead = serializers.IntegerField(source="lead_id", read_only=True, allow_null=True)
    mailbox = serializers.IntegerField(source="mailbox_id", read_only=True)
    # Declared so the schema allows the empty values an unclassified or unmatched reply has.
    category = serializers.ChoiceField(choices=InboundEmail.Category.choices, allow_blank=True, read_only=True,
                                       help_text="Empty until the reply is classified.")
    from_email = serializers.CharField(read_only=True)
    referral_email = serializers.CharField(read_only=True)

    class Meta:
        model = InboundEmail
        fields = ["id", "mailbox", "campaign", "lead", "outbound_email", "from_email", "from_name", "subject",
                  "message_id", "received_at", "new_text", "category", "confidence", "classification_reasons",
                  "classified_at", "classified_by", "return_date", "referral_email", "bounce_status_code",
                  "failed_recipients", "processed_at", "alert_sent", "created_at"]
        read_only_fields = fields


class ReplyReclassifySerializer(StrictSerializer):
    category = serializers.ChoiceField(
        choices=InboundEmail.Category.choices,
        error_messages={"invalid_choice": f'"{{input}}" is not a category; choose one of {", ".join(CATEGORIES)}.'})


REPLY_LOOKUPS = {"category": "category", "unprocessed": "processed_at__isnull",
                 "received_after": "received_at__gte", "received_before": "received_at__lt"}


@extend_schema_view(
    list=extend_schema(summary="Replies, newest first", parameters=[ReplyFilterSerializer],
                       responses={200: ReplySerializer(many=True)}),
    retrieve=extend_schema(summary="One reply with its text and classification",
                           responses={200: ReplySerializer}),
)
class ReplyViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = ReplySerializer
    lookup_value_converter = PATH_ID_CONVERTER

    def get_queryset(self) -> QuerySet[InboundEmail]:
        # The raw message can be large and is not part of the answer.
        queryset = (InboundEmail.objects.defer("raw_message")
                    .annotate(campaign_id=Coalesce(F("outbound_email__campaign_id"), F("lead__campaign_id")))
                    .order_by("-created_at", "-id"))
        if self.action != "list":
            return queryset
        filters = query_filters(ReplyFilterSerializer, self.request)
        if "campaign" in filters:
            queryset = queryset.filter(Q(outbound_email__campaign_id=filters["campaign"])
                                       | Q(outbound_email__isnull=True, lead__campaign_id=filters["campaign"]))
        return apply_filters(queryset, filters, REPLY_LOOKUPS)

    @extend_schema(request=ReplyReclassifySerializer,
                   responses={200: ReplySerializer},
                   summary="Correct a reply's category; the follow-up for the new category is applied")
    @action(detail=True, methods=["post"])
    def reclassify(self, request: Request, pk: str) -> Response:
        inbound = self.get_object()
        serializer = ReplyReclassifySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        reply_reclassify(inbound=inbound, category=serializer.validated_data["category"], by=actor_of(request))
        return Response(ReplySerializer(self.get_queryset().get(pk=inbound.pk)).data)


router = SimpleRouter(use_regex_path=False)
router.register("replies", ReplyViewSet, basename="reply")

urlpatterns = router.urls
