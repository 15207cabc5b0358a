"""The console provider: Django's console email backend. Messages are written to standard output
(or the stream given) and nothing leaves the machine; the default for a new mailbox."""

from __future__ import annotations

import sys
from typing import TextIO

from django.core.mail import EmailMessage
from django.core.mail.backends.console import EmailBackend as ConsoleBackend

from cam.models import Mailbox, OutboundEmail
from cam.outreach.providers.base import MailProvider, SendResult, message_id_of

SENT = OutboundEmail.Status.SENT
FAILED = OutboundEmail.Status.FAILED




class ConsoleProvider(MailProvider):
    kind = Mailbox.Provider.CONSOLE

    def __init__(self, mailbox: Mailbox, *, stream: TextIO | None = None) -> None:
        super().__init__(mailbox)
        self.stream = stream
        self.backend: ConsoleBackend | None = None

    def open(self) -> None:
        if self.backend is None:
            self.backend = ConsoleBackend(stream=self.stream or sys.stdout, fail_silently=False)

    def close(self) -> None:
        self.backend = None

    def send(self, message: EmailMessage, *, idempotency_key: str) -> SendResult:
        self.open()
        message_id = message_id_of(message)
        assert self.backend is not None  # built by open()
        try:
            written = self.backend.send_messages([message])
        except Exception as exc:  # the message cannot be serialised (a bad header or address)
            return SendResult(FAILED, error=f"The message could not be written: {type(exc).__name__}: {exc}")
        if not written:
            return SendResult(FAILED, error="The message has no recipients.")
        return SendResult(SENT, provider_message_id=message_id)
