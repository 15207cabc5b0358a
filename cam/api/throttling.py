"""Scoped request rates per API key, counted in the shared cache so they hold across processes.

Scopes: ``cam_read`` (GET/HEAD/OPTIONS), ``cam_write`` (everything else) and ``cam_jobs`` (job runs,
set by the view's ``throttle_scope``); rates come from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]``.
A refused request gets 429 with ``Retry-After`` (DRF's exception handler sets it from ``wait()``).
"""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from cam.api.auth import api_key_of

READ, WRITE, JOBS = "cam_read", "cam_write", "cam_jobs"


class CamRateThrottle(SimpleRateThrottle):
    scope = READ

    @property
    def THROTTLE_RATES(self) -> dict:  # the name DRF's get_rate() reads
        # DRF copies the rates onto the class once, at import; read them per request instead, so a
        # changed setting (override_settings, a test's ``settings`` fixture) takes effect.
        return api_settings.DEFAULT_THROTTLE_RATES

    def allow_request(self, request, view) -> bool:
        self.scope = getattr(view, "throttle_scope", None) or (READ if request.method in SAFE_METHODS else WRITE)
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request, view) -> str:
        key = api_key_of(request)
        if key is not None:
            ident = f"key-{key.pk}"
        elif request.user is not None and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = f"addr-{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
