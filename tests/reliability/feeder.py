"""What the cluster's schedules do, every second instead of every minute: the reliability suite's
stand-in for q2's scheduler, so that two qclusters have send batches to take while they are killed.

    python -c "import django; django.setup(); from tests.reliability.feeder import main; main()"

Each second it runs the worker cycle with sending fanned out to the cluster (one queued task per
mailbox with ready emails, as the scheduled cycle does), and the watchdog every other second. It
stops on SIGTERM. It needs DATABASE_URL and REDIS_URL like the clusters it feeds.
"""

from __future__ import annotations

import signal
import threading

from cam.jobs.cycle import worker_cycle_run
from cam.jobs.recovery import watchdog_run
from cam.jobs.runner import Trigger


def main() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    tick = 0
    while not stop.is_set():
        result = worker_cycle_run(worker_id="feeder", inline_send=False, trigger=Trigger.SCHEDULE, stop=stop)
        print(result.summary(), flush=True)
        if tick % 2:
            watchdog_run()
        tick += 1
        stop.wait(1.0)
