"""Overall time limits for network conversations, and cutting them off on demand.

Sockets only time out per read: a server that sends one byte a second never trips a 30 s timeout,
and can hold a conversation — and the worker waiting on it — for as long as it likes. A ``Deadline``
limits the whole conversation instead::

    with Deadline(60, "talking to the SMTP server") as deadline:
        deadline.watch(connection.sock)  # or, where the socket is created: deadlines.watch(sock)
        ...  # raises DeadlineExceeded("Gave up talking to the SMTP server after 60 s") when it runs out

When it runs out, or is cancelled, every socket it watches is shut down (``SHUT_RDWR``): a read
blocked on it, in any thread, returns at once, and the conversation fails where it stands. What the
caller sees is a ``DeadlineExceeded`` (a ``TimeoutError``) that says what was being done.

A ``CancelScope`` groups deadlines that are cut off together: the IMAP conversations of one poll
step, say. Cancelling it is final (a deadline started in it later is cut off at once), and it can
cancel itself after a budget. ``cancel_interruptible(reason)`` cancels every interruptible scope
open in the process: the worker calls it when told to stop. Conversations that must not be cut in
the middle (an SMTP message after DATA, whose outcome would become unknown) use a deadline outside
any interruptible scope.

All deadlines share one timer thread (a heap of expiries), so a deadline costs a few microseconds
and no thread of its own. The module's state is guarded by one re-entrant lock: re-entrant because
``cancel_interruptible`` runs from a signal handler, which may interrupt the main thread while it
holds the lock.
"""

from __future__ import annotations

import contextvars
import heapq
import itertools
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from types import TracebackType
from typing import Literal, TypeVar, cast


class DeadlineExceeded(TimeoutError):
    """A conversation ran out of time (``cancelled`` empty) or was cut off (``cancelled`` says why)."""

    def __init__(self, doing: str, seconds: float, cancelled: str = "") -> None:
        self.doing, self.seconds, self.cancelled = doing, seconds, cancelled
        if cancelled:
            super().__init__(f"Stopped {doing}: {cancelled}")
        else:
            super().__init__(f"Gave up {doing} after {seconds:g} s")


class _Timer:
    __slots__ = ("action", "done")

    def __init__(self, action: Callable[[], None]) -> None:
        self.action = action
        self.done = False


_lock = threading.RLock()
_wakeup = threading.Condition(_lock)
_heap: list[tuple[float, int, _Timer]] = []
_sequence = itertools.count()
_stale = 0  # timers in the heap that are done: dropped when they come up, or all at once when many
_thread: threading.Thread | None = None
_interruptible: set[CancelScope] = set()
_current: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("cam_deadline", default=None)
_E = TypeVar("_E", bound=BaseException | None)


def _schedule(seconds: float, action: Callable[[], None]) -> _Timer:
    global _thread
    timer = _Timer(action)
    with _lock:
        entry = (time.monotonic() + seconds, next(_sequence), timer)
        heapq.heappush(_heap, entry)
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run_timers, name="cam-deadlines", daemon=True)
            _thread.start()
        elif _heap[0] is entry:  # sooner than what the timer thread is waiting for
            _wakeup.notify()
    return timer


def _unschedule(timer: _Timer) -> None:
    global _heap, _stale
    with _lock:
        if timer.done:
            return
        timer.done = True
        _stale += 1
        # Done timers wait in the heap until they come up; when they are most of it, drop them all,
        # so thousands of short conversations under long deadlines do not pile up.
        if _stale > 64 and _stale * 2 > len(_heap):
            _heap = [entry for entry in _heap if not entry[2].done]
            heapq.heapify(_heap)
            _stale = 0


def _run_timers() -> None:
    global _stale
    with _lock:
        while True:
            now = time.monotonic()
            while _heap and (_heap[0][2].done or _heap[0][0] <= now):
                _, _, timer = heapq.heappop(_heap)
                if timer.done:
                    _stale -= 1
                    continue
                timer.done = True
                timer.action()  # shutting sockets down: quick, and never blocks
            _wakeup.wait(_heap[0][0] - now if _heap else None)


def _reset_after_fork() -> None:
    # A child process (django-q forks its workers) has no timer thread, and a lock held at the
    # fork by another thread would never be released: start afresh.
    global _lock, _wakeup, _heap, _stale, _thread, _interruptible
    _lock = threading.RLock()
    _wakeup = threading.Condition(_lock)
    _heap, _stale, _thread, _interruptible = [], 0, None, set()


os.register_at_fork(after_in_child=_reset_after_fork)


def _shut(handle: socket.socket) -> None:
    with suppress(OSError):  # closed already, or not connected any more
        handle.shutdown(socket.SHUT_RDWR)


class Deadline:
    """An overall time limit for one conversation, used as ``with Deadline(seconds, doing) as d:``.

    ``doing`` completes "Gave up … after 60 s", e.g. "talking to the SMTP server". When the time
    runs out or the deadline is cancelled (directly, or through its ``scope``), every watched socket
    is shut down. An exception that comes out of the block because of that comes out as
    ``DeadlineExceeded`` (caused by the original one), unless the block asked for the error itself
    (``explain``, ``check``) to report it in its own words. A block that finished still counts as
    finished, even when the time ran out just as it did.
    """

    def __init__(self, seconds: float, doing: str, *, scope: CancelScope | None = None) -> None:
        self.seconds = seconds
        self.doing = doing
        self.scope = scope
        self.expired = False
        self.cancelled = ""
        self._handles: list[socket.socket] = []
        self._timer: _Timer | None = None
        self._token: contextvars.Token[Deadline | None] | None = None
        self._reported = False

    @property
    def fired(self) -> bool:
        """Whether the time ran out or the deadline was cancelled: its sockets are shut down."""
        return self.expired or bool(self.cancelled)

    def __enter__(self) -> Deadline:
        with _lock:
            self._timer = _schedule(self.seconds, self._expire)
            if self.scope is not None:
                self.scope._join(self)  # cut off at once when the scope is cancelled already
        self._token = _current.set(self)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> Literal[False]:
        assert self._token is not None and self._timer is not None  # both set by __enter__
        _current.reset(self._token)
        with _lock:
            _unschedule(self._timer)
            if self.scope is not None:
                self.scope._leave(self)
            handles, self._handles = self._handles, []
            for handle in handles:
                handle.close()
        if isinstance(exc, Exception) and not self._reported:
            error = self.explain(exc)
            if error is not exc:
                raise error from exc
        return False

    def watch(self, sock: socket.socket | None) -> None:
        """Shut ``sock`` down when this deadline runs out or is cancelled (at once if it has).

        The deadline keeps its own duplicate of the socket's descriptor: shutting that down ends the
        connection whichever object owns the socket by then (a TLS handshake wraps the plain socket
        in a new one), and it can never touch another connection that reuses the number.
        """
        if sock is None:
            return
        try:
            handle = socket.fromfd(sock.fileno(), sock.family, sock.type, sock.proto)
        except (AttributeError, OSError, ValueError):  # no socket, or closed already: nothing to cut
            return
        with _lock:
            self._handles.append(handle)
            if self.fired:
                _shut(handle)

    def cancel(self, reason: str) -> None:
        """Cut the conversation off now; ``reason`` completes "Stopped …: <reason>"."""
        self._fire(reason or "cancelled")

    def explain(self, exc: _E) -> _E | DeadlineExceeded:
        """What to report for ``exc``: when this deadline ran out or was cancelled (which is then why
        ``exc`` happened, whatever it says), its ``DeadlineExceeded``, caused by ``exc``; else ``exc``."""
        if not self.fired or isinstance(exc, DeadlineExceeded):
            return exc
        self._reported = True
        error = DeadlineExceeded(self.doing, self.seconds, self.cancelled)
        error.__cause__ = exc
        return error

    def check(self) -> None:
        """Raise ``DeadlineExceeded`` when this deadline ran out or was cancelled."""
        if self.fired:
            raise cast(DeadlineExceeded, self.explain(None))  # fired, so never None

    @contextmanager
    def explaining(self) -> Iterator[None]:
        """Within: an exception raised because this deadline fired comes out as its ``DeadlineExceeded``."""
        try:
            yield
        except Exception as exc:
            error = self.explain(exc)
            if error is exc:
                raise
            raise error from exc

    def _expire(self) -> None:
        with _lock:
            if not self.fired:
                self.expired = True
                self._shut_all()

    def _fire(self, reason: str) -> None:
        with _lock:
            if not self.fired:
                self.cancelled = reason
                self._shut_all()

    def _shut_all(self) -> None:
        for handle in list(self._handles):
            _shut(handle)


class CancelScope:
    """Deadlines that are cut off together (``Deadline(..., scope=scope)``), used as ``with scope:``.

    ``cancel(reason)`` cuts off every deadline running in the scope, and every one started in it
    later: cancelling is final. ``cancel_after(seconds, reason)`` does it when the time has passed,
    unless the scope was closed first. While open, an ``interruptible`` scope is also cancelled by
    ``cancel_interruptible``.
    """

    def __init__(self, *, interruptible: bool = False) -> None:
        self.interruptible = interruptible
        self.cancelled = ""  # why, once it is
        self._deadlines: set[Deadline] = set()
        self._timers: list[_Timer] = []

    def __enter__(self) -> CancelScope:
        if self.interruptible:
            with _lock:
                _interruptible.add(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        with _lock:
            _interruptible.discard(self)
            for timer in self._timers:
                _unschedule(timer)
            self._timers.clear()

    def cancel(self, reason: str) -> None:
        with _lock:
            if self.cancelled:
                return
            self.cancelled = reason or "cancelled"
            for deadline in list(self._deadlines):
                deadline._fire(self.cancelled)

    def cancel_after(self, seconds: float, reason: str) -> None:
        with _lock:
            self._timers.append(_schedule(seconds, lambda: self.cancel(reason)))

    def _join(self, deadline: Deadline) -> None:
        with _lock:
            self._deadlines.add(deadline)
            if self.cancelled:
                deadline._fire(self.cancelled)

    def _leave(self, deadline: Deadline) -> None:
        with _lock:
            self._deadlines.discard(deadline)


def watch(sock: socket.socket) -> None:
    """Put ``sock`` under the deadline active in this thread (the innermost ``with Deadline``), if any.

    For the places where a library creates a connection's socket (and reads the server's greeting
    before handing the connection back): the caller's deadline covers it from its first byte.
    """
    deadline = _current.get()
    if deadline is not None:
        deadline.watch(sock)


def cancel_interruptible(reason: str) -> int:
    """Cancel every interruptible scope open in this process, with ``reason``; returns how many.

    Safe to call from a signal handler and from any thread: it only shuts sockets down.
    """
    with _lock:
        scopes = list(_interruptible)
        for scope in scopes:
            scope.cancel(reason)
    return len(scopes)
