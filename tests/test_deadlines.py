"""Overall deadlines on real loopback connections: what is cut off, when, and what the caller is told."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from cam import deadlines
from cam.deadlines import CancelScope, Deadline, DeadlineExceeded, cancel_interruptible


@pytest.fixture
def connection():
    """Both ends of a TCP connection on loopback: (the client's socket, the server's)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=30)
        server, _ = listener.accept()
    yield client, server
    client.close()
    server.close()


def read_one_line(sock: socket.socket) -> bytes:
    """What a client waiting for a server's answer does: raise when the connection ends first."""
    data = sock.recv(100)
    if not data:
        raise ConnectionError("the connection was closed")
    return data


def in_thread(target) -> tuple[threading.Thread, dict]:
    """Run ``target`` in a thread; the dict gets what it returned or raised, and when it ended."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["value"] = target()
        except Exception as exc:
            outcome["error"] = exc
        outcome["ended"] = time.monotonic()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_it_cuts_off_a_read_that_never_ends_and_says_what_was_being_done(connection):
    client, _ = connection
    started = time.monotonic()

    with pytest.raises(DeadlineExceeded) as raised, Deadline(0.3, "reading the greeting") as deadline:
        deadline.watch(client)
        read_one_line(client)  # the server says nothing; the socket's own timeout is 30 s

    assert 0.25 < time.monotonic() - started < 1.5
    assert str(raised.value) == "Gave up reading the greeting after 0.3 s"
    assert isinstance(raised.value, TimeoutError)
    assert isinstance(raised.value.__cause__, ConnectionError)
    assert (raised.value.seconds, raised.value.cancelled) == (0.3, "")


def test_it_cuts_off_a_server_that_answers_a_byte_at_a_time(connection):
    client, server = connection
    dripping = threading.Event()

    def drip() -> None:
        while not dripping.wait(0.05):
            try:
                server.sendall(b".")
            except OSError:
                return

    threading.Thread(target=drip, daemon=True).start()
    received = b""
    started = time.monotonic()
    try:
        with pytest.raises(DeadlineExceeded), Deadline(0.5, "reading the greeting") as deadline:
            deadline.watch(client)
            while b"\n" not in received:  # each read gets a byte: no per-read timeout would ever fire
                received += read_one_line(client)
    finally:
        dripping.set()

    assert 0.45 < time.monotonic() - started < 1.5
    assert len(received) >= 3


def test_it_lets_a_conversation_that_finished_in_time_stand(connection):
    client, server = connection
    server.sendall(b"* OK ready\r\n")

    with Deadline(5, "reading the greeting") as deadline:
        deadline.watch(client)
        assert read_one_line(client) == b"* OK ready\r\n"

    assert not deadline.fired
    # The connection is the caller's to go on with: the deadline's hold on it is gone.
    server.sendall(b"more\r\n")
    assert read_one_line(client) == b"more\r\n"


def test_it_reports_the_original_error_when_the_deadline_did_not_fire(connection):
    client, server = connection
    server.close()

    with pytest.raises(ConnectionError), Deadline(5, "reading") as deadline:
        deadline.watch(client)
        read_one_line(client)


def test_it_cuts_off_the_conversation_of_another_thread_when_interruptible_ones_are_cancelled(connection):
    client, _ = connection

    def poll() -> bytes:
        with CancelScope(interruptible=True) as scope, Deadline(30, "polling", scope=scope) as deadline:
            deadline.watch(client)
            return read_one_line(client)

    thread, outcome = in_thread(poll)
    time.sleep(0.2)  # the thread is blocked in its read
    cancelled_at = time.monotonic()
    assert cancel_interruptible("the worker is stopping") == 1
    thread.join(timeout=5)

    assert outcome["ended"] - cancelled_at < 0.5
    assert str(outcome["error"]) == "Stopped polling: the worker is stopping"
    assert outcome["error"].cancelled == "the worker is stopping"


def test_it_leaves_conversations_outside_interruptible_scopes_alone(connection):
    client, server = connection

    def send() -> bytes:
        with CancelScope() as scope, Deadline(30, "sending", scope=scope) as deadline:
            deadline.watch(client)
            return read_one_line(client)

    thread, outcome = in_thread(send)
    time.sleep(0.1)
    assert cancel_interruptible("the worker is stopping") == 0
    server.sendall(b"250 OK\r\n")
    thread.join(timeout=5)

    assert outcome["value"] == b"250 OK\r\n"


def test_it_cuts_off_at_once_a_deadline_started_in_a_cancelled_scope():
    with CancelScope() as scope:
        scope.cancel("the poll step ran out of its budget")
        with pytest.raises(DeadlineExceeded) as raised, Deadline(30, "polling", scope=scope) as deadline:
            assert deadline.fired
            deadline.check()  # what a conversation asks before it starts

    assert str(raised.value) == "Stopped polling: the poll step ran out of its budget"


def test_it_cancels_a_scope_when_its_budget_runs_out(connection):
    client, _ = connection
    started = time.monotonic()

    with CancelScope() as scope:
        scope.cancel_after(0.3, "the poll step ran out of its 0.3 s budget")
        with pytest.raises(DeadlineExceeded) as raised, Deadline(30, "polling", scope=scope) as deadline:
            deadline.watch(client)
            read_one_line(client)

    assert 0.25 < time.monotonic() - started < 1.5
    assert raised.value.cancelled == "the poll step ran out of its 0.3 s budget"


def test_it_watches_a_socket_where_it_is_created(connection):
    client, server = connection
    deadlines.watch(client)  # outside any deadline: nothing happens
    server.sendall(b"still open\r\n")
    assert read_one_line(client) == b"still open\r\n"

    with pytest.raises(DeadlineExceeded), Deadline(0.2, "connecting"):
        deadlines.watch(client)  # what a connection class does as its socket is created
        read_one_line(client)


def test_it_keeps_no_timers_or_descriptors_for_finished_deadlines(connection):
    client, _ = connection
    descriptors = len(os.listdir("/proc/self/fd"))

    for _ in range(5000):
        with Deadline(60, "sending") as deadline:
            deadline.watch(client)

    assert len(deadlines._heap) < 200
    assert [thread.name for thread in threading.enumerate()].count("cam-deadlines") == 1
    # Each watch duplicates the descriptor: 5,000 leaked would show. (Not "equal": another test's
    # server thread may close one of its own meanwhile.)
    assert len(os.listdir("/proc/self/fd")) <= descriptors


def test_it_costs_a_few_microseconds_per_conversation(connection):
    client, _ = connection
    count = 2000
    started = time.perf_counter()
    for _ in range(count):
        with Deadline(60, "sending") as deadline:
            deadline.watch(client)
    per_deadline = (time.perf_counter() - started) / count

    # An SMTP message takes milliseconds even on loopback; a deadline must be noise beside it.
    assert per_deadline < 0.0005
