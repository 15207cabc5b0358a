"""Failed API-key guesses, counted per client address, as the admin's login counts failed passwords.

An ``Authorization: Api-Key …`` header with a key that does not check out (unknown, revoked, expired or
empty) counts one failure against the client's address (the address the login lockout uses: the
connection's, or the one ``AICMO_CAM_TRUSTED_PROXY_COUNT`` proxies from the right of
``X-Forwarded-For``). After ``AICMO_CAM_API_KEY_FAILURES_PER_MINUTE`` failures in a clock minute, every
API key from that address is refused with 429 and ``Retry-After`` until the minute ends, before the key
is looked at: otherwise a 200 would still tell a guesser which key was right. Keys that check out
never count, and requests without a key are left to the ordinary throttles.

The counter is a fixed window in the shared cache (``cache.add`` then ``cache.incr``, both atomic), so
the limit holds across every web process.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from rest_framework import exceptions

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60
# What the windows are read from; tests put a clock of their own here.
clock: Callable[[], float] = time.time


def client_address(request) -> str:
    """The client's address as the login lockout sees it (``settings.AXES_CLIENT_IP_CALLABLE``)."""
    return settings.AXES_CLIENT_IP_CALLABLE(request) or "unknown"


def _window(now: float) -> int:
    return int(now // WINDOW_SECONDS)


def _counter(address: str, window: int) -> str:
    return f"cam_api_key_failures_{address}_{window}"


def key_guesses_check(request) -> None:
    """Refuse the request (429, ``Retry-After``: the seconds left in the minute) when its address has
    used up its failed attempts this minute. One cache read."""
    now = clock()
    window = _window(now)
    failures = cache.get(_counter(client_address(request), window), 0)
    if failures >= settings.AICMO_CAM_API_KEY_FAILURES_PER_MINUTE:
        wait = max(1, math.ceil((window + 1) * WINDOW_SECONDS - now))
        # DRF adds "Expected available in N seconds." to the detail, and Retry-After to the answer.
        raise exceptions.Throttled(wait=wait, detail="Too many failed API-key attempts from your address.")


def key_guess_failed(request) -> int:
    """Count one failed attempt against the request's address; returns the count this minute."""
    address = client_address(request)
    counter = _counter(address, _window(clock()))
    try:
        failures = cache.incr(counter)
    except ValueError:  # the minute's first failure: create the counter (once, whoever races)
        # It outlives its minute a little, so a slow request never increments a vanished key.
        cache.add(counter, 0, timeout=WINDOW_SECONDS + 60)
        failures = cache.incr(counter)
    if failures == settings.AICMO_CAM_API_KEY_FAILURES_PER_MINUTE:
        logger.warning("API keys from %s refused for the rest of the minute: %d failed attempts.", address, failures)
    return failures
