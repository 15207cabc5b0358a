"""The interface every mail provider implements, and the registry that picks one per mailbox.

A provider sends one already-built message at a time inside an open batch (one SMTP connection or
HTTP session per batch) and reports what happened as a ``SendResult``; it never raises for a
refused or failed send, so the caller records every outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, cast

from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.core.mail.message import make_msgid
from django.core.mail.utils import DNS_NAME
from django.utils.module_loading import import_string

from cam.models import Mailbox

# kind → dotted path; a new provider is one class and one line here.
PROVIDERS: dict[str, str] = {
    Mailbox.Provider.CONSOLE: "cam.outreach.providers.console.ConsoleProvider",
    Mailbox.Provider.SMTP: "cam.outreach.providers.smtp.SmtpProvider",
    Mailbox.Provider.RESEND: "cam.outreach.providers.resend.ResendProvider",
}


@dataclass(frozen=True)
class SendResult:
    """What became of one message.

    ``status`` is one of ``SENT``; ``RETRY`` (nothing was sent, try again later — honour
    ``retry_after`` seconds when given); ``FAILED`` (permanently refused, do not retry); or
    ``UNKNOWN`` (it may or may not have gone out: a person must decide, never resent on its own).

    ``attempted`` says whether the request reached the provider: only then does it count as one of
    the email's attempts. A send refused before that (no connection, a missing secret, a pause after
    a rate limit) is not the email's fault and must not bring it closer to giving up.
    ``halt_batch`` says that no further message of this batch can go now (the server cannot be
    reached, the API key is refused, the provider asked to slow down): the caller hands the batch's
    untried emails back, uncounted, to be sent after ``retry_after`` seconds when given.
    """

    status: str
    provider_message_id: str = ""
    error: str = ""
    retry_after: float | None = None
    attempted: bool = True
    halt_batch: bool = False


class MailProvider:
    """Sends messages for one mailbox. Use as a context manager around a batch."""

    kind: ClassVar[str]

    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox

    def __enter__(self) -> MailProvider:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def open(self) -> None:
        """Open the batch's connection or session (may be lazy)."""

    def close(self) -> None:
        """Close it; never raises."""

    def prepare(self, message: EmailMultiAlternatives, *, follows: bool = False) -> None:
        """Do ahead, while waiting on something else, what sending this very message object will need
        and that depends on nothing but the message (SMTP: its envelope and bytes). Never raises: what
        cannot be done is done again, and raises, when the message is sent.

        ``follows``: this message is the next one sent, on the same connection (no ``close()`` between).
        A provider may then start on it with the message before (SMTP with PIPELINING: its envelope goes
        in the same write as that message's data); anything else sent next, or ``close()``, abandons that
        start, which delivers nothing."""

    def send(self, message: EmailMultiAlternatives, *, idempotency_key: str) -> SendResult:
        """Send one message; ``idempotency_key`` is stable across retries of the same email."""
        raise NotImplementedError

    def send_when(self, message: EmailMultiAlternatives, *, idempotency_key: str, ready: Callable[[], bool],
                  meanwhile: Callable[[], object] | None = None) -> SendResult | None:
        """Send one message once ``ready()`` allows it; None (nothing handed over) when it does not.

        ``ready`` is called exactly once, before anything that could deliver the message: the sender
        commits there what must be durable before it goes (``cam.outreach.sending``). Here it is simply
        called first; a provider with preliminaries that deliver nothing runs them meanwhile (SMTP: the
        envelope, up to the server's 354). A ``ready`` may also have ``start()``, which begins that work
        and says whether it did: a provider may call it first, once, do its preliminaries on this
        thread, and then call ``ready()`` for the answer — always, whatever the preliminaries did.
        ``meanwhile``, if the provider has a moment of waiting to offer (SMTP: while the server takes the
        message in, or with PIPELINING while ``ready()`` commits, so that the next message is prepared in
        time to follow this one's data), is called then, at most once; nothing depends on it. It may run
        while the commit is in flight on the database connection: it must not use the database.
        """
        if not ready():
            return None
        return self.send(message, idempotency_key=idempotency_key)


def message_id_of(message: EmailMessage) -> str:
    """The Message-ID the message goes out with; one is added when the message has none.

    Django would otherwise make a new one each time the message is serialised, and the id a
    provider reports must be the one the recipient's replies refer to.
    """
    for name, value in message.extra_headers.items():
        if name.lower() == "message-id":
            return str(value)
    _, _, domain = str(message.from_email or "").rstrip(">").rpartition("@")
    message.extra_headers["Message-ID"] = make_msgid(domain=domain or DNS_NAME.get_fqdn())
    return str(message.extra_headers["Message-ID"])


def get_provider(mailbox: Mailbox) -> MailProvider:
    try:
        path = PROVIDERS[mailbox.provider]
    except KeyError:
        raise LookupError(f"Mailbox {mailbox.pk} has an unknown provider {mailbox.provider!r}.") from None
    return cast(MailProvider, import_string(path)(mailbox))
