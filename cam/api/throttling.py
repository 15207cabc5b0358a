"""Scoped request rates per API key, counted in the shared cache so they hold across processes.

Scopes: ``cam_read`` (GET/HEAD/OPTIONS), ``cam_write`` (everything else) and ``cam_jobs`` (job runs,
set by the view's ``throttle_scope``); rates come from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]``.
A refused request gets 429 with ``Retry-After`` (DRF's exception handler sets it from ``wait()``).

Counting is a fixed window per key and scope: ``cache.add`` creates the window's counter and
``cache.incr`` counts, both atomic (Redis natively; the database cache through
``aicmo_site.cache.DatabaseCache``), so simultaneous requests from several processes cannot all
read the same count and slip past the limit, as DRF's read-then-write request history can. A
client may spend its whole allowance at the end of one window and again at the start of the next.
"""

from __future__ import annotations

import math
import time

from django.core.cache import cache as default_cache
from rest_framework.permissions import SAFE_METHODS
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from cam.api.auth import api_key_of

READ, WRITE, JOBS = "cam_read", "cam_write", "cam_jobs"


class CamRateThrottle(SimpleRateThrottle):
    scope = READ
    cache = default_cache
    cache_format = "throttle_%(scope)s_%(ident)s"
    timer = staticmethod(time.time)

    def __init__(self) -> None:
        # DRF's __init__ reads the rate of the class scope; the scope is only known per request.
        self.window_end = self.now = 0.0

    # The stubs declare DRF's class attribute; get_rate() reads this property the same way.
    @property
    def THROTTLE_RATES(self) -> dict:  # type: ignore[override]  # the name DRF's get_rate() reads
        # DRF copies the rates onto the class once, at import; read them per request instead, so a
        # changed setting (override_settings, a test's ``settings`` fixture) takes effect.
        return api_settings.DEFAULT_THROTTLE_RATES

    def allow_request(self, request, view) -> bool:
        self.scope = getattr(view, "throttle_scope", None) or (READ if request.method in SAFE_METHODS else WRITE)
        self.rate = self.get_rate()
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        assert self.num_requests is not None and self.duration is not None  # parsed from a rate
        self.now = self.timer()
        window = int(self.now // self.duration)
        self.window_end = (window + 1) * self.duration
        counter = self.counter_key(self.get_cache_key(request, view), window)
        return self._count(counter) <= self.num_requests

    @staticmethod
    def counter_key(base: str, window: int) -> str:
        return f"{base}_{window}"

    def _count(self, counter: str) -> int:
        try:
            return self.cache.incr(counter)
        except ValueError:  # the window's first request: create its counter (once, whoever races)
            # It outlives its window a little, so a slow request never increments a vanished key.
            assert self.duration is not None  # set by allow_request()
            self.cache.add(counter, 0, timeout=self.duration + 60)
            return self.cache.incr(counter)

    def wait(self) -> float:
        return max(1, math.ceil(self.window_end - self.now))

    def get_cache_key(self, request, view) -> str:
        key = api_key_of(request)
        if key is not None:
            ident = f"key-{key.pk}"
        elif request.user is not None and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = f"addr-{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
