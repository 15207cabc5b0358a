"""A q2 cluster one of whose processes died starts its processes again on new queues, instead of stalling.

The Sentinel's workers, pusher and monitor share two in-memory multiprocessing queues, and each queue
has a lock per end, a semaphore shared between the processes. An idle worker waits for its next task
inside ``task_queue.get()`` *holding* the read lock; killed there (``kill -9``, the out-of-memory
killer), it never gives it back, and no other worker — nor the one q2 starts in its place — takes a
task again. The pusher can die holding the write lock, the monitor the result queue's read lock, to
the same effect. The cluster then looks alive (its Sentinel guards, its pusher empties the broker into
a queue nobody reads) while nothing runs, and on SIGTERM it waits for ever for workers that cannot
read their stop pill. q2 itself only restarts the dead process ("we risk destabilizing the queues").

So when a worker, the pusher or the monitor has died and the Sentinel did not end it itself (a task
past its timeout, a worker recycled after its task count), the Sentinel starts a new generation: new
queues, new workers, pusher and monitor. The old one is retired without cutting a task in half: its
pusher is killed at once (a task in its hands is lost, as is any task a dead process took from Redis —
see ``cam.jobs.supervision``; CAM plans its work afresh every cycle), each old worker as soon as it is
idle (or once its task's timeout has passed), and the old monitor, told to stop, once the old workers
are gone, so that the results of their last tasks are still saved. Meanwhile the new generation works:
an old worker finishing its task beside it is one worker more for a while, and the leases keep each
mailbox's sending to one of them.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django_q.cluster import Sentinel
from django_q.conf import Conf
from django_q.queues import Queue

logger = logging.getLogger(__name__)

# q2's worker timer (a shared value): -1 while the worker waits for a task, -2 once it is recycled, 0
# when the Sentinel stops it for its timeout, the seconds left while it runs a task (CAM always sets a
# timeout, so a running worker's timer is positive).
IDLE, RECYCLED, TIMED_OUT = -1, -2, 0
POLL_SECONDS = 0.1
MONITOR_GRACE_SECONDS = 5.0


def died_abruptly(sentinel: Sentinel, process: Any) -> bool:
    """Whether ``process`` (of the current generation, found dead or timed out by the guard) died in a
    way that may have left a queue's lock held: any death but a stop, a timeout and a recycling."""
    if sentinel.stop_event.is_set() or process.is_alive():
        return False  # stopping; or alive, so a timeout, which q2 ends itself while the worker runs its task
    if process is sentinel.pusher or process is sentinel.monitor:
        return True
    return bool(process.timer.value != RECYCLED)


def new_generation(sentinel: Sentinel, dead: Any) -> None:
    """Replace the cluster's queues and processes after ``dead`` died abruptly; retire the rest."""
    old_workers = [process for process in sentinel.pool if process is not dead]
    old_pusher, old_monitor, old_results = sentinel.pusher, sentinel.monitor, sentinel.result_queue
    logger.critical("Cluster process %s (pid %s) died; starting every process again on new queues, which it "
                    "may have left locked", dead.name, dead.pid)
    if old_pusher is not dead and old_pusher.is_alive():
        old_pusher.kill()  # it only moves tasks from the broker into the old queue, which nobody will read
    old_pusher.join(timeout=5)
    sentinel.task_queue = Queue(maxsize=Conf.QUEUE_LIMIT) if Conf.QUEUE_LIMIT else Queue()
    sentinel.result_queue = Queue()
    sentinel.spawn_cluster()  # a new pool; closes the database connections before forking, as q2 does
    sentinel.reincarnations += 1
    threading.Thread(target=retire, args=(old_workers, old_monitor, old_results, sentinel.timeout),
                     name="cam-retire-generation", daemon=True).start()


def retire(workers: list[Any], monitor: Any, results: Queue, timeout: float | None) -> None:
    """Stop the old generation's workers as each becomes idle (at the latest once a task's timeout has
    passed), then its monitor, after it saved the results they left."""
    deadline = time.monotonic() + (timeout or 60) + 5
    waiting = list(workers)
    while waiting:
        for process in list(waiting):
            if not process.is_alive() or process.timer.value in (IDLE, RECYCLED) or time.monotonic() > deadline:
                if process.is_alive():
                    process.kill()  # idle: waiting on the old queue, in no task
                process.join(timeout=5)
                waiting.remove(process)
        time.sleep(POLL_SECONDS)
    if monitor.is_alive():
        results.put("STOP")  # the monitor saves what is before it, then exits
        monitor.join(timeout=MONITOR_GRACE_SECONDS)
        if monitor.is_alive():
            monitor.kill()
    monitor.join(timeout=5)
    logger.info("The cluster's previous processes are stopped")


_original_reincarnate = Sentinel.reincarnate


def reincarnate(self: Sentinel, process: Any) -> None:
    """``Sentinel.reincarnate``: a new generation after an abrupt death, q2's own for the rest. The guard
    loop may still hold a process of a retired generation in hand: those are the retiring thread's."""
    if not (process in self.pool or process is self.pusher or process is self.monitor):
        return
    if died_abruptly(self, process):
        new_generation(self, process)
    else:
        _original_reincarnate(self, process)


def cluster_restart_install() -> None:
    """Have every Sentinel forked from now on start a new generation after an abrupt death. Idempotent."""
    Sentinel.reincarnate = reincarnate
