"""A real orphan, for tests/jobs/test_orphans.py: ``python -m tests.jobs.orphan_probe STEP MARKER [--orphan]``.

Forks one child with multiprocessing and prints its pid. With ``--orphan`` the parent exits at once and
the child waits until it has been handed to init; otherwise the parent waits for it. Then the child
does STEP, which writes MARKER unless cam.jobs.supervision stops it first:

- ``spawn``: what a cluster process does right after its fork (``die_with_parent``);
- ``task``: q2's own worker loop, given one task that writes MARKER.

The child's target is this module, not q2's, so the fork hook leaves it alone: no parent-death signal
kills it before it gets there.
"""

import multiprocessing
import os
import sys
import time
from pathlib import Path

import django


def write_marker(marker: str) -> None:
    Path(marker).write_text(str(os.getpid()))


def run_child(step: str, marker: str, orphan: bool) -> None:
    from django_q.worker import worker

    from cam.jobs.supervision import die_with_parent

    parent = multiprocessing.parent_process().pid
    while orphan and os.getppid() == parent:
        time.sleep(0.01)
    if step == "spawn":
        die_with_parent()
        write_marker(marker)
    else:
        tasks = multiprocessing.Queue()
        tasks.put({"id": "probe", "name": "probe-task", "func": write_marker, "args": (marker,), "kwargs": {}})
        tasks.put("STOP")
        worker(tasks, multiprocessing.Queue(), multiprocessing.Value("f", -1))


if __name__ == "__main__":
    django.setup()
    step, marker, orphan = sys.argv[1], sys.argv[2], "--orphan" in sys.argv[3:]
    child = multiprocessing.get_context("fork").Process(target=run_child, args=(step, marker, orphan))
    child.start()
    print(child.pid, flush=True)
    if orphan:
        os._exit(0)
    child.join()
    sys.exit(child.exitcode)
