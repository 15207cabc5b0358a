"""One Resend request rate for every CAM process together.

Resend limits the requests of an account, not of a process: with four q2 workers each keeping its own
count, the account would see four times the limit and answer 429. So the limit is kept in Django's
default cache, which every process (on every host) shares, by pyrate-limiter's GCRA — its state, one
timestamp, lives

- in Redis when the cache is Redis (``RedisCache``): pyrate-limiter's own ``RedisStateStore``, whose
  Lua script reads and moves it in one atomic step;
- in the database otherwise (CAM's ``aicmo_site.cache.DatabaseCache``): ``DatabaseCacheStateStore``
  below moves it with the cache's ``update``, in one transaction holding the cache row;
- in this process alone with any other cache (local memory, dummy), which cannot be shared: a
  warning is logged, as the limit then holds per process only.

Requests are spaced evenly (a burst of one), at least ``SLACK / rate`` seconds apart, so no second
sees more than ``rate`` of them even when the network delays one request and hurries the next by up
to a tenth of a second: Resend counts them when they arrive, not when they leave.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from inspect import isawaitable
from typing import Any, Protocol, runtime_checkable

from django.conf import settings
from django.core.cache import BaseCache, caches
from django.core.cache.backends.redis import RedisCache
from django.db import DatabaseError
from pyrate_limiter import GCRA, AbstractClock, InMemoryStateStore, Rate, RateItem, RedisStateStore, StateBucket
from pyrate_limiter import StateStore as PyrateStateStore
from pyrate_limiter.abstracts.algorithm import Decision, State, StateAlgorithm
from pyrate_limiter.clocks import WallClock
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

CACHE_KEY = "cam:resend-rate"
# The state only matters until its timestamp has passed (a second or so); kept longer so the cache
# does not have to write it anew at every quiet spell.
STATE_TIMEOUT_SECONDS = 3600
# Requests are spaced for ``rate`` per 1.1 s: the tenth is the room left for the network's jitter.
SLACK = 1.1


class RateLimitUnavailable(Exception):
    """The shared limit could not be consulted (Redis or the database did not answer): no request may go out."""


class RateLimitBusy(Exception):
    """No turn came within the time the caller would wait: other processes hold the next ones."""


@runtime_checkable
class AtomicallyUpdatedCache(Protocol):
    """A cache whose ``update`` changes a value atomically across processes (aicmo_site.cache.DatabaseCache)."""

    def update(self, key: str, change: Callable[[Any], Any], timeout: float | None = ...,
               version: int | None = ...) -> Any: ...


class DatabaseCacheStateStore(PyrateStateStore):
    """pyrate-limiter's storage for a constant-state algorithm (GCRA), kept in a cache's value that
    ``update`` changes atomically: reading the state, stepping it and writing it back cannot be
    interleaved with another process doing the same."""

    is_async = False
    default_clock = WallClock()  # shared between processes and hosts: a monotonic clock means nothing there

    def __init__(self, cache: AtomicallyUpdatedCache, key: str) -> None:
        self.cache = cache
        self.key = key

    @staticmethod
    def _state(stored: Any, algorithm: StateAlgorithm, rates: list[Rate]) -> State:
        # Anything else (nothing stored, another rate list) starts afresh: the algorithm's initial state.
        if isinstance(stored, tuple) and len(stored) == len(rates):
            return stored
        return algorithm.initial(rates)

    def check(self, algorithm: StateAlgorithm, rates: list[Rate], now: int, weight: int) -> Decision:
        decided: list[Decision] = []

        def step(stored: Any) -> State:
            state, decision = algorithm.step(rates, self._state(stored, algorithm, rates), now, weight)
            decided.append(decision)  # update() may call step again: its last call is the one stored
            return state

        self.cache.update(self.key, step, timeout=STATE_TIMEOUT_SECONDS)
        return decided[-1]

    def read(self, algorithm: StateAlgorithm, rates: list[Rate]) -> State:
        assert isinstance(self.cache, BaseCache)
        return self._state(self.cache.get(self.key), algorithm, rates)

    def reset(self) -> None:
        assert isinstance(self.cache, BaseCache)
        self.cache.delete(self.key)


class _Clock(AbstractClock):
    """pyrate-limiter's clock (milliseconds) over ours (seconds), so a test can run the limit on a fake one."""

    def __init__(self, seconds: Callable[[], float]) -> None:
        self.seconds = seconds

    def now(self) -> int:
        return int(self.seconds() * 1000)


class SharedRateLimit:
    """At most ``rate`` requests a second, counted in ``store`` together with every process that uses it.

    ``clock`` (wall-clock seconds: the state is compared across processes) and ``sleep`` are
    injectable so tests can run it on a fake clock.
    """

    def __init__(self, rate: int, *, store: PyrateStateStore, where: str,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> None:
        if rate < 1:
            raise ValueError("rate must be at least 1")
        self.rate = rate
        self.where = where  # where the count is kept, for the messages
        self._clock = clock
        self._sleep = sleep
        self.bucket = StateBucket([Rate(rate, round(1000 * SLACK), burst=1)], algorithm=GCRA(), store=store,
                                  clock=_Clock(clock))
        # The bucket remembers its last verdict (for ``waiting``): one thread at a time asks it.
        self._lock = threading.Lock()

    def wait(self, *, seconds: float) -> None:
        """Block until one more request fits, and count it.

        Raises ``RateLimitBusy`` when that would take more than ``seconds``, and ``RateLimitUnavailable``
        when the count cannot be reached (Redis or the database down); then nothing was counted.
        """
        give_up = self._clock() + seconds
        while True:
            wait = self._try()
            if wait is None:
                return
            if self._clock() + wait > give_up:
                raise RateLimitBusy(f"No turn under the Resend rate limit of {self.rate} a second came within "
                                    f"{seconds:g} s: the other CAM processes sharing it hold the next ones.")
            self._sleep(wait)

    def _try(self) -> float | None:
        """Count one request and return None, or return how many seconds to wait before trying again."""
        with self._lock:
            item = RateItem("resend", int(self._clock() * 1000))
            try:
                if _sync(self.bucket.put(item)):
                    return None
                wait_ms: int = _sync(self.bucket.waiting(item))
            except (RedisError, DatabaseError) as exc:
                raise RateLimitUnavailable(f"The Resend rate limit shared in {self.where} could not be "
                                           f"consulted: {type(exc).__name__}: {exc}") from exc
        return max(wait_ms, 1) / 1000


def _sync(value: Any) -> Any:
    assert not isawaitable(value), "the limit's stores are synchronous"
    return value


_limits: dict[tuple[Any, ...], SharedRateLimit] = {}
_limits_lock = threading.Lock()


def resend_rate_limit() -> SharedRateLimit:
    """The limit of ``AICMO_CAM_RESEND_RATE_PER_SECOND`` this process shares with every other, in the
    default cache. One per process (for the current rate and cache settings), shared by its threads."""
    rate = settings.AICMO_CAM_RESEND_RATE_PER_SECOND
    config = settings.CACHES["default"]
    identity = (rate, config.get("BACKEND"), str(config.get("LOCATION")), config.get("KEY_PREFIX", ""))
    with _limits_lock:
        limit = _limits.get(identity)
        if limit is None:
            store, where = _shared_store(caches["default"])
            limit = _limits[identity] = SharedRateLimit(rate, store=store, where=where)
        return limit


def _shared_store(cache: BaseCache) -> tuple[PyrateStateStore, str]:
    if isinstance(cache, RedisCache):
        # The cache's own client (its pools, its time-outs): Django keeps it on its private ``_cache``;
        # tests/outreach/test_resend_rate.py fails if that moves.
        client = cache._cache.get_client(write=True)
        return RedisStateStore(client, cache.make_key(CACHE_KEY)), "Redis"
    if isinstance(cache, AtomicallyUpdatedCache):
        return DatabaseCacheStateStore(cache, CACHE_KEY), "the database cache"
    logger.warning("The default cache (%s) is not shared between processes: each CAM process keeps its own "
                   "Resend rate limit, so several together can exceed it.", type(cache).__name__)
    return InMemoryStateStore(), "this process"
