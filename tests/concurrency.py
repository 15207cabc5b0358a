"""Running the same work in several threads at once, each with its own database connection."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from django.db import connection

T = TypeVar("T")


def run_at_once(work: Callable[[], T], *, threads: int, timeout: float = 60) -> tuple[list[T], list[Exception]]:
    """Start ``threads`` threads that call ``work`` together (behind a barrier); return what each
    returned and what each raised — a thread's exception would otherwise vanish."""
    barrier = threading.Barrier(threads)
    results: list[T] = []
    errors: list[Exception] = []
    lock = threading.Lock()

    def run() -> None:
        try:
            barrier.wait(timeout=10)
            result = work()
            with lock:
                results.append(result)
        except Exception as exc:
            with lock:
                errors.append(exc)
        finally:
            connection.close()

    started = [threading.Thread(target=run) for _ in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join(timeout=timeout)
    return results, errors
