"""A TCP proxy on 127.0.0.1 that a test can cut and restore: a database (or any server) going away.

    with TcpProxy("127.0.0.1", 5432) as proxy:
        ...  # point the client at proxy.host, proxy.port
        proxy.cut()      # every open connection is closed at once, and new ones are refused
        proxy.restore()  # new connections get through again

Each accepted connection is forwarded by two threads, one per direction.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.servers.smtp import free_port


class TcpProxy:
    host = "127.0.0.1"

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.cuts = 0
        self._open = True
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> TcpProxy:
        self._listener = socket.create_server((self.host, self.port))
        self._thread = threading.Thread(target=self._accept, name="tcp-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._close_all()
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def cut(self) -> None:
        """Close every connection through the proxy, and refuse new ones until ``restore``."""
        self.cuts += 1
        self._close_all()

    def _close_all(self) -> None:
        with self._lock:
            self._open = False
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def restore(self) -> None:
        with self._lock:
            self._open = True

    def _accept(self) -> None:
        while self._listener is not None:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                allowed = self._open
            if not allowed:
                client.close()  # the server is "down": the client sees the connection closed at once
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
