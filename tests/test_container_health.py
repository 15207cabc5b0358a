"""The web container's health check (scripts/healthcheck.py, run by docker-compose.yml): it asks CAM's
/api/cam/health/, counts what the web process needs, and leaves the worker's heartbeat to outside monitors."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.servers.http import Reply

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "healthcheck.py"


def load_script():
    spec = importlib.util.spec_from_file_location("healthcheck", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


healthcheck = load_script()


def report(**failed: str) -> dict:
    names = ("database", "broker", "heartbeat", "cache")
    return {"status": "unhealthy" if failed else "healthy", "checks": [
        {"name": name, "status": "failed" if name in failed else "ok", "message": failed.get(name, "fine")}
        for name in names]}


def test_compose_runs_the_script_as_the_web_containers_health_check():
    web = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["web"]
    assert web["healthcheck"]["test"] == ["CMD", "python", "scripts/healthcheck.py"]


def test_compose_refuses_to_start_without_the_public_url_and_the_postal_address():
    environment = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["x-cam-environment"]
    assert environment["AICMO_CAM_PUBLIC_URL"].startswith("${AICMO_CAM_PUBLIC_URL:?")
    assert environment["AICMO_CAM_POSTAL_ADDRESS"].startswith("${AICMO_CAM_POSTAL_ADDRESS:?")
    # Behind the one proxy the compose file is made for, so the lockout and limits see the real client.
    assert environment["SECURE_PROXY_SSL_HEADER"] == "true"
    assert environment["AICMO_CAM_TRUSTED_PROXY_COUNT"] == "${AICMO_CAM_TRUSTED_PROXY_COUNT:-1}"


@pytest.mark.parametrize(("allowed_hosts", "expected"), [
    ("cam.example.com,www.example.com", "cam.example.com"),
    (" .example.com", "example.com"),
    ("*", "localhost"),
    ("", "localhost"),
])
def test_it_asks_under_a_host_django_accepts(allowed_hosts, expected):
    assert healthcheck.host_header(allowed_hosts) == expected


def test_it_is_healthy_when_everything_answers(http_server):
    http_server.reply("/api/cam/health/", Reply(200, report()))

    healthy, _ = healthcheck.probe(http_server.url("/api/cam/health/"), "cam.example.com")

    assert healthy
    sent = http_server.requests[0].headers
    assert sent["host"] == "cam.example.com" and sent["x-forwarded-proto"] == "https"


def test_a_stale_worker_alone_does_not_fail_the_web_container(http_server):
    http_server.reply("/api/cam/health/", Reply(503, report(heartbeat="The newest heartbeat is 900 s old")))

    assert healthcheck.probe(http_server.url("/api/cam/health/"), "localhost")[0]


@pytest.mark.parametrize("failing", ["database", "cache", "broker"])
def test_what_the_web_process_needs_fails_it(http_server, failing):
    http_server.reply("/api/cam/health/", Reply(503, report(**{failing: f"The {failing} did not answer."})))

    assert healthcheck.probe(http_server.url("/api/cam/health/"), "localhost") == (
        False, f"The {failing} did not answer.")


def test_an_answer_without_a_report_fails_it(http_server):
    # What Django answers to a host outside ALLOWED_HOSTS, or a proxy's error page.
    http_server.reply("/api/cam/health/", Reply(400, "<h1>Bad Request (400)</h1>"))

    healthy, message = healthcheck.probe(http_server.url("/api/cam/health/"), "localhost")

    assert not healthy and "400 without a health report" in message


def test_nothing_listening_fails_it(http_server):
    url = http_server.url("/api/cam/health/")
    http_server.stop()

    healthy, message = healthcheck.probe(url, "localhost")

    assert not healthy and "did not answer" in message


def test_it_passes_against_cam_itself(live_server, settings, transactional_db):
    # As in the container: a production host name, the probe from inside on the loopback address.
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "cam.example.com"]
    env = {**os.environ, "CAM_HEALTHCHECK_URL": f"{live_server.url}/api/cam/health/",
           "ALLOWED_HOSTS": "cam.example.com"}

    result = subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "database, cache and broker answer" in result.stdout
