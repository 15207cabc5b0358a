"""``manage.py cam_worker``: one cycle with --once, and a clean stop on SIGTERM in a real process."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import call_command

from cam.models import JobExecution, WorkerHeartbeat

MANAGE = Path(__file__).resolve().parents[2] / "manage.py"


@pytest.mark.django_db
def test_it_runs_one_cycle_with_once_and_leaves_the_heartbeat_stopped(settings, capsys):
    settings.AICMO_CAM_WORKER_ID = "once-worker"
    call_command("cam_worker", "--once")

    out = capsys.readouterr().out
    assert "cycle completed" in out and "send: " in out and "alerts: " in out
    heartbeat = WorkerHeartbeat.objects.get(worker_id="once-worker")
    assert (heartbeat.status, heartbeat.cycles_completed) == ("STOPPED", 1)
    assert heartbeat.last_cycle_finished_at is not None
    assert JobExecution.objects.get(job="worker_cycle").trigger == "worker"


@pytest.mark.django_db
def test_it_exits_1_with_once_when_the_cycle_could_not_run(settings, monkeypatch):
    from cam.jobs import cycle

    def lost(options):
        from django.db.utils import InterfaceError

        raise InterfaceError("connection already closed")

    settings.AICMO_CAM_WORKER_ID = "broken-worker"
    monkeypatch.setitem(cycle.STEPS, "send", lost)
    with pytest.raises(SystemExit) as exited:
        call_command("cam_worker", "--once")
    assert exited.value.code == 1


def heartbeat(database: Path) -> tuple | None:
    with sqlite3.connect(database) as db:
        return db.execute("SELECT status, cycles_completed FROM cam_worker_heartbeats WHERE worker_id = ?",
                          ("sigterm-worker",)).fetchone()


def test_it_stops_cleanly_on_sigterm(tmp_path):
    database = tmp_path / "worker.sqlite3"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}", "AICMO_CAM_WORKER_ID": "sigterm-worker",
           "DJANGO_SETTINGS_MODULE": "aicmo_site.settings"}
    subprocess.run([sys.executable, str(MANAGE), "migrate", "--noinput"], env=env, check=True,
                   capture_output=True, timeout=120)
    worker = subprocess.Popen([sys.executable, str(MANAGE), "cam_worker", "--interval", "1"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while (heartbeat(database) or (None, 0))[1] < 1:
            assert worker.poll() is None, worker.communicate()
            assert time.monotonic() < deadline, "no heartbeat within 30 s"
            time.sleep(0.1)
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, err
    assert "cycle completed" in out and "stopped" in out
    assert heartbeat(database)[0] == "STOPPED"
