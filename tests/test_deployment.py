"""The container layer of "no process outlives its cluster" (docs/deployment.md, "What kills what"), and
gunicorn's request limits as the image sets them and the docs describe them ("Request limits").

Docker itself cannot run here, so this checks what the containers are built from: the compose file
puts an init in front of the processes, the image stops them with SIGTERM, and the entrypoint really
execs its command (run for real below), so the process the init watches is qcluster itself.
"""

import json
import os
import re
import socket
import subprocess
import sys
import time
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


# --- gunicorn's request limits (docs/deployment.md, "Request limits") ------------------------------------

LIMIT_FLAGS = ("--limit-request-line", "--limit-request-fields", "--limit-request-field_size")


def dockerfile_command() -> list[str]:
    """The image's CMD, as the JSON array the Dockerfile writes (continued over lines)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    match = re.search(r"^CMD (\[.*\])$", text, re.MULTILINE)
    assert match, "no CMD in exec form in the Dockerfile"
    return json.loads(match.group(1))


def limits_in(words: list[str]) -> dict[str, int]:
    return {flag: int(words[words.index(flag) + 1]) for flag in LIMIT_FLAGS if flag in words}


def test_the_image_states_gunicorns_request_limits_and_the_docs_name_the_same():
    command = dockerfile_command()
    assert command[:2] == ["gunicorn", "aicmo_site.wsgi"]
    limits = limits_in(command)
    assert set(limits) == set(LIMIT_FLAGS), command

    deployment = (ROOT / "docs" / "deployment.md").read_text()
    documented_commands = [line.split() for line in deployment.splitlines() if line.startswith("gunicorn aicmo_site")]
    assert documented_commands, "docs/deployment.md shows no gunicorn command"
    for words in documented_commands:
        assert limits_in(words) == limits, words
    table = dict(re.findall(r"^\| `(--limit-request-[a-z_]+) (\d+)` \|", deployment, re.MULTILINE))
    assert {flag: int(value) for flag, value in table.items()} == limits

    live_run = (ROOT / "scripts" / "schemathesis-live.sh").read_text().replace("\\\n", " ").split()
    assert limits_in(live_run) == limits

    api = (ROOT / "docs" / "api" / "README.md").read_text()
    assert f"over {limits['--limit-request-line']} bytes is `414`" in api
    assert f"more than {limits['--limit-request-fields']} header fields" in api
    assert f"one over {limits['--limit-request-field_size']}\nbytes is `431`" in api


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def raw_answer(port: int, request: bytes) -> tuple[str, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        data = b""
        while chunk := connection.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
    return status, headers, body


def test_gunicorn_answers_requests_over_its_limits_itself_as_documented(tmp_path):
    command = dockerfile_command()
    port = free_port()
    command[command.index("--bind") + 1] = f"127.0.0.1:{port}"
    command[command.index("--workers") + 1] = "1"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "DEBUG": "true"}
    server = subprocess.Popen([str(Path(sys.executable).with_name("gunicorn")), *command[1:]], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "gunicorn did not start"
                time.sleep(0.2)
        limits = limits_in(command)
        host = b"Host: 127.0.0.1\r\n"

        long_path = b"/api/cam/leads/?search=" + b"a" * limits["--limit-request-line"]
        status, headers, body = raw_answer(port, b"GET " + long_path + b" HTTP/1.1\r\n" + host + b"\r\n")
        assert status == "HTTP/1.1 414 URI Too Long"
        assert headers["content-type"] == "text/html" and b"<html>" in body

        many = b"".join(b"X-Field-%d: 1\r\n" % n for n in range(limits["--limit-request-fields"] + 1))
        status, headers, _ = raw_answer(port, b"GET /api/cam/health/ HTTP/1.1\r\n" + host + many + b"\r\n")
        assert status == "HTTP/1.1 431 Request Header Fields Too Large"
        assert headers["content-type"] == "text/html"

        large = b"X-Large: " + b"a" * limits["--limit-request-field_size"] + b"\r\n"
        status, headers, _ = raw_answer(port, b"GET /api/cam/health/ HTTP/1.1\r\n" + host + large + b"\r\n")
        assert status == "HTTP/1.1 431 Request Header Fields Too Large"
        assert headers["content-type"] == "text/html"
    finally:
        server.terminate()
        server.wait(timeout=30)
