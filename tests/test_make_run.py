"""`make run` (the Makefile's recipe over scripts/run-dev.sh) ends cleanly: stopped with Ctrl-C at a
terminal or with SIGTERM, it stops both servers and exits 0, and make reports no error.

Python is replaced by a stand-in for the recipe: manage.py's servers sleep until they are signalled and
its other commands succeed at once, so the real Makefile and script run in a second without touching a
database.
"""

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAMP = ".venv/.installed-requirements"
STARTED = b"CAM is starting"

FAKE_PYTHON = """#!/bin/bash
if [[ ${1-} == manage.py ]]; then
    case ${2-} in
        runserver|qcluster)
            echo $$ >> "$CAM_FAKE_PIDS"
            [[ $2 == runserver && -n ${CAM_FAKE_RUNSERVER_EXIT-} ]] && exit "$CAM_FAKE_RUNSERVER_EXIT"
            exec sleep 600;;
    esac
    exit 0
fi
exec %s "$@"
"""


@pytest.fixture
def fake_python(tmp_path):
    path = tmp_path / "python"
    path.write_text(FAKE_PYTHON % sys.executable)
    path.chmod(0o755)
    return path


def make_run_command(fake_python: Path) -> list[str]:
    # -o: the installed-packages stamp counts as up to date, whatever the clock says.
    return ["make", "--no-print-directory", "-o", STAMP, "run", f"PY={fake_python}"]


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "CAM_RUN_TERMINAL_OWNER"}
    return {**env, "CAM_FAKE_PIDS": str(tmp_path / "pids"), **extra}


def wait_for_servers(tmp_path: Path) -> None:
    pids, deadline = tmp_path / "pids", time.monotonic() + 30
    while not (pids.exists() and len(pids.read_text().split()) == 2):
        assert time.monotonic() < deadline, "the servers did not start"
        time.sleep(0.05)


def servers_stopped(tmp_path: Path, *, started: int | None = 2) -> bool:
    pids = [int(line) for line in (tmp_path / "pids").read_text().split()]
    assert started is None or len(pids) == started
    return not any(Path(f"/proc/{pid}").exists() for pid in pids)


def read_until(fd: int, wanted: bytes, seen: bytearray, deadline: float) -> None:
    while wanted not in seen:
        assert time.monotonic() < deadline, f"never saw {wanted!r} in {bytes(seen)!r}"
        if select.select([fd], [], [], 0.2)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the terminal's other end closed
                chunk = b""
            if not chunk:
                assert wanted in seen, f"ended before {wanted!r}: {bytes(seen)!r}"
            seen += chunk


def read_to_end(fd: int, seen: bytearray, deadline: float) -> None:
    while time.monotonic() < deadline:
        if select.select([fd], [], [], 0.2)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                return
            if not chunk:
                return
            seen += chunk


@pytest.mark.parametrize("sigint", [signal.SIG_DFL, signal.SIG_IGN], ids=["from-a-shell", "sigint-ignored-above"])
def test_ctrl_c_at_a_terminal_stops_everything_and_exits_0(fake_python, tmp_path, sigint):
    # A terminal of its own, make in its foreground, as a shell would start it; or started by a program
    # that ignores SIGINT (a job in the background of a script, a CI runner): Ctrl-C still stops it.
    pid, terminal = pty.fork()
    if pid == 0:  # the child: becomes make
        signal.signal(signal.SIGINT, sigint)
        os.chdir(ROOT)
        os.execvpe("make", make_run_command(fake_python), environment(tmp_path))
    output = bytearray()
    try:
        read_until(terminal, STARTED, output, time.monotonic() + 30)
        wait_for_servers(tmp_path)
        os.write(terminal, b"\x03")  # Ctrl-C: the terminal signals its foreground process group
        read_to_end(terminal, output, time.monotonic() + 30)
    finally:
        status = wait_or_kill(pid, time.monotonic() + 30, tmp_path)
        os.close(terminal)

    assert os.waitstatus_to_exitcode(status) == 0, bytes(output)
    assert b"Stopping the web server and the task cluster" in output
    assert b"Interrupt" not in output and b"Error" not in output
    assert servers_stopped(tmp_path)


def wait_or_kill(pid: int, deadline: float, tmp_path: Path) -> int:
    """make's wait status once it ends; if it has not by ``deadline``, it and the servers are killed (a
    run that ignored the Ctrl-C fails the test rather than holding it until its servers end)."""
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.05)
    subprocess.run(["pkill", "-KILL", "-s", str(pid)], check=False)  # make's session: make and the script
    for server in (tmp_path / "pids").read_text().split() if (tmp_path / "pids").exists() else ():
        subprocess.run(["kill", "-KILL", server], check=False)
    return os.waitpid(pid, 0)[1]


def start_without_a_terminal(fake_python: Path, tmp_path: Path, **extra: str) -> tuple[subprocess.Popen, bytearray]:
    make = subprocess.Popen(make_run_command(fake_python), cwd=ROOT, env=environment(tmp_path, **extra),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    output = bytearray()
    read_until(make.stdout.fileno(), STARTED, output, time.monotonic() + 30)
    wait_for_servers(tmp_path)
    return make, output


def finish(make: subprocess.Popen, output: bytearray) -> int:
    output += make.stdout.read()
    return make.wait(timeout=30)


def the_script(make: subprocess.Popen) -> int:
    """The pid of run-dev.sh, make's child."""
    children = Path(f"/proc/{make.pid}/task/{make.pid}/children").read_text().split()
    scripts = [int(pid) for pid in children if b"run-dev.sh" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert len(scripts) == 1, children
    return scripts[0]


def test_sigterm_without_a_terminal_stops_everything_and_exits_0(fake_python, tmp_path):
    make, output = start_without_a_terminal(fake_python, tmp_path)
    try:
        os.kill(the_script(make), signal.SIGTERM)
    finally:
        status = finish(make, output)

    assert status == 0, bytes(output)
    assert b"Error" not in output
    assert servers_stopped(tmp_path)


def test_sigterm_to_make_itself_is_passed_on_and_nothing_reports_an_error(fake_python, tmp_path):
    make, output = start_without_a_terminal(fake_python, tmp_path)
    try:
        make.terminate()
    finally:
        status = finish(make, output)

    # make ends itself with the signal it was sent (its own rule); the stop below it was clean.
    assert status == -signal.SIGTERM
    assert b"Stopping the web server and the task cluster" in output
    assert b"Error" not in output
    assert servers_stopped(tmp_path)


def test_a_server_that_fails_on_its_own_fails_make_run(fake_python, tmp_path):
    make = subprocess.Popen(make_run_command(fake_python), cwd=ROOT,
                            env=environment(tmp_path, CAM_FAKE_RUNSERVER_EXIT="3"), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    output = bytearray(make.stdout.read())

    assert make.wait(timeout=30) == 2, bytes(output)  # make's own status for a failed recipe
    assert b"A CAM process exited (status 3)" in output
    assert b"Error 3" in output
    # The cluster may be stopped before it got as far as starting: whatever did start is gone.
    assert servers_stopped(tmp_path, started=None)
