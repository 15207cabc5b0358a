"""The schedules CAM runs on, declared here and installed idempotently by ``manage.py cam_schedules``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.models import Schedule

from cam.jobs.slots import scheduled_period_seconds, slot_for

PREFIX = "cam: "
DAY = 86_400


@dataclass(frozen=True)
class ScheduleSpec:
    name: str
    job: str
    every_seconds: int
    offset_seconds: int = 0

    @property
    def schedule_name(self) -> str:
        return f"{PREFIX}{self.name}"

    def next_run(self, now: datetime) -> datetime:
        return slot_for(now, every_seconds=self.every_seconds, offset_seconds=self.offset_seconds) + timedelta(
            seconds=self.every_seconds)

    def describe(self) -> str:
        if self.every_seconds == DAY:
            hours, rest = divmod(self.offset_seconds, 3600)
            return f"daily at {hours:02d}:{rest // 60:02d} {settings.TIME_ZONE}"
        return f"every {self.every_seconds} s"


def declared_schedules() -> list[ScheduleSpec]:
    specs = [
        ScheduleSpec(name="harvest", job="harvest", every_seconds=DAY, offset_seconds=2 * 3600),
        ScheduleSpec(name="score", job="score", every_seconds=DAY, offset_seconds=3 * 3600),
        ScheduleSpec(name="qualify", job="qualify", every_seconds=DAY, offset_seconds=3 * 3600 + 30 * 60),
        # DNS records change rarely, and a fix is checked at once by the Check button.
        ScheduleSpec(name="domain check", job="domain_check", every_seconds=DAY, offset_seconds=1 * 3600),
        ScheduleSpec(name="job runs prune", job="job_runs_prune", every_seconds=DAY, offset_seconds=4 * 3600),
    ]
    if settings.AICMO_CAM_WORKER_ENABLED:
        # The period q2 really keeps, so each run's slot (and the watchdog's count of intervals) is the
        # period the cluster fires at, not a setting of seconds it cannot honour.
        interval = scheduled_period_seconds(settings.AICMO_CAM_WORKER_INTERVAL_SECONDS)
        # The cycle sends, polls, processes replies, handles no-reply timeouts, records metrics,
        # evaluates rules and dispatches alerts, so the jobs that do those parts alone are for people
        # running them by hand.
        specs += [
            ScheduleSpec(name="worker cycle", job="worker_cycle", every_seconds=interval),
            ScheduleSpec(name="watchdog", job="watchdog", every_seconds=interval),
        ]
    return specs


def _q2_fields(spec: ScheduleSpec) -> dict:
    # q2 has no cron parser by default; MINUTES repeats every n minutes from next_run, which we align
    # to the slot grid so runs start on the hour they are declared for. Declared periods are whole
    # minutes (``scheduled_period_seconds``), so n is exact.
    return {
        "func": "cam.jobs.tasks.run_scheduled_job",
        "kwargs": f"job={spec.job!r}, every_seconds={spec.every_seconds}, offset_seconds={spec.offset_seconds}",
        "schedule_type": Schedule.MINUTES,
        "minutes": max(1, spec.every_seconds // 60),
        "repeats": -1,
    }


@transaction.atomic
def schedules_install(*, now: datetime | None = None) -> dict[str, list[str]]:
    """Create or update CAM's schedules by name and remove CAM schedules no longer declared.

    A schedule whose timing is unchanged keeps its next run; one whose timing changed is realigned.
    """
    now = now or timezone.now()
    declared = {spec.schedule_name: spec for spec in declared_schedules()}
    report: dict[str, list[str]] = {"created": [], "updated": [], "unchanged": [], "removed": []}
    existing = {s.name: s for s in Schedule.objects.filter(name__startswith=PREFIX)}
    for name, spec in declared.items():
        fields = _q2_fields(spec)
        schedule = existing.get(name)
        if schedule is None:
            Schedule.objects.create(name=name, next_run=spec.next_run(now), **fields)
            report["created"].append(name)
        elif any(getattr(schedule, key) != value for key, value in fields.items()):
            for key, value in fields.items():
                setattr(schedule, key, value)
            schedule.next_run = spec.next_run(now)
            schedule.save()
            report["updated"].append(name)
        else:
            report["unchanged"].append(name)
    for name in sorted(set(existing) - set(declared)):
        existing[name].delete()
        report["removed"].append(name)
    return report
