"""JSON bodies, capped: DRF reads the request stream itself, past Django's DATA_UPLOAD_MAX_MEMORY_SIZE,
so the cap is enforced here (``AICMO_CAM_API_MAX_BODY_BYTES``) before anything is parsed."""

from __future__ import annotations

import io

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class BodyTooLarge(ParseError):
    default_code = "body_too_large"


def _limit() -> int:
    return settings.AICMO_CAM_API_MAX_BODY_BYTES


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
        return super().parse(io.BytesIO(data), media_type, parser_context)
