"""How the API's own pieces appear in the OpenAPI schema (drf-spectacular extensions)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "cam.api.auth.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "`Api-Key <key>`; create one in the admin or with "
                               "`manage.py cam_api_key create NAME` (shown once)."}


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


def document_common_errors(result, generator, request, public):
    """drf-spectacular post-processing hook: add the shared error responses an operation does not
    document itself (an operation's own description of a status wins)."""
    result.setdefault("components", {}).setdefault("schemas", {})[ERROR_COMPONENT] = ERROR_SCHEMA
    content = {"application/json": {"schema": ERROR_CONTENT_SCHEMA}}
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            if method not in {"get", "post", "put", "patch", "delete", "head", "options"}:
                continue
            errors = dict(COMMON_ERRORS)
            if method in {"post", "put", "patch", "delete"}:
                errors.update(WRITE_ERRORS)
            if operation.get("security") == [{}] or {} in operation.get("security", []):
                errors.pop("401")
                errors.pop("403")
            responses = operation.setdefault("responses", {})
            for status, description in errors.items():
                responses.setdefault(status, {"description": description, "content": content})
    return result
