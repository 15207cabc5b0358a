"""The container layer of "no process outlives its cluster" (docs/deployment.md, "What kills what").

Docker itself cannot run here, so this checks what the containers are built from: the compose file
puts an init in front of the processes, the image stops them with SIGTERM, and the entrypoint really
execs its command (run for real below), so the process the init watches is qcluster itself.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml
from django.conf import settings

ROOT = Path(__file__).resolve().parents[1]


def compose_service(name: str) -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"][name]


def seconds(duration: str) -> int:
    """A compose duration such as ``60s`` or ``1m30s``, in seconds."""
    units = {"h": 3600, "m": 60, "s": 1}
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert parts and duration, f"unreadable duration {duration!r}"
    return sum(int(value) * units[unit] for value, unit in zip(parts.groups(), "hms", strict=True) if value)


def test_it_runs_qcluster_and_web_under_an_init():
    qcluster, web = compose_service("qcluster"), compose_service("web")
    assert qcluster["command"] == ["python", "manage.py", "qcluster"]
    assert qcluster.get("init") is True
    assert web.get("init") is True


def test_it_gives_a_stopping_cluster_longer_than_one_provider_call():
    qcluster = compose_service("qcluster")
    assert qcluster.get("stop_signal", "SIGTERM") == "SIGTERM"
    deadline = max(settings.EMAIL_TIMEOUT, settings.AICMO_CAM_RESEND_TIMEOUT_SECONDS)
    assert seconds(qcluster.get("stop_grace_period", "10s")) > deadline


def test_it_stops_the_image_with_sigterm_through_the_entrypoint():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^STOPSIGNAL SIGTERM$", dockerfile, re.MULTILINE)
    assert re.search(r'^ENTRYPOINT \["/app/scripts/docker-entrypoint\.sh"\]$', dockerfile, re.MULTILINE)


def test_it_execs_the_command_so_the_init_watches_qcluster_itself():
    # Same pid before and after: the shell replaced itself with the command instead of waiting for it
    # (a waiting shell would sit between the init and qcluster, and not pass SIGTERM on).
    entrypoint = subprocess.Popen(["sh", "scripts/docker-entrypoint.sh", sys.executable, "-c",
                                   "import os; print(os.getpid())"],
                                  cwd=ROOT, env={**os.environ, "CAM_MIGRATE": "false"}, stdout=subprocess.PIPE,
                                  text=True)
    out, _ = entrypoint.communicate(timeout=30)
    assert entrypoint.returncode == 0
    assert int(out) == entrypoint.pid
