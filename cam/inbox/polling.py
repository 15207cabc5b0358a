"""Polling the mailboxes' IMAP folders: every new message is stored once, and nothing is lost.

- Each folder keeps a watermark: the folder's UIDVALIDITY and the highest UID already read. A poll
  asks the server only for UIDs above it, fetches them in chunks (``fetch_chunks``: at most
  ``AICMO_CAM_IMAP_FETCH_CHUNK`` messages and about ``AICMO_CAM_IMAP_FETCH_CHUNK_BYTES``), and stores
  each chunk's rows *and* the advanced watermark in one transaction: a crash between chunks leaves a
  watermark that matches exactly what was stored, so nothing is fetched twice or skipped.
- A folder starts from now: its first poll sets the watermark just below the folder's UIDNEXT, so
  the mail already in it is not read, except what the server received in the folder's last
  ``backfill_days`` days. When the server reports a new UIDVALIDITY for a folder (it was rebuilt or
  restored), its UIDs mean nothing any more: it starts again from its UIDNEXT, after reading what it
  received since the day before its last poll (or its backfill days, if they reach further back).
- ``(mailbox, folder, uidvalidity, uid)`` is unique, and a message whose Message-ID is already
  stored for the mailbox (in any folder) is not stored again. Messages without a Message-ID are
  compared by their date and raw bytes instead. So a folder read again (a backfill, a new UIDVALIDITY)
  stores none of the messages it already gave.
- The server is never changed: folders are opened read-only and read with ``BODY.PEEK[]``.
- A mailbox that cannot be polled (unreachable, login refused, timeout, a missing password) gets
  ``last_poll_error`` and the poll goes on with the next mailbox; a successful poll clears it.
- No server can hold the others back: mailboxes are polled side by side (``AICMO_CAM_IMAP_POLL_CONCURRENCY``
  at a time), every IMAP step has an overall deadline (``AICMO_CAM_IMAP_DEADLINE_SECONDS``), and the
  whole step a budget (``AICMO_CAM_IMAP_POLL_BUDGET_SECONDS``) after which the conversations still
  running are cut off. So is every conversation when the worker is told to stop (a ``stop`` event, or
  ``cam.deadlines.cancel_interruptible``). A poll cut off keeps every chunk it stored.
- Each chunk costs the same few queries, however many messages it holds.
- The IMAP session stays logged in between polls of a mailbox in the same process (checked with a NOOP
  before it is used again; see ``cam.inbox.imap``), so a cycle does not pay a connection and a login
  per mailbox.

Classification and threading of the stored rows happen later, elsewhere: polling leaves
``category``, ``lead``, ``outbound_email`` and ``processed_at`` empty.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, DataError, IntegrityError, connection, connections, transaction
from django.db.models import BinaryField, Case, F, Q, Value, When
from django.utils import timezone

from cam.deadlines import CancelScope
from cam.inbox.imap import (
    FetchedMessage,
    FolderStatus,
    ImapError,
    ImapFolderError,
    ImapInbox,
    imap_sessions_expire,
)
from cam.inbox.parsing import parse_message
from cam.locks import lease_acquire, lease_release, lease_renew
from cam.models import InboundEmail, Mailbox, MailboxFolder
from cam.models.fields import max_length
from cam.secrets import MissingSecret, secret_from_env

logger = logging.getLogger(__name__)

COUNTS = ("mailboxes", "fetched", "stored", "skipped_duplicates", "failed")
# After the step's conversations were cut off, how long it waits for its threads to record what they
# did. A thread still connecting then (a connect attempt cannot be cut short) finishes on its own.
CUT_OFF_GRACE_SECONDS = 2.0


class _WatermarkMoved(Exception):
    """Another poller advanced this folder's watermark meanwhile: its rows win, ours are rolled back."""


@dataclass
class _Outcome:
    mailbox: Mailbox
    counts: dict[str, int] = field(default_factory=dict)
    problem: str = ""
    error: BaseException | None = None  # what a polling thread raised (the database failed)


def inboxes_poll(*, budget_seconds: float | None = None, stop: threading.Event | None = None) -> dict[str, Any]:
    """Poll every active mailbox that has an IMAP host; no mailbox's failure or slowness holds back the others.

    Mailboxes are polled ``AICMO_CAM_IMAP_POLL_CONCURRENCY`` at a time, each in a thread of its own
    (which closes its database connection when done). Inside a transaction (tests, a shell) they are
    polled one after another in this thread instead, since other threads could not see its rows; then
    ``stop`` is looked at between mailboxes only (the budget and ``cancel_interruptible`` still cut).

    Returns within ``budget_seconds`` (default ``AICMO_CAM_IMAP_POLL_BUDGET_SECONDS``), or soon after
    ``stop`` is set or ``cam.deadlines.cancel_interruptible`` is called, plus a moment for the cut-off
    polls to record what they stored: the conversations still running then are cut off, and the
    mailboxes not started are left for the next poll.

    The counts are summed: ``mailboxes`` polled, messages ``fetched``, ``stored``,
    ``skipped_duplicates`` (already stored), mailboxes ``failed``; ``busy`` when a mailbox was being
    polled by another worker just then (and so was left to it); and ``problems``, a line
    "mailbox <name>: <error>" for each mailbox whose poll failed, was cut off or was not started.
    Raises only when the database itself fails.
    """
    budget = settings.AICMO_CAM_IMAP_POLL_BUDGET_SECONDS if budget_seconds is None else budget_seconds
    imap_sessions_expire()  # those of mailboxes no longer polled here
    # The least recently polled first: mailboxes a budget cut off last time are not starved by the
    # same slow ones ahead of them every time.
    # One whose OAuth2 grant is gone waits for someone to connect it again (cam.mail_oauth).
    mailboxes = list(Mailbox.objects.filter(is_active=True, needs_reconnect=False).exclude(imap_host="")
                     .order_by(F("last_polled_at").asc(nulls_first=True), "pk"))
    with CancelScope(interruptible=True) as scope:
        scope.cancel_after(budget, f"the poll step ran out of its {budget:g} s budget")
        if connection.in_atomic_block:
            outcomes = _poll_in_turn(mailboxes, scope=scope, stop=stop)
        else:
            outcomes = _poll_side_by_side(mailboxes, scope=scope, stop=stop)
    totals: dict[str, Any] = dict.fromkeys(COUNTS, 0)
    problems = []
    for outcome in outcomes:
        if outcome.error is not None:
            raise outcome.error
        for key, value in outcome.counts.items():
            totals[key] = totals.get(key, 0) + value
        if outcome.problem:
            problems.append(f"mailbox {outcome.mailbox.name}: {outcome.problem}")
    totals["problems"] = problems
    return totals


def _stop_reason(stop: threading.Event | None) -> str:
    return "the worker was told to stop" if stop is not None and stop.is_set() else ""


def _poll_one(mailbox: Mailbox, *, scope: CancelScope) -> _Outcome:
    if scope.cancelled:
        return _Outcome(mailbox, problem=f"not polled: {scope.cancelled}")
    counts = inbox_poll(mailbox=mailbox, scope=scope)
    problem = mailbox.last_poll_error.replace("\n", "; ") if counts.get("failed") else ""
    return _Outcome(mailbox, counts=counts, problem=problem)


def _poll_in_turn(mailboxes: list[Mailbox], *, scope: CancelScope, stop: threading.Event | None) -> list[_Outcome]:
    outcomes = []
    for mailbox in mailboxes:
        if reason := _stop_reason(stop):
            scope.cancel(reason)
        outcomes.append(_poll_one(mailbox, scope=scope))
    return outcomes


def _poll_side_by_side(mailboxes: list[Mailbox], *, scope: CancelScope,
                       stop: threading.Event | None) -> list[_Outcome]:
    """Poll in a few threads; wait until all are done, or once the scope is cancelled a short grace at most.

    The threads are daemons: one stuck in a connect attempt must not keep the process from exiting.
    """
    waiting: queue.SimpleQueue[Mailbox] = queue.SimpleQueue()
    for mailbox in mailboxes:
        waiting.put(mailbox)
    started: set[int] = set()
    outcomes: dict[int, _Outcome] = {}
    lock = threading.Lock()
    count = min(settings.AICMO_CAM_IMAP_POLL_CONCURRENCY, len(mailboxes))
    remaining = [count]
    all_done = threading.Event()

    def work() -> None:
        try:
            while True:
                try:
                    mailbox = waiting.get_nowait()
                except queue.Empty:
                    return
                with lock:
                    started.add(mailbox.pk)
                try:
                    outcome = _poll_one(mailbox, scope=scope)
                except BaseException as exc:  # handed to the caller, who raises it
                    outcome = _Outcome(mailbox, error=exc)
                with lock:
                    outcomes[mailbox.pk] = outcome
        finally:
            connections.close_all()  # this thread's connections only
            with lock:
                remaining[0] -= 1
                if not remaining[0]:
                    all_done.set()

    for n in range(count):
        threading.Thread(target=work, name=f"cam-poll-{n}", daemon=True).start()
    grace_ends = None
    # A stop event cannot be waited on together with the threads: look at it every few hundredths.
    while count and not all_done.wait(0.05):
        if reason := _stop_reason(stop):
            scope.cancel(reason)
        if scope.cancelled:
            grace_ends = grace_ends or time.monotonic() + CUT_OFF_GRACE_SECONDS
            if time.monotonic() >= grace_ends:
                break
    with lock:
        return [outcomes.get(mailbox.pk) or _Outcome(mailbox, problem=(
            f"cut off ({scope.cancelled}) and still closing; what it stored stays stored"
            if mailbox.pk in started else f"not polled: {scope.cancelled}")) for mailbox in mailboxes]


def inbox_poll(*, mailbox: Mailbox, scope: CancelScope | None = None) -> dict[str, int]:
    """Store the new messages of every folder of ``mailbox`` (``INBOX`` when it lists none).

    Records the outcome on the mailbox: ``last_polled_at``, and ``last_poll_error`` (empty after a
    poll in which every folder was read). Its IMAP conversations are cut off when ``scope`` is
    cancelled (by default: when ``cam.deadlines.cancel_interruptible`` is called). Raises only when
    the database itself fails.
    """
    if scope is None:
        with CancelScope(interruptible=True) as own:
            return inbox_poll(mailbox=mailbox, scope=own)
    counts = dict.fromkeys(COUNTS, 0)
    lease, holder = f"poll:mailbox:{mailbox.pk}", f"{settings.AICMO_CAM_WORKER_ID}:{uuid.uuid4().hex[:12]}"
    if not lease_acquire(name=lease, holder=holder):
        return {**counts, "busy": 1}
    counts["mailboxes"] = 1
    try:
        errors = _poll(mailbox=mailbox, counts=counts, lease=(lease, holder), scope=scope)
    finally:
        lease_release(name=lease, holder=holder)
    now = timezone.now()
    error = "\n".join(errors)
    Mailbox.objects.filter(pk=mailbox.pk).update(last_polled_at=now, last_poll_error=error)
    mailbox.last_polled_at, mailbox.last_poll_error = now, error
    if errors:
        counts["failed"] = 1
        logger.warning("Polling mailbox %s failed: %s", mailbox.name, error)
    logger.info("Polled mailbox %s: %s", mailbox.name, counts)
    return counts


def _poll(*, mailbox: Mailbox, counts: dict[str, int], lease: tuple[str, str], scope: CancelScope) -> list[str]:
    """Read every folder; returns what went wrong, for ``last_poll_error``."""
    folders = list(mailbox.folders.order_by("name"))
    if not folders:
        folders = [mailbox.folders.get_or_create(name="INBOX")[0]]
    if not mailbox.imap_host:
        return [f"Mailbox {mailbox.name!r} has no IMAP host."]
    errors: list[str] = []
    try:
        password = "" if mailbox.auth == Mailbox.Auth.OAUTH2 else secret_from_env(
            mailbox.imap_password_env, purpose=f"the IMAP password of mailbox {mailbox.name!r}")
        with ImapInbox(mailbox, password=password, timeout=settings.AICMO_CAM_IMAP_TIMEOUT_SECONDS,
                       max_bytes=settings.AICMO_CAM_RAW_MESSAGE_MAX_BYTES,
                       deadline_seconds=settings.AICMO_CAM_IMAP_DEADLINE_SECONDS, scope=scope,
                       reuse=True) as inbox:
            for folder in folders:
                try:
                    _poll_folder(inbox=inbox, folder=folder, counts=counts, lease=lease)
                except ImapFolderError as exc:  # the other folders may still be read
                    errors.append(str(exc))
    except (MissingSecret, ImapError) as exc:
        errors.append(str(exc))
    except (DataError, IntegrityError) as exc:  # this mailbox's data, not the database, is the problem
        logger.exception("Storing the messages of mailbox %s failed", mailbox.name)
        errors.append(f"A message could not be stored: {type(exc).__name__}: {exc}")
    except DatabaseError:  # the database is unreachable: the caller's cycle ends here
        raise
    except Exception as exc:  # a surprise from the IMAP library must not stop the other mailboxes
        logger.exception("Polling mailbox %s failed unexpectedly", mailbox.name)
        errors.append(f"Unexpected error while polling: {type(exc).__name__}: {exc}")
    return errors


def _poll_folder(*, inbox: ImapInbox, folder: MailboxFolder, counts: dict[str, int],
                 lease: tuple[str, str]) -> None:
    try:
        _read_folder(inbox=inbox, folder=folder, counts=counts, lease=lease)
    except _WatermarkMoved:
        logger.warning("Folder %s was polled by another worker meanwhile; leaving it to that one.", folder)


def _read_folder(*, inbox: ImapInbox, folder: MailboxFolder, counts: dict[str, int],
                 lease: tuple[str, str]) -> None:
    status = inbox.select(folder.name)
    uidvalidity = status.uidvalidity
    if folder.uidvalidity != uidvalidity and not _start(inbox=inbox, folder=folder, status=status, counts=counts,
                                                        lease=lease):
        return
    uids = inbox.uids_after(folder.last_uid)
    if not uids:
        _advance(folder, uidvalidity=uidvalidity, last_uid=folder.last_uid, rows=[])
        return
    for chunk, most_bytes in _chunks(inbox, uids):
        if not _store_chunk(inbox=inbox, folder=folder, uidvalidity=uidvalidity, chunk=chunk, counts=counts,
                            lease=lease, last_uid=chunk[-1], most_bytes=most_bytes):
            return


def _start(*, inbox: ImapInbox, folder: MailboxFolder, status: FolderStatus, counts: dict[str, int],
           lease: tuple[str, str]) -> bool:
    """Set the watermark of a folder not read under this UIDVALIDITY at the folder's next UID, after
    reading the messages it received since ``_backlog_since``; False when the poll must stop.

    Until the last of those messages is stored the watermark stays as it was: a poll that breaks off
    reads them again next time, and the duplicate checks skip those already stored.
    """
    if folder.uidvalidity is not None:
        logger.warning("Folder %s has a new UIDVALIDITY (%s, was %s): reading it from its next message on, after "
                       "those it received since its last poll; messages already stored are skipped.",
                       folder, status.uidvalidity, folder.uidvalidity)
    since = _backlog_since(folder)
    backlog = [] if since is None else inbox.uids_received_since(since, below_uid=status.uidnext)
    start_uid = status.uidnext - 1
    if not backlog:
        _advance(folder, uidvalidity=status.uidvalidity, last_uid=start_uid, rows=[])
        return True
    for chunk, most_bytes in _chunks(inbox, backlog):
        done = chunk[-1] == backlog[-1]
        if not _store_chunk(inbox=inbox, folder=folder, uidvalidity=status.uidvalidity, chunk=chunk, counts=counts,
                            lease=lease, last_uid=start_uid if done else None, most_bytes=most_bytes):
            return False
    return True


def _chunks(inbox: ImapInbox, uids: list[int]) -> list[tuple[list[int], int]]:
    """``uids`` in the chunks to fetch them in, each with the most bytes it can bring. The messages' sizes
    are asked for (one command) only when a chunk of the most messages could hold more than the bytes
    allowed if each were as long as may be read."""
    count, budget, each = (settings.AICMO_CAM_IMAP_FETCH_CHUNK, settings.AICMO_CAM_IMAP_FETCH_CHUNK_BYTES,
                           inbox.max_bytes)
    sizes = inbox.sizes(uids) if min(len(uids), count) * each > budget else None
    return fetch_chunks(uids, sizes, count=count, budget=budget, each=each)


def fetch_chunks(uids: list[int], sizes: dict[int, int] | None, *, count: int, budget: int,
                 each: int) -> list[tuple[list[int], int]]:
    """``uids`` cut, in order, into runs of at most ``count`` messages whose bytes (each counted up to ``each``,
    the most read of one message) stay within ``budget`` — a run always takes at least one message —, each
    with its bytes. ``sizes``: the messages' sizes by UID; without them (or a size), a message counts as
    ``each``. Cutting by bytes keeps a chunk of big messages small in memory and one of small replies big,
    which costs fewer commits and duplicate checks."""
    chunks: list[tuple[list[int], int]] = []
    chunk: list[int] = []
    held = 0
    for uid in uids:
        size = min(each, sizes.get(uid, each)) if sizes is not None else each
        if chunk and (len(chunk) == count or held + size > budget):
            chunks.append((chunk, held))
            chunk, held = [], 0
        chunk.append(uid)
        held += size
    if chunk:
        chunks.append((chunk, held))
    return chunks


def _backlog_since(folder: MailboxFolder) -> date | None:
    """The first day whose messages are read when a folder is (re)started, or None to read none of them.

    Staff's ``backfill_days``; and for a folder the server renumbered (a new UIDVALIDITY), the day
    before its last poll, so that what arrived since then, now under new UIDs, is not lost. A day
    earlier, because the server compares dates in its own timezone.
    """
    today = timezone.localdate()
    days = [today - timedelta(days=folder.backfill_days)] if folder.backfill_days else []
    if folder.uidvalidity is not None and folder.last_polled_at is not None:
        days.append(timezone.localdate(folder.last_polled_at) - timedelta(days=1))
    return min(days, default=None)


def _store_chunk(*, inbox: ImapInbox, folder: MailboxFolder, uidvalidity: int, chunk: list[int],
                 counts: dict[str, int], lease: tuple[str, str], last_uid: int | None, most_bytes: int) -> bool:
    """Fetch ``chunk`` and store its new messages, moving the watermark to ``last_uid`` with them (None:
    leave it where it is); False when the poll must stop."""
    if not lease_renew(name=lease[0], holder=lease[1]):
        logger.warning("Lost the polling lease of mailbox %s; stopping.", folder.mailbox.name)
        return False
    messages = inbox.fetch(chunk, most_bytes=most_bytes)
    rows = _new_rows(folder=folder, uidvalidity=uidvalidity, messages=messages)
    if last_uid is None:
        _advance(folder, uidvalidity=folder.uidvalidity, last_uid=folder.last_uid, rows=rows, polled=False)
    else:
        _advance(folder, uidvalidity=uidvalidity, last_uid=last_uid, rows=rows)
    counts["fetched"] += len(messages)
    counts["stored"] += len(rows)
    counts["skipped_duplicates"] += len(messages) - len(rows)
    return True


def _advance(folder: MailboxFolder, *, uidvalidity: int | None, last_uid: int, rows: list[InboundEmail],
             polled: bool = True) -> None:
    """Store ``rows`` and move the folder's watermark, together or not at all.

    The watermark only moves from the value this poll read: if another poller moved it first, the
    transaction is rolled back (``_WatermarkMoved``) and that poller's rows stand. ``polled``: record
    the time as the folder's last poll (not while a backlog is still being read: a folder renumbered
    again would be read back from then).
    """
    now = timezone.now()
    changes: dict[str, Any] = {"uidvalidity": uidvalidity, "last_uid": last_uid}
    if polled:
        changes["last_polled_at"] = now
    with transaction.atomic():
        # ignore_conflicts: the unique key's last word when two pollers race past the lease.
        InboundEmail.objects.bulk_create(rows, ignore_conflicts=True)
        moved = MailboxFolder.objects.filter(pk=folder.pk, uidvalidity=folder.uidvalidity,
                                             last_uid=folder.last_uid).update(**changes)
        if not moved:
            raise _WatermarkMoved
    folder.uidvalidity, folder.last_uid = uidvalidity, last_uid
    if polled:
        folder.last_polled_at = now


def _new_rows(*, folder: MailboxFolder, uidvalidity: int, messages: list[FetchedMessage]) -> list[InboundEmail]:
    """Rows for the messages not stored yet, in one query however many there are.

    Already stored means: the same folder, UIDVALIDITY and UID; or the same Message-ID anywhere in
    the mailbox; or, for a message without a Message-ID, the same date and the same raw bytes.
    """
    mailbox = folder.mailbox
    rows = [_row(folder=folder, uidvalidity=uidvalidity, message=message) for message in messages]
    if not rows:
        return []
    stored = Q(folder=folder.name, uidvalidity=uidvalidity, uid__in=[row.uid for row in rows])
    message_ids = {row.message_id for row in rows if row.message_id}
    if message_ids:
        stored |= Q(message_id__in=message_ids)
    anonymous_dates = {row.received_at for row in rows if not row.message_id}
    if anonymous_dates:
        dated = Q(received_at__in=[date for date in anonymous_dates if date is not None])
        if None in anonymous_dates:
            dated |= Q(received_at__isnull=True)
        stored |= Q(dated, message_id="")
    existing = (InboundEmail.objects.filter(stored, mailbox=mailbox)
                # The raw bytes only of rows without a Message-ID: the only ones compared by content.
                .annotate(anonymous_raw=Case(When(message_id="", then=F("raw_message")), default=Value(None),
                                             output_field=BinaryField()))
                .values_list("folder", "uidvalidity", "uid", "message_id", "received_at", "anonymous_raw"))
    seen_uids, seen_ids = set(), set()
    seen_contents: set[tuple[datetime | None, bytes | memoryview]] = set()
    for folder_name, row_uidvalidity, uid, message_id, received_at, raw in existing:
        seen_uids.add((folder_name, row_uidvalidity, uid))
        if message_id:
            seen_ids.add(message_id)
        elif raw is not None:
            seen_contents.add((received_at, bytes(raw)))
    new = []
    for row in rows:
        content = (row.received_at, row.raw_message)
        if ((row.folder, row.uidvalidity, row.uid) in seen_uids
                or (row.message_id and row.message_id in seen_ids)
                or (not row.message_id and content in seen_contents)):
            continue
        new.append(row)
        # Two copies of one message in the same chunk are stored once too.
        if row.message_id:
            seen_ids.add(row.message_id)
        else:
            seen_contents.add(content)
    return new


def _fit(value: str, field: str) -> str:
    return value[:max_length(InboundEmail, field)]


def _row(*, folder: MailboxFolder, uidvalidity: int, message: FetchedMessage) -> InboundEmail:
    parsed = parse_message(message.raw)
    if parsed.problems:
        logger.info("Message %s/%s in %s read in part: %s", uidvalidity, message.uid, folder,
                    "; ".join(parsed.problems))
    received_at: datetime | None = parsed.date or message.internal_date
    from_email = parsed.from_email if len(parsed.from_email) <= 254 else ""
    return InboundEmail(
        mailbox=folder.mailbox, folder=folder.name, uidvalidity=uidvalidity, uid=message.uid,
        message_id=_fit(parsed.message_id, "message_id"), in_reply_to=_fit(parsed.in_reply_to, "in_reply_to"),
        references=parsed.references, from_email=from_email, from_name=_fit(parsed.from_name, "from_name"),
        subject=_fit(parsed.subject, "subject"), received_at=received_at, new_text=parsed.text,
        raw_message=message.raw, raw_truncated=message.truncated,
    )
