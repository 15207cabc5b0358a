"""API: the suppression list — addresses and whole domains CAM never mails, in any campaign."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from cam.addresses import search_spellings
from cam.api.auth import actor_of
from cam.api.filters import query_filters
from cam.api.serializers import PATH_ID_CONVERTER, StrictSerializer
from cam.models import Suppression
from cam.suppressions import suppression_add, suppression_remove

SEARCH_MAX_LENGTH = 254


class SuppressionFilterSerializer(StrictSerializer):
    search = serializers.CharField(required=False, max_length=SEARCH_MAX_LENGTH,
                                   help_text="Part of the address, domain, source or note (any case); a whole "
                                             "address or domain matches in Unicode or punycode.")
    reason = serializers.ChoiceField(choices=Suppression.Reason.choices, required=False)


class SuppressionSerializer(serializers.ModelSerializer):
    # Plain strings: one of the two is always empty, which an "email" format would not allow.
    email = serializers.CharField(read_only=True, help_text="The suppressed address; empty for a domain.")
    domain = serializers.CharField(read_only=True, help_text="The suppressed domain; empty for an address.")

    class Meta:
        model = Suppression
        fields = ["id", "email", "domain", "reason", "source", "note", "created_at"]
        read_only_fields = fields


class SuppressionCreateSerializer(StrictSerializer):
    email = serializers.CharField(required=False, allow_blank=True, max_length=254,
                                  help_text="An address to suppress, normalised as a lead's address is (trimmed, "
                                            "lower case, an internationalised domain in Unicode even when given in "
                                            "punycode). Give this or domain, not both.")
    domain = serializers.CharField(required=False, allow_blank=True, max_length=253,
                                   help_text="Suppress every address at this domain, e.g. example.com (Unicode or "
                                             "punycode, stored in Unicode). Give this or email, not both.")
    reason = serializers.ChoiceField(choices=Suppression.Reason.choices, default=Suppression.Reason.MANUAL,
                                     help_text="Why it is suppressed.")
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="",
                                 help_text="Free text for staff.")


@extend_schema_view(
    list=extend_schema(summary="The suppression list, newest first", parameters=[SuppressionFilterSerializer],
                       responses={200: SuppressionSerializer(many=True)}),
    retrieve=extend_schema(summary="One suppression",
                           responses={200: SuppressionSerializer}),
    create=extend_schema(
        summary="Suppress an address or a domain",
        request=SuppressionCreateSerializer,
        responses={201: SuppressionSerializer,
                   200: OpenApiResponse(SuppressionSerializer, description="Already on the list: the existing "
                                                                           "row, unchanged.")}),
    destroy=extend_schema(summary="Take an address or domain off the list",
                          responses={204: None}),
)
class SuppressionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                         mixins.DestroyModelMixin, viewsets.GenericViewSet):
    serializer_class = SuppressionSerializer
    lookup_value_converter = PATH_ID_CONVERTER

    def get_queryset(self) -> QuerySet[Suppression]:
        queryset = Suppression.objects.order_by("-created_at", "-id")
        if self.action != "list":
            return queryset
        filters = query_filters(SuppressionFilterSerializer, self.request)
        if filters.get("search"):
            # A whole address or domain is looked for in each of its spellings (Unicode and punycode).
            matches = Q()
            for term in search_spellings(filters["search"]):
                matches |= (Q(email__icontains=term) | Q(domain__icontains=term) | Q(source__icontains=term)
                            | Q(note__icontains=term))
            queryset = queryset.filter(matches)
        if "reason" in filters:
            queryset = queryset.filter(reason=filters["reason"])
        return queryset

    def create(self, request: Request, *args, **kwargs) -> Response:
        serializer = SuppressionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        suppression, created = suppression_add(**serializer.validated_data, source=actor_of(request))
        return Response(SuppressionSerializer(suppression).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    def perform_destroy(self, instance: Suppression) -> None:
        suppression_remove(suppression=instance)


router = SimpleRouter(use_regex_path=False)
router.register("suppressions", SuppressionViewSet, basename="suppression")

urlpatterns = router.urls
