"""API: replies — the messages read from the mailboxes, their classification, and staff's correction.

A bounce or complaint that does not prove it is about an email we sent is held (``confirmation``
``NEEDED``): ``confirm`` applies its follow-up, ``dismiss`` leaves its lead alone — the same services
as the admin's buttons (``cam.inbox.processing``). ``handled`` and ``assign`` work a reply on the reply
desk, through the same services as the back office's inbox and thread (``cam.inbox.desk``)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import F, Q, QuerySet
from django.db.models.functions import Coalesce
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from cam.api.auth import actor_of
from cam.api.errors import Conflict
from cam.api.filters import apply_filters, id_filter, query_filters
from cam.api.schema import error_response
from cam.api.serializers import PATH_ID_CONVERTER, IdRelatedField, StrictSerializer
from cam.inbox.desk import NotAssignable, reply_assign, reply_mark_handled
from cam.inbox.processing import NotHeld, bounce_confirm, bounce_dismiss, reply_reclassify
from cam.models import InboundEmail

CATEGORIES = InboundEmail.Category.values


class ReplyFilterSerializer(StrictSerializer):
    category = serializers.ChoiceField(choices=InboundEmail.Category.choices, required=False)
    campaign = id_filter("The campaign of the lead or of the email the reply answers.")
    unprocessed = serializers.BooleanField(required=False, help_text="true: only replies not processed yet; "
                                                                      "false: only processed ones.")
    received_after = serializers.DateTimeField(required=False, help_text="Received at or after (ISO 8601).")
    received_before = serializers.DateTimeField(required=False, help_text="Received before (ISO 8601).")
    confirmation = serializers.ChoiceField(
        choices=InboundEmail.Confirmation.choices, required=False,
        help_text="NEEDED: bounces and complaints held for a person to confirm or dismiss.")
    handled = serializers.BooleanField(required=False, help_text="true: only replies marked handled; false: only "
                                                                 "those nobody has handled yet.")
    assigned_to = id_filter("Only the replies assigned to this user (its id).")


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
    confirmation = serializers.ChoiceField(
        choices=InboundEmail.Confirmation.choices, allow_blank=True, read_only=True,
        help_text="NEEDED: a bounce or complaint that carries none of our Message-IDs and not our signed return "
                  "path, held without changing its lead until a person confirms or dismisses it; then "
                  "CONFIRMED or DISMISSED. Empty for everything else.")
    needs_confirmation = serializers.BooleanField(read_only=True, help_text="Whether confirmation is NEEDED.")
    handled_at = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text="When a person marked it handled on the reply desk; null before.")
    handled_by = serializers.IntegerField(source="handled_by_id", read_only=True, allow_null=True,
                                          help_text="The user who marked it handled; null when an API key did, or "
                                                    "nobody has.")
    assigned_to = serializers.IntegerField(source="assigned_to_id", read_only=True, allow_null=True,
                                           help_text="The user it is assigned to, to answer; null for nobody.")

    class Meta:
        model = InboundEmail
        fields = ["id", "mailbox", "campaign", "lead", "outbound_email", "from_email", "from_name", "subject",
                  "message_id", "received_at", "new_text", "category", "confidence", "classification_reasons",
                  "classified_at", "classified_by", "return_date", "referral_email", "bounce_status_code",
                  "failed_recipients", "reported_domain", "confirmation", "needs_confirmation", "confirmation_by",
                  "confirmation_at", "processed_at", "alert_sent", "handled_at", "handled_by", "assigned_to",
                  "created_at"]
        read_only_fields = fields


class ReplyReclassifySerializer(StrictSerializer):
    category = serializers.ChoiceField(
        choices=InboundEmail.Category.choices,
        error_messages={"invalid_choice": f'"{{input}}" is not a category; choose one of {", ".join(CATEGORIES)}.'})


class ReplyHandledSerializer(StrictSerializer):
    handled = serializers.BooleanField(
        default=True, help_text="true (the default): mark the reply handled; false: put it back on the desk, not "
                                "handled.")


class ReplyAssignSerializer(StrictSerializer):
    assigned_to = IdRelatedField(
        queryset=get_user_model().objects.all(), allow_null=True,
        help_text="The id of the user to answer it: an active staff member who may change replies (a superuser, or "
                  "the permission change inbound email); null for nobody.",
        error_messages={"does_not_exist": "No user has the id {pk_value}."})


HELD_ONLY = ("The reply is not waiting to be confirmed: it proved itself, is no bounce or complaint, or was "
             "confirmed or dismissed already. Nothing changed.")
REPLY_LOOKUPS = {"category": "category", "unprocessed": "processed_at__isnull",
                 "received_after": "received_at__gte", "received_before": "received_at__lt",
                 "confirmation": "confirmation", "assigned_to": "assigned_to_id"}


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
        if "handled" in filters:
            queryset = queryset.filter(handled_at__isnull=not filters["handled"])
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

    def _decide(self, request: Request, service) -> Response:
        inbound = self.get_object()
        try:
            service(inbound=inbound, by=actor_of(request))
        except NotHeld as exc:
            raise Conflict(str(exc)) from None
        return Response(ReplySerializer(self.get_queryset().get(pk=inbound.pk)).data)

    @extend_schema(request=None, responses={200: ReplySerializer, 409: error_response(HELD_ONLY)},
                   summary="Confirm a held bounce or complaint; its follow-up is applied",
                   description="The lead becomes BOUNCED or UNSUBSCRIBED and its address is suppressed (a soft "
                               "bounce: its email is sent again later), recorded with the caller as the actor.")
    @action(detail=True, methods=["post"])
    def confirm(self, request: Request, pk: str) -> Response:
        return self._decide(request, bounce_confirm)

    @extend_schema(request=None, responses={200: ReplySerializer, 409: error_response(HELD_ONLY)},
                   summary="Dismiss a held bounce or complaint; its lead is left as it is",
                   description="For a forged report, or one about mail we did not send: nothing changes for "
                               "the lead, and it does not count in the metrics.")
    @action(detail=True, methods=["post"])
    def dismiss(self, request: Request, pk: str) -> Response:
        return self._decide(request, bounce_dismiss)

    @extend_schema(request=ReplyHandledSerializer, responses={200: ReplySerializer},
                   summary="Mark a reply handled on the reply desk (or, with handled false, not handled)",
                   description="No body, or {\"handled\": true}: the reply is marked handled now, by the staff "
                               "user of the session (none for an API key); a reply already handled keeps who "
                               "handled it and when. {\"handled\": false} puts it back on the desk.")
    @action(detail=True, methods=["post"])
    def handled(self, request: Request, pk: str) -> Response:
        inbound = self.get_object()
        serializer = ReplyHandledSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = request.user if request.user.is_authenticated else None
        reply_mark_handled(inbound=inbound, by=user, handled=serializer.validated_data["handled"])
        return Response(ReplySerializer(self.get_queryset().get(pk=inbound.pk)).data)

    @extend_schema(request=ReplyAssignSerializer, responses={200: ReplySerializer},
                   summary="Assign a reply to a person to answer, or to nobody")
    @action(detail=True, methods=["post"])
    def assign(self, request: Request, pk: str) -> Response:
        inbound = self.get_object()
        serializer = ReplyAssignSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            reply_assign(inbound=inbound, assignee=serializer.validated_data["assigned_to"])
        except NotAssignable as exc:
            raise serializers.ValidationError({"assigned_to": [str(exc)]}) from None
        return Response(ReplySerializer(self.get_queryset().get(pk=inbound.pk)).data)


router = SimpleRouter(use_regex_path=False)
router.register("replies", ReplyViewSet, basename="reply")

urlpatterns = router.urls
