"""Error responses: DRF's shapes (``{"detail": ...}`` or ``{"field": ["message", ...]}``), plus the
cases a client can cause that Django would otherwise answer with a 500."""

from __future__ import annotations

import logging

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.http import JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


def exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        # A model's clean() or a service refusing a value: the client's input, so a 400 with the messages.
        exc = exceptions.ValidationError(as_serializer_error(exc))
    elif isinstance(exc, IntegrityError):
        # A unique or check constraint caught a race the serializer could not: the state conflicts.
        logger.info("API request refused by a database constraint: %s", exc)
        return Response({"detail": "The request conflicts with existing data (a uniqueness or "
                                   "consistency rule refused it)."}, status=status.HTTP_409_CONFLICT)
    return drf_exception_handler(exc, context)


class JsonNotFoundMiddleware:
    """A URL under /api/ that matches no route (``/api/cam/leads/abc/`` where an id is a number) gets
    DRF's JSON 404, not Django's HTML page: API clients parse every answer as JSON."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (response.status_code == 404 and request.path.startswith("/api/")
                and not response.get("Content-Type", "").startswith("application/json")):
            return JsonResponse({"detail": "Not found."}, status=404)
        return response
