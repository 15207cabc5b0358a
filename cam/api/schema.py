"""How the API's own pieces appear in the OpenAPI schema (drf-spectacular extensions)."""

from django.conf import settings
from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiSerializerExtension,
    OpenApiSerializerFieldExtension,
)
from drf_spectacular.utils import OpenApiResponse

from cam.api.serializers import StrictMixin


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "cam.api.auth.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "`Api-Key <key>`; create one in the admin or with "
                               "`manage.py cam_api_key create NAME` (shown once)."}


class StrictSerializerScheme(OpenApiSerializerExtension):
    """A request body read by a strict serializer refuses fields it does not know: say so in the schema
    (``additionalProperties: false``), so clients and validators see the same rule."""

    target_class = StrictMixin
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        if direction == "request" and schema.get("type") == "object":
            schema["additionalProperties"] = False
        return schema


class LeadItemsScheme(OpenApiSerializerFieldExtension):
    """The items of a bulk lead request: each a lead as for a single create, at least one and at most
    AICMO_CAM_API_BULK_MAX_ITEMS (the field itself reads any JSON value, so that it can report a bad item
    by its index)."""

    target_class = "cam.api.leads.LeadItemsField"

    def map_serializer_field(self, auto_schema, direction):
        from cam.api.leads import LeadInputSerializer

        item = auto_schema.resolve_serializer(LeadInputSerializer, direction)
        return {"type": "array", "items": item.ref, "minItems": 1,
                "maxItems": settings.AICMO_CAM_API_BULK_MAX_ITEMS}


# What the shared machinery (authentication, permissions, throttles, the capped JSON parser, the
# exception handler, pagination) can answer for any operation: documented once, here, for all of them.
ERROR_COMPONENT = "CamError"
ERROR_SCHEMA = {
    "type": "object",
    "description": "`detail` for a refusal; for invalid input, one entry per field with its messages "
                   "(`{\"name\": [\"This field is required.\"]}`).",
    "properties": {"detail": {"type": "string"}},
    "additionalProperties": True,
}
ERROR_CONTENT_SCHEMA = {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}
COMMON_ERRORS = {
    "400": "Invalid input: a body, query parameter or page that is malformed, of the wrong type, out of "
           "range or unknown; or a body larger than the limit.",
    "401": "No credentials, or an unknown, revoked or expired API key.",
    "403": "A read-only key on a write, or a session that is not staff.",
    "404": "No such object, or a page past the last one.",
    "429": "Too many requests for this key in this scope; retry after `Retry-After` seconds.",
}
WRITE_ERRORS = {
    "409": "The request conflicts with the current state or with existing data.",
    "415": "The body is not JSON (`Content-Type: application/json`).",
}


def error_response(description: str) -> OpenApiResponse:
    """An error response an operation documents itself, for a description of its own (a 409 that says
    what conflicts): the shared ``CamError`` body. Statuses that only repeat the common descriptions are
    left to ``document_common_errors``."""
    return OpenApiResponse(ERROR_CONTENT_SCHEMA, description=description)


def _view_classes(generator) -> dict[tuple[str, str], type | None]:
    """The view class behind each operation, by (path, method)."""
    return {(path, method.lower()): getattr(callback, "cls", None)
            for path, _regex, method, callback in (generator.endpoints or [])}


def _errors_answerable(method: str, operation: dict, view_class) -> dict[str, str]:
    """The shared errors an operation can answer: a public operation (no security requirement, or an
    optional one) answers no 401 or 403; an unthrottled one no 429; one with no parameter and no body
    no 400; one with no path parameter that is not a paginated list no 404."""
    errors = dict(COMMON_ERRORS)
    if method in {"post", "put", "patch", "delete"}:
        errors.update(WRITE_ERRORS)
    security = operation.get("security")
    if not security or {} in security:  # none required, or optional
        errors.pop("401")
        errors.pop("403")
    if view_class is not None and not view_class.throttle_classes:
        errors.pop("429")
    parameters = operation.get("parameters", [])
    if not parameters and "requestBody" not in operation:
        errors.pop("400")
    if not any(parameter.get("in") == "path" or parameter.get("name") == "page" for parameter in parameters):
        errors.pop("404")
    return errors


def document_common_errors(result, generator, request, public):
    """drf-spectacular post-processing hook: add the shared error responses an operation can answer
    and does not document itself (an operation's own description of a status wins)."""
    result.setdefault("components", {}).setdefault("schemas", {})[ERROR_COMPONENT] = ERROR_SCHEMA
    content = {"application/json": {"schema": ERROR_CONTENT_SCHEMA}}
    views = _view_classes(generator)
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in {"get", "post", "put", "patch", "delete", "head", "options"}:
                continue
            errors = _errors_answerable(method, operation, views.get((path, method)))
            responses = operation.setdefault("responses", {})
            for status, description in errors.items():
                responses.setdefault(status, {"description": description, "content": content})
    return result


# No text CAM accepts may hold a NUL character (cam.middleware refuses one anywhere in a request, and a
# serializer's text field refuses one in a body), so every free-text string in a request says so.
NO_NUL = {"pattern": "^[^\\u0000]*$"}


def _forbid_nul(schema: object) -> None:
    if not isinstance(schema, dict):
        return
    if schema.get("type") == "string" and not ({"enum", "format", "pattern"} & schema.keys()):
        schema.update(NO_NUL)
    for key in ("items", "additionalProperties"):
        _forbid_nul(schema.get(key))
    for child in (schema.get("properties") or {}).values():
        _forbid_nul(child)
    for key in ("allOf", "anyOf", "oneOf"):
        for child in schema.get(key) or []:
            _forbid_nul(child)


def document_no_nul(result, generator, request, public):
    """drf-spectacular post-processing hook: request parameters and request bodies' text fields carry
    a pattern refusing NUL, the one character no request may hold."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict):
                for parameter in operation.get("parameters", []):
                    _forbid_nul(parameter.get("schema"))
    for name, schema in result.get("components", {}).get("schemas", {}).items():
        if name.endswith("Request"):  # COMPONENT_SPLIT_REQUEST: the bodies clients send
            _forbid_nul(schema)
    return result
