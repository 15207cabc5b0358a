"""The autonomous worker's cycle: every step of the outreach loop, in order, one holder at a time.

One cycle is one run of the ``worker_cycle`` job through ``run_job``, so it is a JobExecution with
each step's counts and errors. Its lease is the job's own lease (``CYCLE_LEASE``): ``run_job`` takes
it before the cycle starts and releases it after the heartbeat is written, the cycle renews it after
every step, and a worker that finds it held records a SKIPPED run with the reason. There is no
second lock to get out of step with the first: a holder that died is replaced once the lease's
``AICMO_CAM_LOCK_TTL_SECONDS`` have passed, and a live holder never lets it get that old.

Each step is isolated: an exception is logged with its traceback and recorded (on the heartbeat and
the execution) and the next step still runs. A step that works through many items (sending) does so
within a share of the interval and renews the cycle's lease as it goes, so a cycle reaches its later
steps (poll, replies, alerts) every interval and never loses its lease to another worker while
alive; a holder that did lose it stops at once. A mailbox that could not be polled or could not
send is named in the step's errors (and so on the heartbeat and the execution).

A lost database connection ends the cycle, the connection is closed so the next cycle opens a fresh
one, and the worker goes on. What could not be written while the database was away (the run's
outcome, the heartbeat) is written by the same worker's next cycle once it answers.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.utils import InterfaceError, OperationalError
from django.utils import timezone

from cam.alerts.service import alerts_dispatch
from cam.budget import Budget, lease_lost
from cam.decisions import metrics_step, rules_evaluate
from cam.followup import leads_no_reply_timeout, leads_resume_paused
from cam.inbox.polling import inboxes_poll
from cam.inbox.processing import replies_process
from cam.jobs.heartbeat import (
    heartbeat_cycle_finished,
    heartbeat_cycle_started,
    heartbeat_cycles_failed,
    heartbeat_seen,
    heartbeat_step_renewing,
)
from cam.jobs.registry import JobContext
from cam.jobs.runner import (
    ExecutionUnrecorded,
    JobResult,
    Trigger,
    job_execution_record_late,
    job_record_unrun,
    lease_name_for,
    run_job,
)
from cam.models import JobExecution
from cam.outreach.planning import outreach_plan
from cam.outreach.sending import outbound_recover_stuck, outreach_send

logger = logging.getLogger(__name__)

JOB = "worker_cycle"
CYCLE_LEASE = lease_name_for(job=JOB, campaign_id=None)

COMPLETED, FAILED, SKIPPED = "completed", "failed", "skipped"
# The share of the interval the send step may take before it hands the rest to the next cycle, so
# that poll, replies and alerts run every interval however much is due.
SEND_SHARE = 0.5
MIN_SEND_SECONDS = 5.0


@dataclass(frozen=True)
class StepOptions:
    inline_send: bool
    # The cycle's stop request and lease: a long step checks it between items (``Budget.exhausted``).
    budget: Budget = field(default_factory=Budget.unlimited)


def send_seconds() -> float:
    return max(MIN_SEND_SECONDS, settings.AICMO_CAM_WORKER_INTERVAL_SECONDS * SEND_SHARE)


def _send(options: StepOptions) -> dict[str, Any]:
    counts: dict[str, Any] = {}
    counts.update(outbound_recover_stuck())
    counts.update(outreach_plan())
    counts.update(outreach_send(inline=options.inline_send, budget=options.budget.within(send_seconds())))
    return counts


def _poll(options: StepOptions) -> dict[str, Any]:
    # Within the cycle's lease: the lease is renewed right before and after the step, and the step
    # is cut off before half its time to live has passed.
    budget = min(settings.AICMO_CAM_IMAP_POLL_BUDGET_SECONDS, settings.AICMO_CAM_LOCK_TTL_SECONDS / 2)
    return inboxes_poll(budget_seconds=budget, stop=options.budget.stop)


def _replies(options: StepOptions) -> dict[str, Any]:
    return {**replies_process(), "resumed": leads_resume_paused()}


# The cycle, in order. A step is a name and a function of the options that returns its counts.
STEPS: dict[str, Callable[[StepOptions], dict[str, Any]]] = {
    "send": _send,
    "poll": _poll,
    "replies": _replies,
    "no_reply": lambda options: leads_no_reply_timeout(),
    "metrics": lambda options: metrics_step(),
    "rules": lambda options: rules_evaluate(),
    "alerts": lambda options: alerts_dispatch(),
}

# Set by ``cam_worker`` while it runs a cycle: when the event is set (SIGTERM, Ctrl-C) the cycle
# finishes the step it is in and runs no further step.
_stop_event: ContextVar[threading.Event | None] = ContextVar("cam_cycle_stop", default=None)


class ConnectionLost(Exception):
    """The database connection went away during a step; the cycle ends here."""


@dataclass(frozen=True)
class CycleResult:
    status: str  # completed, failed or skipped
    reason: str = ""
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    execution_id: str = ""
    duration_seconds: float | None = None

    @property
    def ran(self) -> bool:
        return self.status != FAILED

    def summary(self) -> str:
        """One line: the status, each step's non-zero counts, and the failing steps."""
        parts = [f"cycle {self.status}"]
        if self.duration_seconds is not None:
            parts[0] += f" in {self.duration_seconds:.1f} s"
        for name, counts in self.steps.items():
            shown = " ".join(f"{key}={value}" for key, value in counts.items() if value)
            parts.append(f"{name}: {shown or '-'}")
        if self.errors:
            parts.append("errors: " + "; ".join(f"{name}: {error}" for name, error in self.errors.items()))
        if self.reason:
            parts.append(self.reason)
        return " | ".join(parts)


def _connection_lost(exc: BaseException) -> bool:
    if isinstance(exc, InterfaceError):
        return True
    return isinstance(exc, OperationalError) and not connection.is_usable()


def _close_connection() -> None:
    # Inside a transaction (a test's, say) closing would lose it; a worker never runs a cycle inside one.
    if not connection.in_atomic_block:
        connection.close()


def cycle_job(context: JobContext) -> dict[str, Any]:
    """The ``worker_cycle`` job: run every step, renewing the lease between steps.

    Params: ``worker_id`` (default ``AICMO_CAM_WORKER_ID``) names the heartbeat; ``inline_send``
    (default: inline unless a schedule fired it, which fans sending out to the cluster). Returns
    ``steps`` (counts per step), ``errors`` (per failing step) and ``ended_early`` (why steps were
    left out, if any). Raises ``ConnectionLost`` when the database connection went away.
    """
    worker_id = context.params.get("worker_id") or settings.AICMO_CAM_WORKER_ID
    inline = context.params.get("inline_send", context.execution.trigger != JobExecution.Trigger.SCHEDULE)
    stop = _stop_event.get()
    budget = Budget(stop=stop, keep_alive=((CYCLE_LEASE, context.renew_lease),),
                    renew_every=settings.AICMO_CAM_LOCK_TTL_SECONDS / 4)
    options = StepOptions(inline_send=bool(inline), budget=budget)
    # The first step is named by the cycle's start, under the lease just taken: one write, not three.
    heartbeat_cycle_started(worker_id=worker_id, step=next(iter(STEPS)))
    steps: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    tracebacks: list[str] = []
    ended_early = ""
    for position, (name, step) in enumerate(STEPS.items()):
        if stop is not None and stop.is_set():
            ended_early = f"stopped before {name}"
            break
        if position and not heartbeat_step_renewing(worker_id=worker_id, step=name, lease=CYCLE_LEASE,
                                                    holder=context.execution.holder):
            ended_early = f"lease {CYCLE_LEASE} lost before {name}: another worker took it over"
            errors["lease"] = ended_early
            break
        try:
            steps[name] = counts = dict(step(options) or {})
        except Exception as exc:
            if _connection_lost(exc):
                logger.exception("Worker cycle: the database connection was lost in step %s", name)
                _close_connection()
                raise ConnectionLost(f"in step {name}: {type(exc).__name__}: {exc}") from exc
            logger.exception("Worker cycle: step %s failed", name)
            errors[name] = f"{type(exc).__name__}: {exc}"[:2000]
            tracebacks.append(f"step {name}:\n{traceback.format_exc()}")
            continue
        problems = counts.pop("problems", None)
        if problems:  # a mailbox that could not be polled or could not send: named, not hidden in counts
            errors[name] = "; ".join(problems)[:2000]
        stopped = str(counts.get("stopped", ""))
        if lease_lost(stopped):
            ended_early = f"{stopped} during {name}"
            errors["lease"] = ended_early
            break
    heartbeat_cycle_finished(worker_id=worker_id, errors=errors)
    if errors:
        # run_job keeps these on a completed run: the cycle record names what failed.
        context.execution.error = "\n".join(f"{name}: {error}" for name, error in errors.items())[:2000]
        context.execution.traceback = "\n".join(tracebacks)
    return {"steps": steps, "errors": errors, "ended_early": ended_early}


@dataclass
class _Outage:
    """Cycles that failed while the database was away, to be recorded once it answers."""

    first_at: datetime
    last_at: datetime
    error: str
    cycles: int = 0
    execution: JobExecution | None = None  # the run whose outcome could not be saved, if one began


# Per worker of this process; kept in memory because the database is exactly what was missing.
_outages: dict[str, _Outage] = {}


def _note_outage(worker_id: str, exc: BaseException) -> None:
    now = timezone.now()
    error = f"Database connection lost: {type(exc).__name__}: {exc}"[:2000]
    outage = _outages.get(worker_id)
    if outage is None:
        outage = _outages[worker_id] = _Outage(first_at=now, last_at=now, error=error)
    outage.cycles += 1
    outage.last_at = now
    if outage.execution is None and isinstance(exc, ExecutionUnrecorded):
        outage.execution = exc.execution


def _record_outage(worker_id: str) -> None:
    """Write what the last failed cycles could not: the run's FAILED record (or a new one when the run
    never began), the heartbeat's error. Quietly leaves it for later while the database is still away."""
    outage = _outages.get(worker_id)
    if outage is None:
        return
    summary = (f"{outage.error} ({outage.cycles} cycle{'s' if outage.cycles != 1 else ''} could not run "
               f"between {outage.first_at:%Y-%m-%d %H:%M:%S} and {outage.last_at:%H:%M:%S} UTC)")
    try:
        if outage.execution is not None:
            outage.execution.error = f"{outage.execution.error}\n{summary}".strip()[:2000]
            job_execution_record_late(execution=outage.execution)
        else:
            job_record_unrun(JOB, error=summary, started_at=outage.first_at, finished_at=outage.last_at,
                             trigger=Trigger.WORKER, params={"worker_id": worker_id})
        heartbeat_cycles_failed(worker_id=worker_id, error=f"cycle: {summary}")
    except (InterfaceError, OperationalError):
        _close_connection()
        return
    del _outages[worker_id]


def worker_cycle_run(*, worker_id: str, inline_send: bool = True, trigger: str = Trigger.WORKER,
                     stop: threading.Event | None = None) -> CycleResult:
    """Run one cycle as ``worker_id`` and say what happened; never raises for a database outage.

    ``skipped`` when another worker holds the cycle (the reason names the lease), ``failed`` when
    the cycle could not run or the database connection was lost, ``completed`` otherwise (failing
    steps are in ``errors``). ``stop``, once set, ends the cycle after the current step. Cycles that
    failed because the database was away are recorded by the first cycle that finds it back.
    """
    token = _stop_event.set(stop)
    try:
        _record_outage(worker_id)
        result = run_job(JOB, params={"worker_id": worker_id, "inline_send": inline_send}, trigger=trigger)
    except (InterfaceError, OperationalError) as exc:
        logger.exception("Worker cycle: the database is unreachable")
        _close_connection()
        _note_outage(worker_id, exc)
        return CycleResult(status=FAILED, reason=f"Database connection lost: {type(exc).__name__}: {exc}")
    finally:
        _stop_event.reset(token)
    return _outcome(result, worker_id=worker_id)


def _outcome(result: JobResult, *, worker_id: str) -> CycleResult:
    common: dict[str, Any] = {"execution_id": result.execution_id, "duration_seconds": result.duration_seconds}
    if result.status == JobExecution.Status.SKIPPED:
        try:
            heartbeat_seen(worker_id=worker_id)
        except (InterfaceError, OperationalError):
            # The database went away after the cycle was skipped: the next cycle finds out; never raise.
            _close_connection()
        return CycleResult(status=SKIPPED, reason=result.reason, **common)
    if result.status == JobExecution.Status.FAILED:
        try:
            heartbeat_cycle_finished(worker_id=worker_id, errors={"cycle": result.error})
        except (InterfaceError, OperationalError):
            _close_connection()
        return CycleResult(status=FAILED, reason=result.error, **common)
    counts = result.counts
    return CycleResult(status=COMPLETED, reason=counts.get("ended_early", ""), steps=counts.get("steps", {}),
                       errors=counts.get("errors", {}), **common)
