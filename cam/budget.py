"""When a long step must stop: a time budget, a stop request, and the leases it must keep alive.

A step that works through many items (a send batch, a chunked poll) asks ``Budget.exhausted()``
before each item. The answer is "" while it may go on, or why it must stop: the worker was told to
stop (SIGTERM), the step's time is up (so the cycle still reaches its later steps every interval),
or a lease it holds was lost (another worker took over after it expired: the holder stops at once
rather than work beside its replacement).

Leases are renewed from here as the step goes, at most every ``renew_every`` seconds, so a step
longer than a lease's time to live keeps its lease for as long as it is alive, at the cost of one
statement per renewal rather than one per item.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

STOPPED = "stopped"
OUT_OF_TIME = "out of time"
LEASE_LOST = "lease "  # how the reason of a lost lease begins: "lease <name> lost: …"


@dataclass
class Budget:
    """``deadline`` is a ``time.monotonic()`` value (None: no limit); ``stop`` an event set when the
    worker must stop; ``keep_alive`` callables renew the caller's leases and answer False once one
    was lost. ``clock`` is injectable for tests."""

    deadline: float | None = None
    stop: threading.Event | None = None
    keep_alive: tuple[tuple[str, Callable[[], bool]], ...] = ()
    renew_every: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _renewed_at: float | None = field(default=None, repr=False)

    @classmethod
    def unlimited(cls) -> Budget:
        return cls()

    def within(self, seconds: float | None) -> Budget:
        """A budget for a part of this step: the earlier of both deadlines, the same stop and leases."""
        if seconds is None:
            return replace(self, _renewed_at=None)
        deadline = self.clock() + seconds
        if self.deadline is not None:
            deadline = min(deadline, self.deadline)
        return replace(self, deadline=deadline, _renewed_at=None)

    def keeping(self, name: str, renew: Callable[[], bool]) -> Budget:
        """This budget, also keeping the lease ``name`` alive with ``renew``."""
        return replace(self, keep_alive=(*self.keep_alive, (name, renew)), _renewed_at=None)

    def exhausted(self) -> str:
        """"" while the step may take one more item; else why it must stop now."""
        if self.stop is not None and self.stop.is_set():
            return STOPPED
        now = self.clock()
        if self.deadline is not None and now >= self.deadline:
            return OUT_OF_TIME
        if self.keep_alive and (self._renewed_at is None or now - self._renewed_at >= self.renew_every):
            for name, renew in self.keep_alive:
                if not renew():
                    return f"{LEASE_LOST}{name} lost: another worker took it over"
            self._renewed_at = now
        return ""


def lease_lost(reason: str) -> bool:
    """Whether ``reason`` (from ``Budget.exhausted``) says a lease was lost: the holder must stop all
    its work, not only this step."""
    return reason.startswith(LEASE_LOST)
