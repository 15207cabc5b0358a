"""``job_request``: what every door (the API, ``cam_run_job``, the admin's run-now actions, ``cam_demo``) calls
to run a job now or queue it, so the same request gets the same answer whichever door it came through.

It holds the request to the job's spec (``cam.jobs.registry.JobSpec``: whether it takes a campaign,
which parameters it reads, whether it may run inside a web request), then goes the runner's way: a slot
that already ran is refused as SKIPPED (whether or not the job is running now); so is a slot whose run
is queued and not run yet; otherwise a run it would overlap makes it busy. These are checked before
anything runs or is queued, in a fixed number of queries, so a busy job leaves no record and a queued
run is refused at once rather than later in the cluster. ``run_job`` and ``job_enqueue`` then hold the
same rules against races.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from django.utils import timezone

from cam.jobs.queue import job_enqueue, job_is_queued
from cam.jobs.registry import JobSpec, get_job, jobs_where
from cam.jobs.runner import (
    JobResult,
    execution_id_for,
    forced_execution_id_for,
    job_refuse,
    lease_campaign_id,
    run_job,
    running_lease,
)
from cam.models import Campaign, JobExecution, Lease

# Where the run is asked to happen: inside a web request (the API's ``wait``), in the foreground of a
# command (no request timeout to outlast), or queued to the cluster.
Where = Literal["request", "foreground", "queue"]


class JobRefused(ValueError):
    """The request breaks the job's rules; ``errors`` holds the messages by the field at fault."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__(" ".join(message for messages in errors.values() for message in messages))


@dataclass(frozen=True)
class JobOutcome:
    """What became of a request. Exactly one of: ``queued`` (``execution_id`` is the id the run will be
    recorded under); ``result`` (it ran, or was refused as SKIPPED and recorded); ``busy`` (a run it would
    overlap is going on: ``running_campaign_id`` is that run's scope, None for all campaigns)."""

    job: str
    campaign_id: int | None
    slot: datetime
    execution_id: str
    queued: bool = False
    result: JobResult | None = None
    busy: bool = False
    running_campaign_id: int | None = None

    @property
    def busy_message(self) -> str:
        scope = f"campaign {self.running_campaign_id}" if self.running_campaign_id else "all campaigns"
        return f"The job {self.job} is already running for {scope}; try again when it has finished."


def job_rule_errors(spec: JobSpec, *, campaign: Campaign | None, params: dict[str, Any],
                    where: Where) -> dict[str, list[str]]:
    """The job's rules this request breaks, by field; empty when it keeps them all."""
    errors: dict[str, list[str]] = {}
    if campaign is not None and spec.campaign == "refused":
        errors["campaign"] = [f"The job {spec.name} always works on every campaign; it takes no campaign."]
    elif campaign is None and spec.campaign == "required":
        errors["campaign"] = [f"The job {spec.name} works on one campaign; name it."]
    for name in sorted(params):
        if name not in spec.params:
            takers = jobs_where(lambda other, name=name: name in other.params)  # type: ignore[misc]  # a lambda's default
            errors[name] = [f"Only {', '.join(takers)} takes {name}." if takers else f"No job takes {name}."]
    if where == "request" and not spec.inline_allowed:
        errors["wait"] = [f"The job {spec.name} cannot run in the request: {spec.queue_only_because}. Queue it "
                          "instead (leave out wait, or send false) and poll the url of the answer."]
    return errors


def job_request(name: str, *, where: Where, trigger: str, campaign: Campaign | None = None,
                params: dict[str, Any] | None = None, scheduled_for: datetime | None = None,
                force: bool = False) -> JobOutcome:
    """Run the job ``name`` now (``where`` "request" or "foreground") or queue it ("queue") for its slot
    (``scheduled_for``; default now, a slot of its own), after holding the request to the job's rules.

    Raises ``UnknownJob`` for a name no job is registered under and ``JobRefused`` for a request the
    job's spec refuses; nothing is recorded then. ``force`` runs the slot again under a new id."""
    spec = get_job(name)
    params = dict(params or {})
    errors = job_rule_errors(spec, campaign=campaign, params=params, where=where)
    if errors:
        raise JobRefused(errors)
    campaign_id = campaign.pk if campaign else None
    slot = scheduled_for or timezone.now()
    if timezone.is_naive(slot):  # as the runner reads it: in the current time zone
        slot = timezone.make_aware(slot)
    slot_id = execution_id_for(job=name, campaign_id=campaign_id, slot=slot)
    outcome: dict[str, Any] = {"job": name, "campaign_id": campaign_id, "slot": slot}

    slot_taken = not force and JobExecution.objects.filter(execution_id=slot_id).exists()
    if not slot_taken:
        if not force and job_is_queued(slot_id):
            return _already_queued(outcome, campaign=campaign, params=params, trigger=trigger, slot_id=slot_id)
        holder = running_lease(job=name, campaign_id=campaign_id)
        if holder is not None:
            return _busy(outcome, holder, slot_id=slot_id)

    if where != "queue" or slot_taken:
        # A taken slot is refused by the runner at once (and the refusal recorded): no need for the cluster.
        result = run_job(name, campaign=campaign, scheduled_for=slot, force=force, params=params, trigger=trigger)
        if result.refused_while_running:  # another run started between our check and the runner's
            return replace(_busy(outcome, running_lease(job=name, campaign_id=campaign_id), slot_id=slot_id),
                           result=result)
        return JobOutcome(**outcome, execution_id=result.execution_id, result=result)

    execution_id = forced_execution_id_for(slot_id) if force else slot_id
    queued = job_enqueue(job=name, trigger=trigger, campaign_id=campaign_id, params=params, force=force,
                         scheduled_for=slot.isoformat(), execution_id=execution_id if force else None,
                         reserve_as=None if force else slot_id)
    if not queued:  # another request queued the slot between our check and our reservation
        return _already_queued(outcome, campaign=campaign, params=params, trigger=trigger, slot_id=slot_id)
    return JobOutcome(**outcome, execution_id=execution_id, queued=True)


def _busy(outcome: dict[str, Any], lease: Lease | None, *, slot_id: str) -> JobOutcome:
    # The lease names the running run's scope; when it is gone meanwhile, the asked scope stands in.
    running = lease_campaign_id(lease.name) if lease is not None else outcome["campaign_id"]
    return JobOutcome(**outcome, execution_id=slot_id, busy=True, running_campaign_id=running)


def _already_queued(outcome: dict[str, Any], *, campaign: Campaign | None, params: dict[str, Any], trigger: str,
                    slot_id: str) -> JobOutcome:
    result = job_refuse(outcome["job"], campaign=campaign, scheduled_for=outcome["slot"], params=params,
                        trigger=trigger,
                        reason=f"Already queued: the run of this slot is queued as {slot_id}; poll that execution "
                               "for its outcome.")
    return JobOutcome(**outcome, execution_id=result.execution_id, result=result)
