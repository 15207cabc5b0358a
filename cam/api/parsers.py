"""JSON bodies, capped: DRF reads the request stream itself, past Django's DATA_UPLOAD_MAX_MEMORY_SIZE,
so the cap is enforced here (``AICMO_CAM_API_MAX_BODY_BYTES``) before anything is parsed. Nesting is
capped too (``MAX_DEPTH``): no request needs more than a few levels, and a deeply nested body would
otherwise exhaust Python's recursion limit in the parser or in whatever walks the result."""

from __future__ import annotations

import io

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# The deepest nesting of arrays and objects a body may have (the body itself is level 1).
MAX_DEPTH = 32


class BodyTooLarge(ParseError):
    default_code = "body_too_large"


class BodyTooDeep(ParseError):
    default_code = "body_too_deep"


def _limit() -> int:
    return settings.AICMO_CAM_API_MAX_BODY_BYTES


def _too_deep_message() -> str:
    return f"The JSON body is nested more than {MAX_DEPTH} levels deep."


def _exceeds_depth(value, limit: int) -> bool:
    """Whether ``value`` nests lists or dicts deeper than ``limit``, walked without recursion."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in item if isinstance(child, (dict, list)))
    return False


class CappedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = _limit()
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and declared.isdigit() and int(declared) > limit:
            raise BodyTooLarge(f"The request body is larger than {limit} bytes.")
        data = stream.read(limit + 1) if stream is not None else b""
        if len(data) > limit:
            raise BodyTooLarge(f"The request body is larger than {limit} bytes.")
        try:
            parsed = super().parse(io.BytesIO(data), media_type, parser_context)
        except RecursionError:  # nested past Python's recursion limit: the parser gave up
            raise BodyTooDeep(_too_deep_message()) from None
        if _exceeds_depth(parsed, MAX_DEPTH):
            raise BodyTooDeep(_too_deep_message())
        return parsed
