"""Schedules are installed idempotently, and a due schedule runs its job through django-q2's own parts."""

from datetime import UTC, datetime, timedelta
from multiprocessing import Event, Value

import pytest
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import Schedule, Success
from django_q.monitor import monitor
from django_q.pusher import pusher
from django_q.queues import Queue
from django_q.scheduler import scheduler
from django_q.worker import worker

from cam.jobs.schedules import declared_schedules, schedules_install
from cam.jobs.slots import slot_for
from cam.models import JobExecution


def test_it_computes_the_same_daily_slot_all_day_long():
    assert slot_for(datetime(2026, 11, 22, 2, 0, 5, tzinfo=UTC), every_seconds=86400, offset_seconds=7200,
                    tz_name="UTC") == datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
    assert slot_for(datetime(2026, 11, 23, 1, 59, tzinfo=UTC), every_seconds=86400, offset_seconds=7200,
                    tz_name="UTC") == datetime(2026, 11, 22, 2, 0, tzinfo=UTC)


def test_it_computes_minute_slots():
    assert slot_for(datetime(2026, 11, 22, 10, 7, 59, 900, tzinfo=UTC), every_seconds=60,
                    tz_name="UTC") == datetime(2026, 11, 22, 10, 7, tzinfo=UTC)


@pytest.mark.django_db
def test_it_installs_the_schedules_once_and_updates_them_by_name():
    first = schedules_install(now=datetime(2026, 11, 22, 1, 0, tzinfo=UTC))
    names = [spec.schedule_name for spec in declared_schedules()]
    assert names[:5] == ["cam: harvest", "cam: score", "cam: qualify", "cam: domain check", "cam: job runs prune"]
    assert names[5:] == ["cam: worker cycle", "cam: watchdog"]
    assert first["created"] == names
    harvest = Schedule.objects.get(name="cam: harvest")
    assert harvest.next_run == datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
    assert harvest.func == "cam.jobs.tasks.run_scheduled_job"
    again = schedules_install()
    assert again["unchanged"] == names
    assert Schedule.objects.filter(name__startswith="cam: ").count() == len(names)

    Schedule.objects.filter(name="cam: score").update(kwargs="job='score', every_seconds=60")
    Schedule.objects.create(name="cam: retired", func="math.floor", schedule_type=Schedule.DAILY)
    repaired = schedules_install()
    assert (repaired["updated"], repaired["removed"]) == (["cam: score"], ["cam: retired"])


@pytest.mark.django_db
@pytest.mark.parametrize(("interval", "minutes"), [(5, 1), (60, 1), (90, 2), (600, 10)])
def test_the_worker_schedules_declare_the_whole_minutes_q2_keeps(settings, interval, minutes):
    # q2 repeats in whole minutes: the slot each run computes must come from the same period, or two
    # runs land in one slot and the second is skipped.
    settings.AICMO_CAM_WORKER_INTERVAL_SECONDS = interval
    schedules_install(now=datetime(2026, 11, 22, 1, 0, tzinfo=UTC))
    for name in ("cam: worker cycle", "cam: watchdog"):
        schedule = Schedule.objects.get(name=name)
        assert (schedule.schedule_type, schedule.minutes) == (Schedule.MINUTES, minutes)
        assert f"every_seconds={minutes * 60}," in schedule.kwargs


@pytest.mark.django_db(transaction=True)
def test_it_runs_a_due_schedule_through_the_cluster_and_records_the_execution():
    schedules_install()
    Schedule.objects.filter(name="cam: qualify").update(next_run=timezone.now() - timedelta(minutes=1))
    broker = get_broker()
    scheduler(broker=broker)  # the cluster's scheduler: turns the due schedule into a queued task

    task_queue, result_queue, stop = Queue(), Queue(), Event()
    stop.set()
    pusher(task_queue, stop, broker=broker)  # the cluster's pusher: broker → worker queue
    task_queue.put("STOP")
    worker(task_queue, result_queue, Value("b", -1))  # a cluster worker runs the task
    result_queue.put("STOP")
    monitor(result_queue, broker=broker)  # and the monitor stores its result

    execution = JobExecution.objects.get(job="qualify")
    assert (execution.status, execution.trigger) == ("COMPLETED", "schedule")
    assert execution.scheduled_for.astimezone(UTC).time().isoformat() == "03:30:00"
    task = Success.objects.get(group="cam: qualify")
    assert task.result["execution_id"] == execution.execution_id
    assert Schedule.objects.get(name="cam: qualify").next_run > timezone.now()
