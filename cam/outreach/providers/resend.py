"""The Resend provider: anymail's Resend backend, with an ``Idempotency-Key`` on every request.

Resend keeps a key for 24 hours and answers a repeated request with the first one's response, without
sending again; so a request that timed out or failed on the network is simply retried (``RETRY``)
with the same key. Outcomes:

- 2xx → ``SENT`` with Resend's email id (also when the key was already used: Resend repeats the
  first answer, so an email recovered after a crash becomes SENT from what Resend says);
- 429 → ``RETRY`` after ``retry-after`` seconds, not counted as an attempt (Resend did not take the
  request); the batch halts, and its untried emails are handed back uncounted;
- 5xx or a timeout after the request went out → ``RETRY``, counted;
- a connection that could not be opened → ``RETRY``, not counted (the request never reached Resend);
- 409 ``concurrent_idempotent_requests`` (the same email is being sent right now) → ``RETRY``, not counted;
- 409 for a key already used with a different payload → ``UNKNOWN``: an email went out under this key;
- 401, or a 403 about the API key → ``RETRY`` uncounted, and the batch halts, naming the key's variable;
- any other 4xx (400, 403, 422, …) → ``FAILED`` with Resend's message.

Requests per second stay under ``AICMO_CAM_RESEND_RATE_PER_SECOND`` across every CAM process (the limit
is kept in the shared cache, see ``resend_rate``); a request that gets no turn within the deadline below,
or whose turn cannot be asked for (Redis or the database down), is not made: ``RETRY`` uncounted, and
the batch halts. Each request has an overall deadline, ``AICMO_CAM_RESEND_DEADLINE_SECONDS``
(``AICMO_CAM_RESEND_TIMEOUT_SECONDS`` only limits each read, which an answer that comes a byte at a time
never trips): when it runs out the connection is shut down and the request counts as timed out
(``RETRY``, under the same key).
"""

from __future__ import annotations

import contextlib
import copy
import socket
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import requests
import urllib3
import urllib3.connection
from anymail.backends.resend import EmailBackend as AnymailResendBackend
from anymail.backends.resend import ResendPayload
from anymail.exceptions import AnymailError, AnymailRequestsAPIError
from django.conf import settings
from django.core.mail import EmailMessage
from django.utils import timezone

from cam import deadlines
from cam.deadlines import Deadline
from cam.models import Mailbox, OutboundEmail
from cam.outreach.providers.base import MailProvider, SendResult
from cam.outreach.providers.resend_rate import RateLimitBusy, RateLimitUnavailable, SharedRateLimit, resend_rate_limit
from cam.secrets import MissingSecret, secret_from_env

Status = OutboundEmail.Status

# Resend's own tags travel in the API request only; anymail's tags and metadata would become
# X-Tags / X-Metadata headers that every recipient can read.
RESEND_TAGS = [{"name": "cam", "value": "outreach"}]
# Errors about the API key: configuration for a person to fix, like a refused SMTP login.
API_KEY_ERRORS = {"missing_api_key", "invalid_api_key", "restricted_api_key"}


if TYPE_CHECKING:  # the mixin below is only ever mixed into urllib3's connection
    _ConnectionBase = urllib3.connection.HTTPConnection
else:
    _ConnectionBase = object


class _WatchedConnection(_ConnectionBase):
    """Puts the socket of an HTTP connection under the request's deadline (``cam.deadlines.watch``):
    a new one as soon as it is connected (before the TLS handshake), a kept-alive one as the next
    request starts on it. ``_new_conn`` is where urllib3 (1.x and 2.x alike) creates every socket;
    ``request`` starts every request. tests/outreach/test_provider_deadlines.py fails if either moves."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        deadlines.watch(sock)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        if self.sock is not None:
            deadlines.watch(self.sock)
        return super().request(*args, **kwargs)


class _WatchedHTTPConnection(_WatchedConnection, urllib3.connection.HTTPConnection):
    pass


class _WatchedHTTPSConnection(_WatchedConnection, urllib3.connection.HTTPSConnection):
    pass


class _WatchedHTTPConnectionPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSConnectionPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_WATCHED_POOLS = {"http": _WatchedHTTPConnectionPool, "https": _WatchedHTTPSConnectionPool}


class _WatchedAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter, on urllib3 pools (``pool_classes_by_scheme``, urllib3's way of choosing them)
    whose connections are watched; through an HTTP proxy too (a SOCKS proxy keeps its own pools, and
    only the per-read timeout)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, urllib3.ProxyManager):
            manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager


class IdempotentResendBackend(AnymailResendBackend):  # type: ignore[misc]  # anymail ships no types
    """anymail's Resend backend; each message's ``idempotency_key`` goes out as the request's
    ``Idempotency-Key`` header (an HTTP header of the API call, never a header of the email).
    Its connections come under the deadline of the request they carry."""

    def create_session(self) -> requests.Session:
        session: requests.Session = super().create_session()
        adapter = _WatchedAdapter()
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    def build_message_payload(self, message: EmailMessage, defaults: dict[str, Any]) -> ResendPayload:
        key = getattr(message, "idempotency_key", "")
        if not key:
            raise ValueError("A message sent through Resend needs an idempotency_key.")
        return ResendPayload(message, defaults, self, headers={"Idempotency-Key": key})


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds (it may be a number of seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - timezone.now()).total_seconds())
    except (TypeError, ValueError):
        return None


class ResendProvider(MailProvider):
    kind = Mailbox.Provider.RESEND

    def __init__(self, mailbox: Mailbox, *, limiter: SharedRateLimit | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(mailbox)
        self.limiter = limiter or resend_rate_limit()
        self._clock = clock
        self.backend: IdempotentResendBackend | None = None
        self.batch_error = ""  # why nothing in this batch can be sent (a missing API key)
        self._paused_until: float | None = None  # after a 429: no request before this clock time
        self._pause_reason = ""

    def open(self) -> None:
        """Read the API key and open the batch's HTTP session."""
        if self.backend is not None or self.batch_error:
            return
        try:
            api_key = secret_from_env(self.mailbox.resend_api_key_env,
                                      purpose=f"the Resend API key of mailbox {self.mailbox.name!r}")
        except MissingSecret as exc:
            self.batch_error = str(exc)
            return
        self.backend = IdempotentResendBackend(
            api_key=api_key, api_url=settings.AICMO_CAM_RESEND_API_URL,
            timeout=settings.AICMO_CAM_RESEND_TIMEOUT_SECONDS, fail_silently=False)
        self.backend.open()

    def close(self) -> None:
        if self.backend is not None:
            with contextlib.suppress(Exception):  # closing a pooled session; nothing to report
                self.backend.close()
            self.backend = None

    def send(self, message: EmailMessage, *, idempotency_key: str) -> SendResult:
        self.open()
        if self.batch_error:
            return SendResult(Status.RETRY, error=self.batch_error, attempted=False, halt_batch=True)
        assert self.backend is not None  # open() made one, as there is no batch_error
        if self._paused_until is not None:
            remaining = self._paused_until - self._clock()
            if remaining > 0:
                return SendResult(Status.RETRY, error=self._pause_reason, retry_after=remaining, attempted=False,
                                  halt_batch=True)
            self._paused_until = None

        outgoing = copy.copy(message)  # the caller's message is left as it was
        # Attributes anymail (and the backend above) read on Django's messages, which declare none of them.
        outgoing.idempotency_key = idempotency_key  # type: ignore[attr-defined]
        esp_extra = dict(getattr(message, "esp_extra", None) or {})
        esp_extra.setdefault("tags", RESEND_TAGS)
        outgoing.esp_extra = esp_extra  # type: ignore[attr-defined]

        try:
            self.limiter.wait(seconds=settings.AICMO_CAM_RESEND_DEADLINE_SECONDS)
        except (RateLimitBusy, RateLimitUnavailable) as exc:
            return SendResult(Status.RETRY, error=str(exc), attempted=False, halt_batch=True)
        with Deadline(settings.AICMO_CAM_RESEND_DEADLINE_SECONDS, "talking to Resend") as deadline:
            try:
                sent = self.backend.send_messages([outgoing])
            except AnymailRequestsAPIError as exc:
                return self._outcome_of(exc, deadline)
            except Exception as exc:  # every other failure is classified, never raised
                return self._not_posted(outgoing, exc)
        if not sent:
            return SendResult(Status.FAILED, error="The message has no recipients, or a pre_send receiver "
                                                   "cancelled it.")
        return SendResult(Status.SENT, provider_message_id=outgoing.anymail_status.message_id or "")  # type: ignore[attr-defined]

    @staticmethod
    def _not_posted(outgoing: EmailMessage, exc: Exception) -> SendResult:
        anymail_status: Any = getattr(outgoing, "anymail_status", None)
        if getattr(anymail_status, "esp_response", None) is not None:
            # Resend had accepted it; something after (a post_send receiver) failed.
            return SendResult(Status.SENT, provider_message_id=anymail_status.message_id or "",
                              error=f"Sent, then: {type(exc).__name__}: {exc}")
        if isinstance(exc, AnymailError | ValueError | TypeError):
            # anymail refused to build the request (an invalid address, a feature Resend lacks).
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return SendResult(Status.FAILED, error=f"The message cannot be sent through Resend: {first_line}",
                              attempted=False)
        # Unexpected; retrying is safe, as a request that did reach Resend carried the idempotency key.
        return SendResult(Status.RETRY, error=f"Sending through Resend failed: {type(exc).__name__}: {exc}")

    def _outcome_of(self, exc: AnymailRequestsAPIError, deadline: Deadline) -> SendResult:
        response = exc.response
        if response is None:  # timeout, refused connection, reset, deadline: retried with the same key
            cause = exc.__cause__ or exc
            said = deadline.explain(cause)  # a connection cut off by the deadline says so
            return SendResult(Status.RETRY, error=f"Resend could not be reached: {type(said).__name__}: {said}",
                              attempted=_request_went_out(cause))
        status = response.status_code
        name, text = _resend_error(response)
        said = f"Resend answered {status}{f' {name}' if name else ''}: {text}"
        if 200 <= status < 300:
            # Accepted, but the reply could not be read: it went out, and retrying under the same
            # key would only repeat this reply.
            return SendResult(Status.SENT, error=f"Resend accepted the message but its reply had no id: {text}")
        retry_after = retry_after_seconds(response.headers.get("retry-after"))
        if status == 429:
            wait = retry_after if retry_after is not None else 1.0
            self._paused_until = self._clock() + wait
            self._pause_reason = f"{said} (waiting {wait:g} s before the next request)"
            return SendResult(Status.RETRY, error=said, retry_after=wait, attempted=False, halt_batch=True)
        if status >= 500:
            return SendResult(Status.RETRY, error=said, retry_after=retry_after)
        if status == 409 and name == "concurrent_idempotent_requests":
            return SendResult(Status.RETRY, error=said, retry_after=retry_after, attempted=False)
        if status == 401 or name in API_KEY_ERRORS:
            # The key itself is wrong: no email of the batch can go, and a person must fix the variable.
            self.batch_error = f"{said.rstrip('.')}. Check the API key in {self.mailbox.resend_api_key_env}."
            return SendResult(Status.RETRY, error=self.batch_error, attempted=False, halt_batch=True)
        if status == 409:
            return SendResult(Status.UNKNOWN, error=f"{said.rstrip('.')}. An email was already sent under this "
                                                    f"idempotency key with different content: check before resending.")
        return SendResult(Status.FAILED, error=said)


def _request_went_out(cause: BaseException) -> bool:
    """Whether a request that got no answer may have reached Resend: not when the connection itself
    could not be opened (refused, unknown host, a connect timeout), else yes (a read timeout, a reset)."""
    if isinstance(cause, requests.exceptions.ConnectTimeout):
        return False
    if isinstance(cause, requests.exceptions.ConnectionError):
        reason = getattr(cause.args[0], "reason", None) if cause.args else None
        return not isinstance(reason, urllib3.exceptions.NewConnectionError | urllib3.exceptions.NameResolutionError)
    return True


def _resend_error(response: requests.Response) -> tuple[str, str]:
    """Resend's error ``name`` and ``message`` (its JSON error body), or the raw text."""
    try:
        body = response.json()
    except ValueError:
        return "", (response.text or response.reason or "").strip()[:500]
    if isinstance(body, dict):
        return str(body.get("name") or ""), str(body.get("message") or body)[:500]
    return "", str(body)[:500]
