"""No q2 process outlives its cluster: ``kill -9`` of qcluster stops them all (cam.jobs.supervision).

Real processes throughout: a ``manage.py qcluster`` on Redis and the test database, and a probe
(tests/jobs/orphan_probe.py) whose child really is orphaned. Redis database 9 belongs to this module
on PostgreSQL and 8 on SQLite (`make test` runs the two side by side); it is flushed before and after
each test.
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from django_q.models import Task

from tests.jobs.test_two_workers import database_url

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = f"redis://127.0.0.1:6379/{9 if os.environ.get('DATABASE_URL', '').startswith('postgres') else 8}"
QUEUE = "django_q:cam:q"  # q2's Redis list for the cluster named "cam" (settings.Q_CLUSTER)
WORKERS = 2


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def state_and_parent(pid: int) -> tuple[str, int] | None:
    """A process's state letter and parent pid from /proc, None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    state, ppid = stat.rsplit(")", 1)[1].split()[:2]
    return state, int(ppid)


def alive(pid: int) -> bool:
    # An orphan that died waits for init to reap it, and this machine's init may never: a zombie has
    # stopped for good, so it counts as gone.
    found = state_and_parent(pid)
    return found is not None and found[0] not in "ZX"


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (state_and_parent(int(entry.name)) or ("", 0))[1] == pid:
            found.append(int(entry.name))
    return [child for child in found if alive(child)]


def env() -> dict[str, str]:
    return {**os.environ, "DJANGO_SETTINGS_MODULE": "aicmo_site.settings", "REDIS_URL": REDIS_URL,
            "AICMO_CAM_Q_WORKERS": str(WORKERS), "LOG_LEVEL": "WARNING"}


def cluster_env() -> dict[str, str]:
    """For the cluster and whoever queues its tasks: the test database too (the cluster stores results)."""
    return {**env(), "DATABASE_URL": database_url()}


def start_cluster(log: Path) -> tuple[subprocess.Popen, int, list[int]]:
    """A running qcluster, its Sentinel's pid and the pids of the workers, the pusher and the monitor."""
    with log.open("a") as stderr:
        cluster = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=cluster_env(),
                                   stdout=subprocess.DEVNULL, stderr=stderr)
    spawned: list[int] = []

    def up() -> bool:
        assert cluster.poll() is None, log.read_text()
        sentinels = children(cluster.pid)
        spawned[:] = sentinels + (children(sentinels[0]) if len(sentinels) == 1 else [])
        return len(spawned) == 1 + WORKERS + 2

    try:
        wait_for(up, timeout=30, what="the cluster's processes")
    except BaseException:
        stop(cluster, spawned)
        raise
    return cluster, spawned[0], spawned[1:]


def stop(cluster: subprocess.Popen, pids: list[int]) -> None:
    """Stop a cluster started here, gently, then any of its processes still running."""
    if cluster.poll() is None:
        cluster.terminate()
        try:
            cluster.wait(timeout=30)
        except subprocess.TimeoutExpired:
            cluster.kill()
            cluster.wait()
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def enqueue_getpid() -> str:
    """Queue ``os.getpid`` through q2 from another process, as a web request would; returns the task id."""
    queued = subprocess.run([sys.executable, "-c", "import django; django.setup(); "
                             "from django_q.tasks import async_task; print(async_task('os.getpid'))"],
                            cwd=ROOT, env=cluster_env(), capture_output=True, text=True, timeout=60, check=True)
    return queued.stdout.split()[-1]


@pytest.fixture
def broker():
    connection = redis.Redis.from_url(REDIS_URL)
    connection.flushdb()
    yield connection
    connection.flushdb()


@pytest.mark.django_db(transaction=True)
def test_it_stops_every_cluster_process_when_qcluster_is_killed(broker, tmp_path):
    cluster, sentinel, processes = start_cluster(tmp_path / "killed.log")
    try:
        cluster.kill()  # kill -9: the cluster gets no chance to stop its processes
        cluster.wait(timeout=10)
        wait_for(lambda: not any(alive(pid) for pid in [sentinel, *processes]), timeout=5,
                 what="the Sentinel, workers, pusher and monitor of the killed cluster to exit")
    finally:
        stop(cluster, [sentinel, *processes])

    # No pusher of the dead cluster is left to take a new task: it waits in Redis …
    task_id = enqueue_getpid()
    assert broker.llen(QUEUE) == 1
    assert not Task.objects.filter(id=task_id).exists()

    # … and the next cluster runs it, in one of its own workers.
    fresh, fresh_sentinel, fresh_processes = start_cluster(tmp_path / "fresh.log")
    try:
        wait_for(lambda: Task.objects.filter(id=task_id).exists(), timeout=30, what="the task's result")
        task = Task.objects.get(id=task_id)
        assert task.success
        assert task.result in fresh_processes
    finally:
        stop(fresh, [fresh_sentinel, *fresh_processes])
    assert broker.llen(QUEUE) == 0


def run_probe(step: str, marker: Path, *, orphan: bool) -> tuple[int, str]:
    """Run tests/jobs/orphan_probe.py; returns its child's pid once that child has exited, and the logs."""
    probe = subprocess.Popen([sys.executable, "-m", "tests.jobs.orphan_probe", step, str(marker),
                              *(["--orphan"] if orphan else [])],
                             cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    child = 0
    try:
        child = int(probe.stdout.readline())
        wait_for(lambda: not alive(child), timeout=10, what=f"the probe's child ({step}) to exit")
        # The child holds the pipes too: this returns once both processes are gone.
        _out, err = probe.communicate(timeout=10)
    finally:
        if probe.poll() is None:
            probe.kill()
        if child and alive(child):
            os.kill(child, signal.SIGKILL)
    return child, err


@pytest.mark.parametrize("step", ["spawn", "task"])
def test_it_goes_on_while_its_parent_lives(tmp_path, step):
    marker = tmp_path / "marker"
    child, _err = run_probe(step, marker, orphan=False)
    assert marker.read_text() == str(child)


def test_it_exits_at_once_when_its_parent_died_before_it_started(tmp_path):
    # The race: the parent dies between the fork and prctl, so the kernel has no one to signal us for.
    marker = tmp_path / "marker"
    _child, err = run_probe("spawn", marker, orphan=True)
    assert not marker.exists()
    assert "is starting: the process that started it" in err


def test_it_does_not_run_a_task_in_a_worker_whose_parent_is_gone(tmp_path):
    marker = tmp_path / "marker"
    _child, err = run_probe("task", marker, orphan=True)
    assert not marker.exists()
    assert "will not run task 'probe-task': the process that started it" in err
