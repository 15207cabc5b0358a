"""``run_job``: the one way any job runs, from a schedule, the API, the admin or a command.

It guarantees that a job runs once per scheduled slot (``execution_id`` is derived from the job,
the campaign and the slot, and is unique in the database) and that two runs of the same job never
overlap on a campaign: not for the same campaign, and not a run for one campaign with a run for all
(a lease is taken first, see ``run_job``). Whatever happens, the outcome is a JobExecution row —
COMPLETED with counts, FAILED with the traceback, or SKIPPED with the reason.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, InterfaceError, OperationalError, transaction
from django.db.models import Q
from django.utils import timezone

from cam.jobs.registry import JobContext, get_job
from cam.jobs.run_hours import job_run_hours_refresh
from cam.locks import lease_acquire, lease_release, lease_renew
from cam.models import Campaign, JobExecution, Lease

logger = logging.getLogger(__name__)

Status = JobExecution.Status
Trigger = JobExecution.Trigger

# The error of a run the watchdog found RUNNING after its worker's lease lapsed.
WORKER_DIED = ("The worker running it died: its lease lapsed before the run finished (found by the watchdog; "
               "the worker's log says why it stopped).")
# How the reason of a run refused because another run of the job was going on begins.
ALREADY_RUNNING = "Already running"
GLOBAL = "global"


@dataclass(frozen=True)
class JobResult:
    execution_id: str
    job: str
    campaign_id: int | None
    status: str
    reason: str
    counts: dict[str, Any]
    error: str
    started_at: datetime
    finished_at: datetime | None
    # True for a SKIPPED run refused because another run of the job held its lease (not because the slot
    # already ran): a door can then answer "busy" rather than "done".
    refused_while_running: bool = False

    @property
    def duration_seconds(self) -> float | None:
        return None if self.finished_at is None else (self.finished_at - self.started_at).total_seconds()

    @property
    def ok(self) -> bool:
        return self.status in (Status.COMPLETED, Status.SKIPPED)

    @classmethod
    def from_execution(cls, execution: JobExecution) -> JobResult:
        return cls(execution_id=execution.execution_id, job=execution.job, campaign_id=execution.campaign_id,
                   status=execution.status, reason=execution.reason, counts=execution.counts,
                   error=execution.error, started_at=execution.started_at, finished_at=execution.finished_at)


class ExecutionUnrecorded(OperationalError):
    """A run ended but its outcome could not be saved: the database went away. ``execution`` holds
    the outcome (status, error, traceback, finished_at) for whoever records it once the database
    answers again (see ``job_execution_record_late``)."""

    def __init__(self, execution: JobExecution, cause: BaseException) -> None:
        self.execution = execution
        super().__init__(f"The outcome of {execution.execution_id} could not be saved: {type(cause).__name__}: "
                         f"{cause}")


def execution_id_for(*, job: str, campaign_id: int | None, slot: datetime) -> str:
    """The id of a job's run in one slot: the same job, campaign and slot always give the same id."""
    return f"{job}:{campaign_id or 'global'}:{slot.astimezone(UTC).isoformat()}"


def forced_execution_id_for(slot_id: str) -> str:
    """A fresh id for a forced run of the slot ``slot_id`` (see ``run_job``'s ``execution_id``)."""
    return f"{slot_id}:force-{uuid.uuid4().hex[:12]}"


def lease_name_for(*, job: str, campaign_id: int | None) -> str:
    return f"job:{job}:{campaign_id or GLOBAL}"


def lease_campaign_id(name: str) -> int | None:
    """The campaign of a job's lease name (``lease_name_for``); None for the run for all campaigns."""
    suffix = name.rsplit(":", 1)[-1]
    return int(suffix) if suffix.isdigit() else None


def _overlapping(*, job: str, campaign_id: int | None) -> Q:
    """The leases of the runs of ``job`` that a run for this campaign (None: for all) must not overlap.

    A run for one campaign overlaps a run for the same campaign and the run for all; the run for all
    overlaps every run of the job. Runs for two different campaigns do not overlap."""
    if campaign_id is None:
        return Q(name__startswith=f"job:{job}:")  # job names hold no ":", so no other job's lease matches
    return Q(name__in=[lease_name_for(job=job, campaign_id=campaign_id), lease_name_for(job=job, campaign_id=None)])


def running_lease(*, job: str, campaign_id: int | None, exclude: str | None = None) -> Lease | None:
    """The lease of a live run of ``job`` that a run for this campaign (None: for all) would overlap,
    the oldest first; None when there is none. One query, however many runs are going on.

    A lease past its expiry does not count: ``run_job`` would take it over. ``exclude``: a lease name
    to leave out (the caller's own)."""
    leases = Lease.objects.filter(_overlapping(job=job, campaign_id=campaign_id), expires_at__gt=timezone.now())
    if exclude:
        leases = leases.exclude(name=exclude)
    return leases.order_by("acquired_at", "name").first()


def job_is_running(*, job: str, campaign_id: int | None) -> bool:
    """Whether a live run of ``job`` that a run for this campaign (None: for all) would overlap holds
    its lease right now (see ``running_lease``)."""
    return running_lease(job=job, campaign_id=campaign_id) is not None


def running_execution(*, job: str, campaign_id: int | None) -> JobExecution | None:
    """The record of the run of ``job`` for exactly this campaign (None: the run for all) that is running
    now, newest first; None if there is none (the lease is taken just before the record is written, so
    there may briefly be none)."""
    # campaign_id=None filters on IS NULL, which the stubs' plugin does not allow for.
    return (JobExecution.objects.filter(job=job, campaign_id=campaign_id, status=Status.RUNNING)  # type: ignore[misc]
            .order_by("-started_at", "-id").first())


def run_job(
    name: str,
    *,
    campaign: Campaign | None = None,
    scheduled_for: datetime | None = None,
    force: bool = False,
    params: dict[str, Any] | None = None,
    trigger: str = Trigger.COMMAND,
    execution_id: str | None = None,
) -> JobResult:
    """Run the job ``name`` once for its slot and return what happened.

    ``scheduled_for`` is the slot (a schedule passes the time it fired for; without one the run gets
    a slot of its own, now). ``force`` runs again under a new id even if the slot already ran.
    Raises ``UnknownJob`` for a name no job is registered under; every other outcome is recorded.

    Overlaps: the run takes its lease (``lease_name_for``), then looks for a live lease of a run it must
    not overlap (``running_lease``). Finding one, it gives its lease back and is refused. Both sides
    take before they look, so of two runs that start together at least one sees the other and is
    refused; in the same instant both may be (neither runs, and neither uses up its slot).

    ``execution_id`` (with ``force`` only, from ``forced_execution_id_for`` of this slot) is the id the
    forced run is recorded under instead of a random one: a door that queues the run hands it out
    before the run exists. A refusal because the job is running is then recorded under it too, so
    whoever holds the id finds the outcome. Raises ``ValueError`` for an id that is not of that form.
    """
    spec = get_job(name)
    campaign_id = campaign.pk if campaign else None
    slot_id, record = _slot_and_record(name, campaign=campaign, scheduled_for=scheduled_for, params=params,
                                       trigger=trigger)
    slot, params = record["scheduled_for"], record["params"]
    if execution_id is not None and not (force and execution_id.startswith(f"{slot_id}:force-")):
        raise ValueError(f"{execution_id!r} is not a forced run's id for the slot {slot_id}.")
    assigned_id = execution_id
    if not force:
        execution_id = slot_id
    elif execution_id is None:
        execution_id = forced_execution_id_for(slot_id)

    if not force and JobExecution.objects.filter(execution_id=slot_id).exists():
        return _skipped(slot_id, f"This slot already ran as {slot_id}.", record)

    lease = lease_name_for(job=name, campaign_id=campaign_id)
    holder = f"{settings.AICMO_CAM_WORKER_ID}:{uuid.uuid4().hex[:12]}"
    if not lease_acquire(name=lease, holder=holder):
        return _skipped(slot_id, f"{ALREADY_RUNNING}: another run of {name} holds the lease {lease}.", record,
                        execution_id=assigned_id, refused_while_running=True)
    try:
        other = running_lease(job=name, campaign_id=campaign_id, exclude=lease)
        if other is not None:
            return _skipped(slot_id, f"{ALREADY_RUNNING}: another run of {name} holds the lease {other.name}.",
                            record, execution_id=assigned_id, refused_while_running=True)
        try:
            with transaction.atomic():
                execution = JobExecution.objects.create(execution_id=execution_id, status=Status.RUNNING,
                                                        started_at=timezone.now(), holder=holder, **record)
        except IntegrityError:
            # Another process claimed the same slot between our check and our insert.
            return _skipped(slot_id, f"This slot already ran as {slot_id}.", record)
        context = JobContext(execution=execution, campaign=campaign, params=params, slot=slot,
                             renew_lease=lambda: lease_renew(name=lease, holder=holder))
        try:
            counts = spec.func(context)
        except Exception as exc:
            logger.exception("Job %s failed (%s)", name, execution_id)
            execution.status = Status.FAILED
            execution.error = f"{type(exc).__name__}: {exc}"[:2000]
            execution.traceback = traceback.format_exc()
        else:
            execution.status = Status.COMPLETED
            execution.counts = dict(counts or {})
        execution.finished_at = timezone.now()
        try:
            execution.save(update_fields=["status", "error", "traceback", "counts", "finished_at"])
        except (InterfaceError, OperationalError) as exc:
            raise ExecutionUnrecorded(execution, exc) from exc
        return JobResult.from_execution(execution)
    finally:
        try:
            lease_release(name=lease, holder=holder)
        except DatabaseError:
            # The database is away: the lease lapses after its TTL, and the error on its way up says why.
            logger.warning("Could not release the lease %s: the database is away", lease)


def job_execution_record_late(*, execution: JobExecution) -> bool:
    """Record the outcome of a run that ended while the database was away (``ExecutionUnrecorded``),
    now that it answers; gives its lease back. True if the record was updated: still RUNNING, or failed
    by the watchdog meanwhile with nothing better to say than that the worker died."""
    unfinished = Q(status=Status.RUNNING) | Q(status=Status.FAILED, error=WORKER_DIED)
    updated = JobExecution.objects.filter(unfinished, execution_id=execution.execution_id).update(
        status=execution.status, error=execution.error, traceback=execution.traceback, counts=execution.counts,
        finished_at=execution.finished_at or timezone.now())
    if execution.holder:
        lease_release(name=lease_name_for(job=execution.job, campaign_id=execution.campaign_id),
                      holder=execution.holder)
    if updated:  # the watchdog may have failed it, and its hour been rolled up, meanwhile
        job_run_hours_refresh(execution.started_at)
    return bool(updated)


def job_record_unrun(name: str, *, error: str, started_at: datetime, finished_at: datetime,
                     trigger: str = Trigger.COMMAND, params: dict[str, Any] | None = None) -> JobResult:
    """Record as FAILED a run of ``name`` that never got as far as its own record (the database refused
    the connection), once the database answers: under the slot of ``started_at`` plus ``:unrun-…``."""
    get_job(name)
    slot_id, record = _slot_and_record(name, campaign=None, scheduled_for=started_at, params=params,
                                       trigger=trigger)
    execution = JobExecution.objects.create(
        execution_id=f"{slot_id}:unrun-{uuid.uuid4().hex[:12]}", status=Status.FAILED, error=error[:2000],
        started_at=started_at, finished_at=finished_at, **record)
    job_run_hours_refresh(started_at)  # recorded in an hour that may be rolled up already
    return JobResult.from_execution(execution)


def job_refuse(name: str, *, reason: str, campaign: Campaign | None = None, scheduled_for: datetime | None = None,
               params: dict[str, Any] | None = None, trigger: str = Trigger.COMMAND) -> JobResult:
    """Record a run of ``name`` for this slot that a door refused before it reached ``run_job`` (the API:
    a run of the slot is already queued) as SKIPPED with ``reason``, under the slot's id plus
    ``:skipped-…``, the way ``run_job`` records its own refusals."""
    get_job(name)
    slot_id, record = _slot_and_record(name, campaign=campaign, scheduled_for=scheduled_for, params=params,
                                       trigger=trigger)
    return _skipped(slot_id, reason, record)


def _slot_and_record(name: str, *, campaign: Campaign | None, scheduled_for: datetime | None,
                     params: dict[str, Any] | None, trigger: str) -> tuple[str, dict[str, Any]]:
    """The slot's id (a slot of its own, now, without ``scheduled_for``) and the fields every
    execution record of this run shares."""
    slot = scheduled_for or timezone.now()
    if timezone.is_naive(slot):
        slot = timezone.make_aware(slot)
    slot_id = execution_id_for(job=name, campaign_id=campaign.pk if campaign else None, slot=slot)
    return slot_id, {"job": name, "campaign": campaign, "scheduled_for": slot, "trigger": trigger,
                     "params": dict(params or {}), "worker_id": settings.AICMO_CAM_WORKER_ID}


def _skipped(slot_id: str, reason: str, record: dict[str, Any], *, execution_id: str | None = None,
             refused_while_running: bool = False) -> JobResult:
    now = timezone.now()
    execution = JobExecution.objects.create(
        execution_id=execution_id or f"{slot_id}:skipped-{uuid.uuid4().hex[:12]}", status=Status.SKIPPED,
        reason=reason, started_at=now, finished_at=now, **record)
    logger.info("Job %s skipped: %s", record["job"], reason)
    return replace(JobResult.from_execution(execution), refused_while_running=refused_while_running)
