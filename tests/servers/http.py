"""A real HTTP server on 127.0.0.1 with scripted replies, recording every request it receives.

It stands in for any HTTP API a test needs (a CRM's contact list, Resend, a Slack webhook)::

    def test_it_retries(http_server):
        http_server.reply("/contacts", Reply(429, headers={"Retry-After": "0"}), Reply(200, body=[...]))
        ...  # point the code under test at http_server.url("/contacts")
        assert [r.path for r in http_server.requests] == ["/contacts", "/contacts"]

Replies scripted for a path are given out in order, and the last one repeats. A reply may also be a
function of the ``ReceivedRequest`` that returns a ``Reply``, for answers that depend on the query or
the body. A path with nothing scripted answers 404.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Reply:
    """One scripted answer. ``body`` is sent as JSON unless it is ``bytes`` or ``str``."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering, e.g. to make a client time out

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        if self.body is None:
            return b"", "application/json"
        return json.dumps(self.body).encode(), "application/json"


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    body: bytes
    received_at: float = 0.0  # time.monotonic() when the request had been read, to check rates against

    def param(self, name: str) -> str | None:
        """The first value of query parameter ``name``, or None."""
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body)


Responder = Reply | Callable[[ReceivedRequest], Reply]


class HttpTestServer:
    """Start with ``start()`` (or use as a context manager); ``url(path)`` is where to reach it."""

    def __init__(self) -> None:
        self.requests: list[ReceivedRequest] = []
        self._scripts: dict[tuple[str | None, str], list[Responder]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- scripting and inspection ---------------------------------------------------------------

    def reply(self, path: str, *replies: Responder, method: str | None = None) -> None:
        """Answer requests to ``path`` (any method, or only ``method``) with ``replies`` in turn."""
        if not replies:
            raise ValueError("Script at least one reply.")
        with self._lock:
            self._scripts[(method.upper() if method else None, path)] = list(replies)

    def url(self, path: str = "/") -> str:
        assert self._httpd is not None, "the server is not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}{path}"

    def requests_to(self, path: str) -> list[ReceivedRequest]:
        with self._lock:
            return [request for request in self.requests if request.path == path]

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> HttpTestServer:
        self._httpd = _Server(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="http-test-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # ends delayed replies at once
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> HttpTestServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- serving (runs in the server's threads) --------------------------------------------------

    def _receive(self, request: ReceivedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            script = self._scripts.get((request.method, request.path)) or self._scripts.get((None, request.path))
            if not script:
                return Reply(404, {"error": f"nothing scripted for {request.method} {request.path}"})
            responder = script.pop(0) if len(script) > 1 else script[0]
        if not callable(responder):
            return responder
        try:
            return responder(request)
        except Exception as exc:  # a broken responder answers 500 instead of dropping the connection
            return Reply(500, f"the scripted responder raised {exc!r}")

    def _wait(self, seconds: float) -> None:
        self._stopping.wait(seconds)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stopping does not wait for clients that keep a connection open

    def handle_error(self, request, client_address) -> None:
        # A client that gave up (timed out) before the reply was written is part of the script.
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


def _handler_for(server: HttpTestServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 5  # an idle kept-alive connection is closed after this many seconds

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            request = ReceivedRequest(
                method=self.command, path=parts.path, query=parse_qs(parts.query, keep_blank_values=True),
                headers={name.lower(): value for name, value in self.headers.items()},
                body=self.rfile.read(length) if length else b"", received_at=time.monotonic())
            reply = server._receive(request)
            if reply.delay:
                server._wait(reply.delay)
            body, content_type = reply.encoded()
            self.send_response(reply.status)
            # Scripted headers win, so a test can also script a reply cut short (a Content-Length larger
            # than the body, with "Connection: close").
            headers = {"Content-Type": content_type, "Content-Length": str(len(body)), **reply.headers}
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
