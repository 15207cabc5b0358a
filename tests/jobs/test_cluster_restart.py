"""A q2 cluster whose worker, pusher or monitor is killed goes on running tasks (cam.jobs.cluster_restart).

Real processes: a ``manage.py qcluster`` on Redis and the test database, as in test_orphans. Of two idle
workers one always waits inside the task queue's ``get()`` holding its read lock, so killing both
kills that one: without a new generation of queues the cluster never runs a task again.
"""

import os
import signal
import time

import pytest
from django_q.models import Task

from tests.jobs.test_orphans import WORKERS, alive, broker, children, enqueue_getpid, start_cluster, stop, wait_for

__all__ = ["broker"]  # the fixture, used by name


def roles(sentinel: int, processes: list[int]) -> dict[str, list[int]]:
    """The Sentinel's processes by role: it forks its workers first, then the monitor, then the pusher."""
    ordered = sorted(processes)
    assert len(ordered) == WORKERS + 2, ordered
    return {"workers": ordered[:WORKERS], "monitor": ordered[WORKERS:WORKERS + 1], "pusher": ordered[WORKERS + 1:]}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("victims", ["workers", "pusher", "monitor"])
def test_a_cluster_goes_on_running_tasks_after_its_process_is_killed(broker, tmp_path, victims):
    log = tmp_path / "cluster.log"
    cluster, sentinel, processes = start_cluster(log)
    try:
        killed = roles(sentinel, processes)[victims]
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        task_id = enqueue_getpid()
        wait_for(lambda: Task.objects.filter(id=task_id).exists(), timeout=30, what="the task's result")
        task = Task.objects.get(id=task_id)
        assert task.success
        # A new generation replaced the old one whole: none of the old processes is left.
        wait_for(lambda: not any(alive(pid) for pid in processes), timeout=15,
                 what="the old generation to be retired")
        assert len(children(sentinel)) == WORKERS + 2
        assert task.result in children(sentinel)
        assert "starting every process again on new queues" in log.read_text()

        # And it stops when asked, which a cluster whose workers cannot read their stop pill never does.
        started = time.monotonic()
        cluster.terminate()
        assert cluster.wait(timeout=15) == 0
        assert time.monotonic() - started < 10
    finally:
        stop(cluster, [sentinel, *processes])
