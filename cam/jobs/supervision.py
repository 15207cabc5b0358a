"""A django-q2 cluster process never outlives the process that started it.

q2's process tree is ``manage.py qcluster`` → Sentinel → workers, pusher and monitor, all forked by
multiprocessing, and none of them watches its parent. After a ``kill -9`` of qcluster the Sentinel
goes on guarding (and firing schedules), its pusher goes on taking tasks from the broker and its
workers go on running them — sending email — under a cluster nobody sees or can stop.

Two layers here; the container's init is the third (docs/deployment.md):

1. Every cluster process, as soon as it is forked, asks the kernel for SIGKILL when its parent dies
   (Linux ``PR_SET_PDEATHSIG``), then checks that the parent did not die before it asked. Killing
   qcluster therefore kills the Sentinel, which kills its workers, pusher and monitor: the pusher
   takes nothing more from the broker, and a worker stops wherever it is, as in any crash.
2. Before each task a worker checks its parent (``pre_execute``) and exits without running the task
   if it is gone: the guard where the kernel could not arm layer 1 (another OS, a refused prctl).

A task already taken from the broker when the cluster died is lost to q2. Redis hands a task out
with BLPOP, which removes it, and q2 has no acknowledgement for Redis: a task in the pusher's hands
or in the cluster's in-memory queue never runs, one a worker was running stops halfway, and neither
is retried or leaves a Task row.
(With the ORM broker it stays in the queue table and is handed out again after ``retry`` seconds.)
CAM does not depend on one task: the worker cycle and its send batches are planned afresh every
cycle (the email a killed batch left in flight is recovered by ``outbound_recover_stuck``), a scheduled
job runs at its next slot, and the reservation of a run queued from the admin or the API lapses
after ``Q_TIMEOUT_SECONDS``, so it can be queued again.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import multiprocessing.util
import os
import signal
import sys
from typing import Any

from django_q.signals import pre_execute

from cam.jobs.cluster_restart import cluster_restart_install

logger = logging.getLogger(__name__)

# <linux/prctl.h>
PR_SET_PDEATHSIG = 1

# The targets q2 forks for a cluster: the Sentinel (django_q.cluster) and what it spawns.
CLUSTER_MODULES = frozenset({"django_q.cluster", "django_q.worker", "django_q.pusher", "django_q.monitor"})


def parent_is_gone() -> bool:
    """Whether this process was forked by multiprocessing and the process that forked it has exited.

    An orphan is handed to init (or a subreaper), so its parent pid changes; comparing it with the pid
    multiprocessing recorded at the fork is exact, with no pid-reuse guesswork. Always False in a
    process multiprocessing did not start (qcluster itself, a test calling q2's ``worker`` in process).
    """
    parent = multiprocessing.parent_process()
    return parent is not None and os.getppid() != parent.pid


def exit_if_orphaned(doing: str) -> None:
    """Exit this process at once (status 1) if ``parent_is_gone()``; return otherwise.

    ``os._exit``, not an exception: nobody is left to report to, and a normal exit would wait for the
    feeder threads of queues whose reader (the cluster) is gone.
    """
    if parent_is_gone():
        parent = multiprocessing.parent_process()
        assert parent is not None  # parent_is_gone() found one
        logger.error("%s %s: the process that started it (%s) is gone; exiting instead",
                     multiprocessing.current_process().name, doing, parent.pid)
        logging.shutdown()
        os._exit(1)


def die_with_parent() -> bool:
    """Have the kernel SIGKILL this process when its parent exits; exit now if it already has.

    Returns whether the kernel took the request (Linux only). Without it only the pre-task check of
    ``refuse_task_when_orphaned`` is left, and that sees a worker's own parent (the Sentinel) die, not
    qcluster above it. The kernel watches the thread that forked us: q2 forks from each process's main
    thread, which lives as long as its process.
    """
    armed = False
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        # SIGKILL, not SIGTERM: the Sentinel leaves SIGTERM at its default (instant death) anyway, a
        # task may install its own handler, and with the cluster gone there is no orderly stop to
        # make — the result queue's reader died with it.
        armed = libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
        if not armed:
            logger.warning("prctl(PR_SET_PDEATHSIG) failed: %s", os.strerror(ctypes.get_errno()))
    # The parent may have died between the fork and prctl: the kernel would then never signal us.
    exit_if_orphaned("is starting")
    return armed


def refuse_task_when_orphaned(sender: Any, func: Any = None, task: dict | None = None, **kwargs: Any) -> None:
    """``pre_execute`` receiver: a worker whose parent is gone exits instead of running ``task``."""
    exit_if_orphaned(f"will not run task {(task or {}).get('name')!r}")


def _on_fork(_owner: object) -> None:
    # Runs in every multiprocessing child before its target; only q2's cluster processes are ours.
    target = getattr(multiprocessing.current_process(), "_target", None)
    if getattr(target, "__module__", None) in CLUSTER_MODULES:
        die_with_parent()


class _ForkHookOwner:
    """multiprocessing keeps after-fork hooks only while their owner object lives: this one always does."""


_FORK_HOOK_OWNER = _ForkHookOwner()
_installed = False


def supervision_install() -> None:
    """Arm both layers in this process and in everything it forks. Idempotent; called from ``ready()``.

    The fork hook is multiprocessing's (``util.register_after_fork``) rather than q2's ``post_spawn``,
    which only workers send, and only once their loop has begun; the hook runs in the Sentinel, the
    pusher and the monitor too, before their first line. Forks of other code are left alone.
    """
    global _installed
    if _installed:
        return
    multiprocessing.util.register_after_fork(_FORK_HOOK_OWNER, _on_fork)
    pre_execute.connect(refuse_task_when_orphaned, dispatch_uid="cam.jobs.refuse_task_when_orphaned")
    cluster_restart_install()  # and a cluster process that died leaves no queue locked for good
    _installed = True
