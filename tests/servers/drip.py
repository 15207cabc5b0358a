"""A TCP server on 127.0.0.1 that talks too slowly: for testing the overall deadlines of cam.deadlines.

    def test_it_gives_up(settings):
        with DripServer(drip(b"* OK ")) as server:  # an IMAP greeting that never ends
            ...  # point the client at server.host, server.port

Every connection is served by a *conversation*, a function of the ``Peer``, in a thread of its own.
``drip(prefix)`` sends ``prefix`` and then one more byte every ``interval`` (0.2 s) for as long as
the client listens: each read gets something, so no per-read timeout ever fires, and the line never
ends. ``silent`` accepts and never says a word; ``dripping_tls_handshake`` starts a TLS handshake
and never finishes it (``imap_dripping_starttls`` and ``smtp_dripping_starttls`` do so after agreeing
to STARTTLS). ``imap_dripping_answer_to(command)`` and
``smtp_dripping_after_data`` are well-behaved IMAP and SMTP servers up to one command (for SMTP, the
message's data), whose answer they drip; ``http_dripping_response`` reads a request and drips the
response's status line. ``connections`` counts the clients that came.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

TLS_RECORD_HEADER = b"\x16\x03\x03\x40\x00"  # a TLS handshake record promising 16 KiB that come byte by byte


class Peer:
    """One client's connection, as a conversation sees it. Every method returns False once the
    client has gone or the server is stopping."""

    def __init__(self, sock: socket.socket, stopping: threading.Event, interval: float) -> None:
        self.sock = sock
        self.interval = interval
        self._stopping = stopping
        self._buffer = b""

    def send(self, data: bytes) -> bool:
        try:
            self.sock.sendall(data)
            return not self._stopping.is_set()
        except OSError:
            return False

    def drip(self, data: bytes) -> bool:
        """Send ``data`` one byte every ``interval``."""
        return all(not self._stopping.wait(self.interval) and self.send(bytes([byte])) for byte in data)

    def drip_forever(self, filler: bytes = b".") -> None:
        while self.drip(filler):
            pass

    def read_until(self, marker: bytes) -> bytes | None:
        """Everything up to and including ``marker``; None when the client went first."""
        while marker not in self._buffer:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return None
            if not chunk:
                return None
            self._buffer += chunk
        found, _, self._buffer = self._buffer.partition(marker)
        return found + marker

    def wait(self) -> None:
        """Say nothing until the client leaves or the server stops."""
        while not self._stopping.is_set() and self.read_until(b"\n") is not None:
            pass


Conversation = Callable[[Peer], None]


def drip(prefix: bytes = b"", filler: bytes = b".") -> Conversation:
    """Send ``prefix`` byte by byte, then ``filler`` byte by byte for ever."""

    def conversation(peer: Peer) -> None:
        if peer.drip(prefix):
            peer.drip_forever(filler)

    return conversation


def silent(peer: Peer) -> None:
    peer.wait()


def imap_dripping_answer_to(command: bytes) -> Conversation:
    """An IMAP server that greets at once and answers every command at once ("OK"), except the first
    ``command`` (LOGIN, SELECT, …), whose answer it drips."""

    def conversation(peer: Peer) -> None:
        if not peer.send(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] drip.test ready\r\n"):
            return
        while (line := peer.read_until(b"\r\n")) is not None:
            tag, _, rest = line.partition(b" ")
            name = rest.split(b" ", 1)[0].strip().upper()
            if name == command.upper():
                if peer.send(b"* "):
                    peer.drip_forever()
                return
            untagged = {b"CAPABILITY": b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n",
                        b"SELECT": b"* 0 EXISTS\r\n* OK [UIDVALIDITY 7] UIDs valid\r\n",
                        b"EXAMINE": b"* 0 EXISTS\r\n* OK [UIDVALIDITY 7] UIDs valid\r\n",
                        b"LOGOUT": b"* BYE\r\n"}.get(name, b"")
            if not peer.send(untagged + tag + b" OK done\r\n") or name == b"LOGOUT":
                return

    return conversation


def dripping_tls_handshake(peer: Peer) -> None:
    if peer.drip(TLS_RECORD_HEADER):
        peer.drip_forever(b"\x00")


def imap_dripping_starttls(peer: Peer) -> None:
    """An IMAP server that offers STARTTLS, agrees to it, then drips its side of the TLS handshake."""
    if not peer.send(b"* OK [CAPABILITY IMAP4rev1 STARTTLS] drip.test ready\r\n"):
        return
    while (line := peer.read_until(b"\r\n")) is not None:
        tag, _, rest = line.partition(b" ")
        if rest.strip().upper() == b"STARTTLS":
            if peer.send(tag + b" OK Begin TLS negotiation now\r\n"):
                dripping_tls_handshake(peer)
            return
        if not peer.send(b"* CAPABILITY IMAP4rev1 STARTTLS\r\n" + tag + b" OK done\r\n"):
            return


def smtp_dripping_starttls(peer: Peer) -> None:
    """An SMTP server that offers STARTTLS, agrees to it, then drips its side of the TLS handshake."""
    if not peer.send(b"220 drip.test ESMTP\r\n"):
        return
    while (line := peer.read_until(b"\r\n")) is not None:
        command = line.strip().upper()
        if command == b"STARTTLS":
            if peer.send(b"220 Ready to start TLS\r\n"):
                dripping_tls_handshake(peer)
            return
        reply = b"250-drip.test\r\n250 STARTTLS\r\n" if command[:4] in (b"EHLO", b"HELO") else b"250 OK\r\n"
        if not peer.send(reply):
            return


def smtp_dripping_after_data(peer: Peer) -> None:
    """Answer SMTP at once, accept the message's data, then answer it with a reply that never ends
    (a "250-" continuation line that keeps growing): the client cannot know whether it was accepted."""
    if not peer.send(b"220 drip.test ESMTP\r\n"):
        return
    while (line := peer.read_until(b"\r\n")) is not None:
        command = line[:4].upper()
        if command == b"DATA":
            if not peer.send(b"354 Go ahead\r\n") or peer.read_until(b"\r\n.\r\n") is None:
                return
            if peer.send(b"250-Queued"):
                peer.drip_forever()
            return
        if command == b"QUIT":
            peer.send(b"221 Bye\r\n")
            return
        if not peer.send(b"250 drip.test\r\n" if command in (b"EHLO", b"HELO") else b"250 OK\r\n"):
            return


def http_dripping_response(peer: Peer) -> None:
    """Read one HTTP request, then start a response whose status line never ends."""
    if peer.read_until(b"\r\n\r\n") is None:  # the body, if any, is left unread
        return
    if peer.send(b"HTTP/1.1 "):
        peer.drip_forever()


class DripServer:
    """Start with ``start()`` (or use as a context manager); ``stop()`` hangs up on every client."""

    host = "127.0.0.1"

    def __init__(self, conversation: Conversation, *, interval: float = 0.2) -> None:
        self.conversation = conversation
        self.interval = interval
        self.connections = 0
        self._listener = socket.create_server((self.host, 0))
        self.port = self._listener.getsockname()[1]
        self._stopping = threading.Event()
        self._clients: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> DripServer:
        self._listener.settimeout(0.05)
        self._thread = threading.Thread(target=self._accept, name="drip-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._listener.close()
        with self._lock:
            for client in self._clients:
                client.close()

    def __enter__(self) -> DripServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            with self._lock:
                self._clients.append(client)
                self.connections += 1
            threading.Thread(target=self._serve, args=(client,), name="drip-client", daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            self.conversation(Peer(client, self._stopping, self.interval))
        finally:
            client.close()
