"""Error responses: DRF's shapes (``{"detail": ...}`` or ``{"field": ["message", ...]}``), plus the
cases a client can cause that Django would otherwise answer with a 500."""

from __future__ import annotations

import logging
from http import HTTPStatus

from django.conf import settings
from django.core.exceptions import DisallowedHost, SuspiciousOperation, TooManyFieldsSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.http import JsonResponse
from django.urls import get_urlconf, is_valid_path
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
    if isinstance(exc, SuspiciousOperation):
        # A request Django refuses as malformed (too many fields, a bad Host), read first by the view.
        logging.getLogger(f"django.security.{exc.__class__.__name__}").error(str(exc), extra={"status_code": 400})
        return Response({"detail": "Bad request."}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, DjangoValidationError):
        # A model's clean() or a service refusing a value: the client's input, so a 400 with the messages.
        exc = exceptions.ValidationError(as_serializer_error(exc))
    elif isinstance(exc, IntegrityError):
        # A unique or check constraint caught a race the serializer could not: the state conflicts.
        logger.info("API request refused by a database constraint: %s", exc)
        return Response({"detail": "The request conflicts with existing data (a uniqueness or "
                                   "consistency rule refused it)."}, status=status.HTTP_409_CONFLICT)
    return drf_exception_handler(exc, context)


# Messages for error statuses whose response carries no detail of its own (Django's pages, a renderer
# that is not JSON); any other status gets its reason phrase.
STATUS_MESSAGES = {
    400: "Bad request.",
    401: "Send an API key (Authorization: Api-Key <key>) or log in as staff.",
    403: "You do not have permission to perform this action.",
    404: "Not found.",
    405: "Method not allowed.",
    411: "Send the body with a Content-Length header.",
    413: "The request is too large.",
    500: "A server error occurred.",
}
# The API's root: the middleware's work covers it and every path under it.
API_ROOT = "/api"
# Methods whose request carries a body.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Headers of a response that describe its body, which the JSON answer replaces.
BODY_HEADERS = frozenset({"content-type", "content-length", "content-encoding", "content-disposition",
                          "content-language"})


def is_api_path(path: str) -> bool:
    return path == API_ROOT or path.startswith(f"{API_ROOT}/")


def _is_json(response) -> bool:
    media_type = response.get("Content-Type", "").split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def _detail(response) -> object:
    data = getattr(response, "data", None)  # a DRF response rendered by another renderer (the schema's YAML)
    if isinstance(data, dict) and data:
        return data
    status_code = response.status_code
    try:
        phrase = HTTPStatus(status_code).phrase
    except ValueError:
        phrase = "Error"
    return {"detail": STATUS_MESSAGES.get(status_code, f"{phrase}.")}


def _json_error(status_code: int, body: object) -> JsonResponse:
    return JsonResponse(body, status=status_code, json_dumps_params={"ensure_ascii": False})


class JsonErrorMiddleware:
    """Every error (4xx or 5xx) under /api/ is JSON, as API clients parse every answer as JSON: a URL
    that matches no route, a renderer that is not JSON (the schema's YAML), Django's own pages.

    First in MIDDLEWARE, so it also sees what the other middleware answer. A Host header not in
    ALLOWED_HOSTS and a query string with more than DATA_UPLOAD_MAX_NUMBER_FIELDS parameters are
    refused here, before anything reads them: elsewhere they raise where they are first read and
    become Django's HTML 400 (or, with DEBUG on, a debug page that itself fails reading them).

    A body sent in chunks (``Transfer-Encoding``, no ``Content-Length``) is refused with 411: the WSGI
    server hands it over as empty, and the request would be handled as if its fields were left out.

    A path without its trailing slash whose slashed form is a route is served as that route. Django's
    APPEND_SLASH would redirect it (a 301 losing the body of a POST) or, with DEBUG on, fail on a POST;
    the path is changed here, before CommonMiddleware looks at it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not is_api_path(request.path_info):
            return self.get_response(request)
        refused = self._refuse_suspicious(request) or self._refuse_chunked(request)
        if refused is not None:
            return refused
        self._append_slash(request)
        response = self.get_response(request)
        if response.status_code < 400 or _is_json(response):
            return response
        converted = _json_error(response.status_code, _detail(response))
        for name, value in response.items():
            if name.lower() not in BODY_HEADERS:
                converted[name] = value
        converted.cookies = response.cookies
        return converted

    @staticmethod
    def _refuse_chunked(request) -> JsonResponse | None:
        encoding = request.META.get("HTTP_TRANSFER_ENCODING", "").strip().lower()
        if (request.method in BODY_METHODS and encoding and encoding != "identity"
                and not request.META.get("CONTENT_LENGTH")):
            return _json_error(411, {"detail": "Send the body with a Content-Length header: a body sent in "
                                               "chunks (Transfer-Encoding) is not read."})
        return None

    @staticmethod
    def _append_slash(request) -> None:
        path = request.path_info
        if path.endswith("/"):
            return
        urlconf = getattr(request, "urlconf", None) or get_urlconf()
        if not is_valid_path(path, urlconf) and is_valid_path(f"{path}/", urlconf):
            request.path_info = f"{path}/"
            request.path = f"{request.path}/"
            request.META["PATH_INFO"] = f"{request.META.get('PATH_INFO', path)}/"

    @staticmethod
    def _refuse_suspicious(request) -> JsonResponse | None:
        try:
            request.get_host()
            request.GET  # noqa: B018 -- parsed here, where a refusal can still be JSON
        except SuspiciousOperation as exc:
            security_logger = logging.getLogger(f"django.security.{exc.__class__.__name__}")
            security_logger.error(str(exc), extra={"status_code": 400, "request": request})
            if isinstance(exc, DisallowedHost):
                message = "The Host header is not one this site serves."
            elif isinstance(exc, TooManyFieldsSent):
                message = (f"Too many query parameters: at most {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} "
                           "are accepted.")
            else:
                message = "Bad request."
            return _json_error(400, {"detail": message})
        return None
