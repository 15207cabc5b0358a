"""API: sending domains — what DNS says about each mailbox domain's SPF, DKIM, DMARC and MX, and the hold."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from cam.api.auth import actor_of
from cam.api.errors import Conflict
from cam.api.serializers import PATH_ID_CONVERTER, StrictSerializer
from cam.domains.services import DomainProblem, domain_check, domain_hold_again, domain_override
from cam.models import SendingDomain


class DomainCheckSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="mx, spf, dkim, dmarc or tracking (the unsubscribe host).")
    verdict = serializers.ChoiceField(choices=["pass", "warn", "fail"])
    summary = serializers.CharField(help_text="What DNS said, in words.")
    fix = serializers.CharField(help_text="What to change, in words; empty when it passes.")


class SendingDomainSerializer(serializers.ModelSerializer):
    checks = DomainCheckSerializer(many=True, read_only=True)
    holds_leads = serializers.BooleanField(read_only=True, help_text="Its mailboxes' leads are held now: SPF or "
                                                                     "DMARC fails and staff did not override it.")
    override_by: serializers.SlugRelatedField = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = SendingDomain
        fields = ["id", "domain", "verdict", "holds_mail", "holds_leads", "checks", "dkim_selectors", "checked_at",
                  "override_reason", "override_by", "override_at", "history"]
        read_only_fields = fields


class CheckSerializer(StrictSerializer):
    """No fields: the body is empty or ``{}``."""


class OverrideSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=2000, help_text="Why the domain may send although SPF or DMARC "
                                                              "fails; recorded.")


class HoldSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


@extend_schema_view(
    list=extend_schema(summary="The sending domains and their checks"),
    retrieve=extend_schema(summary="One sending domain"),
    check=extend_schema(summary="Check the domain's DNS now", request=CheckSerializer,
                        responses={200: SendingDomainSerializer}),
    override=extend_schema(summary="Let its mailboxes send although SPF or DMARC fails (reason required)",
                           request=OverrideSerializer, responses={200: SendingDomainSerializer}),
    hold=extend_schema(summary="Withdraw the override: hold its mailboxes' leads again while SPF or DMARC fails",
                       request=HoldSerializer, responses={200: SendingDomainSerializer}),
)
class SendingDomainViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = SendingDomainSerializer
    lookup_value_converter = PATH_ID_CONVERTER

    def get_queryset(self) -> QuerySet[SendingDomain]:
        return SendingDomain.objects.select_related("override_by").order_by("domain")

    @action(detail=True, methods=["post"])
    def check(self, request: Request, pk: str | None = None) -> Response:
        CheckSerializer(data=request.data).is_valid(raise_exception=True)
        return Response(SendingDomainSerializer(domain_check(self.get_object())).data)

    @action(detail=True, methods=["post"])
    def override(self, request: Request, pk: str | None = None) -> Response:
        body = OverrideSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        user = request.user if request.user.is_authenticated else None
        try:
            row = domain_override(self.get_object(), reason=body.validated_data["reason"], actor=actor_of(request),
                                  user=user)
        except DomainProblem as exc:
            raise serializers.ValidationError({"reason": [str(exc)]}) from None
        return Response(SendingDomainSerializer(row).data)

    @action(detail=True, methods=["post"])
    def hold(self, request: Request, pk: str | None = None) -> Response:
        body = HoldSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            row = domain_hold_again(self.get_object(), actor=actor_of(request), reason=body.validated_data["reason"])
        except DomainProblem as exc:
            raise Conflict(str(exc)) from None
        return Response(SendingDomainSerializer(row).data)


router = SimpleRouter(use_regex_path=False)
router.register("sending-domains", SendingDomainViewSet, basename="sending-domain")

urlpatterns = router.urls
