"""The jobs CAM can run, by name. Each job is a function of a JobContext that returns its counts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cam.models import Campaign, JobExecution

Counts = dict[str, int]


@dataclass
class JobContext:
    """What a running job knows: its record, its campaign (or None for all), and its parameters."""

    execution: JobExecution
    campaign: Campaign | None
    params: dict[str, Any]
    slot: datetime
    renew_lease: Callable[[], bool] = field(repr=False, default=lambda: True)


@dataclass(frozen=True)
class JobSpec:
    name: str
    func: Callable[[JobContext], Counts]
    description: str


_JOBS: dict[str, JobSpec] = {}


class UnknownJob(LookupError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"Unknown job {name!r}; known jobs: {', '.join(job_names())}.")


def job(name: str, *, description: str = "") -> Callable[[Callable[[JobContext], Counts]], Callable]:
    """Register a job function under ``name``."""

    def register(func: Callable[[JobContext], Counts]) -> Callable[[JobContext], Counts]:
        if name in _JOBS and _JOBS[name].func is not func:
            raise ValueError(f"A job named {name!r} is already registered.")
        _JOBS[name] = JobSpec(name=name, func=func, description=description or (func.__doc__ or "").strip())
        return func

    return register


def get_job(name: str) -> JobSpec:
    _load_jobs()
    try:
        return _JOBS[name]
    except KeyError:
        raise UnknownJob(name) from None


def job_names() -> list[str]:
    _load_jobs()
    return sorted(_JOBS)


def _load_jobs() -> None:
    # Jobs register themselves on import; importing the module that lists them is enough.
    from cam.jobs import definitions  # noqa: F401
