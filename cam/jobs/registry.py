"""The jobs CAM can run, by name. Each job is a function of a JobContext that returns its counts, and its
spec says what a door may ask of it (a campaign, parameters, a run inside a web request); ``job_request``
holds every door to it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from cam.models import Campaign, JobExecution

Counts = dict[str, int]
# "optional": the job works on the campaign it is given, and on every working campaign without one.
# "refused": it always works on everything; a campaign would give its run a lease of its own, so two runs
# could overlap. "required": it cannot run without one.
CampaignRule = Literal["required", "optional", "refused"]
# Why a job that is not marked quick may not run inside a web request, unless its spec says otherwise.
MAY_OUTLAST_A_REQUEST = "it can run for longer than a web request may last"


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
    campaign: CampaignRule = "refused"
    # Quick enough to run inside a web request: it only reads and writes the database. The others talk to
    # outside servers and can outlast the web server's request timeout, which would kill the run half done
    # and leave its lease held until it expires; they are queued. A new job is queue-only until marked.
    inline_allowed: bool = False
    queue_only_because: str = MAY_OUTLAST_A_REQUEST
    # The parameters the job reads; a door refuses any other rather than have it ignored.
    params: frozenset[str] = frozenset()


_JOBS: dict[str, JobSpec] = {}


class UnknownJob(LookupError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"Unknown job {name!r}; known jobs: {', '.join(job_names())}.")


def job(name: str, *, description: str = "", campaign: CampaignRule = "refused", inline_allowed: bool = False,
        queue_only_because: str = MAY_OUTLAST_A_REQUEST,
        params: tuple[str, ...] = ()) -> Callable[[Callable[[JobContext], Counts]], Callable]:
    """Register a job function under ``name``, with the rules of its ``JobSpec``."""

    def register(func: Callable[[JobContext], Counts]) -> Callable[[JobContext], Counts]:
        if name in _JOBS and _JOBS[name].func is not func:
            raise ValueError(f"A job named {name!r} is already registered.")
        _JOBS[name] = JobSpec(name=name, func=func, description=description or (func.__doc__ or "").strip(),
                              campaign=campaign, inline_allowed=inline_allowed,
                              queue_only_because=queue_only_because, params=frozenset(params))
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


def jobs_where(test: Callable[[JobSpec], bool]) -> list[str]:
    """The names of the jobs whose spec passes ``test``, sorted (for messages and help texts)."""
    _load_jobs()
    return sorted(name for name, spec in _JOBS.items() if test(spec))


def _load_jobs() -> None:
    # Jobs register themselves on import; importing the module that lists them is enough. Imported here, on
    # first use, not at the top: the jobs import the runner (the worker cycle runs its steps through it),
    # and the runner looks jobs up here. The import contracts in pyproject.toml allow this one import.
    from cam.jobs import definitions  # noqa: F401
