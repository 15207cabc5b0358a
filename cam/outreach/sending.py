"""Claiming planned emails and sending them through each mailbox's provider: exactly once, and never lost.

- A mailbox's batch runs under its lease (``send:mailbox:<id>``), so its daily cap and minimum gap
  hold however many workers send at once; different mailboxes send in parallel. The lease's holder
  is also the batch's claim token, and the batch renews the lease as it goes.
- Rows are claimed (``CLAIMED``) on PostgreSQL by one statement, an ``UPDATE`` of the rows a
  ``SELECT … FOR UPDATE SKIP LOCKED`` picks, returning them whole; where the database has no row locks
  (SQLite), by a conditional ``UPDATE … WHERE status IN (PENDING, RETRY)``: either way two senders never
  claim the same row. Claiming counts no attempt. A worker's send step (``mailbox_send_due``) claims
  again as the last email of a claim goes, under the same lease, until nothing is due or its time is up;
  while claims come back full, each takes twice as many as the one before (``CLAIM_GROWTH``).
- Each email costs one commit of its own (``cam.outreach.outcomes``): right after its provider call,
  its outcome (``SENT`` with the provider's id, ``RETRY``, ``FAILED``, ``UNKNOWN``) and its lead's
  progress are committed together, with the next email marked in flight (``cam.in_flight``). That write
  is also the batch's check, before each send, that the database still answers and that the claim is
  still its own; the batch stops at the first failure. A crash therefore leaves at most the one email
  in flight; the rows it had claimed but not tried are claimed and not in flight. The provider
  asks for that commit (``send_when``'s ``ready``) before anything that could deliver the email, and
  may meanwhile do what delivers nothing (SMTP: the envelope), so the two waits overlap.
- An attempt counts only when the request reached the provider (``SendResult.attempted``). When the
  provider halts the batch (the server cannot be reached, the key is refused, a 429), the untried
  rows are handed back uncounted, after the provider's ``retry-after`` when it gave one.
- ``outbound_recover_stuck`` finds the rows of senders whose lease is gone (they died, or lost the
  database): claimed rows go back to the queue; the one in flight becomes ``UNKNOWN`` (SMTP and
  console: it may have gone out, and there is no way to ask) or ``RETRY`` (Resend: the same
  idempotency key makes a second request harmless, and Resend answers it with the first request's
  outcome).
"""

from __future__ import annotations

import logging
import time
import uuid
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import connection, transaction
from django.db.models import Case, F, QuerySet, Value, When
from django.db.models.functions import Coalesce
from django.db.utils import InterfaceError, OperationalError
from django.utils import timezone
from django_q.tasks import async_task

from cam.budget import Budget
from cam.domains.services import held_domains
from cam.in_flight import IN_FLIGHT
from cam.locks import lease_acquire, lease_release, lease_renew
from cam.models import Lead, Lease, Mailbox, OutboundEmail, SendInFlight, SequenceStep
from cam.outreach.events import provider_events_link
from cam.outreach.messages import build_message
from cam.outreach.outcomes import (
    IN_HAND,
    InFlight,
    Outcome,
    db_values,
    outcome_of,
    outcome_write,
    outcome_write_send,
    retry_base,
    set_clause,
)
from cam.outreach.pacing import gap_ends_at
from cam.outreach.planning import SENDING_CAMPAIGNS, campaign_steps
from cam.outreach.providers import MailProvider, SendResult, get_provider
from cam.suppressions import suppressed_addresses

logger = logging.getLogger(__name__)

Status = OutboundEmail.Status
Blocked = Lead.BlockedReason
READY = (Status.PENDING, Status.RETRY)
# Providers whose requests carry an idempotency key: a row left in flight may be sent again.
IDEMPOTENT_PROVIDERS = (Mailbox.Provider.RESEND,)
# Providers whose webhooks report events by the provider's message id, which may beat the sender.
PROVIDERS_WITH_EVENTS = (Mailbox.Provider.RESEND,)
# How long the sender keeps trying to record an outcome it already has while the database is away,
# before leaving the row to recovery.
OUTCOME_WRITE_PATIENCE = 30.0
# A step's claims double while they come back full, up to this many times AICMO_CAM_SEND_BATCH_SIZE. Claimed emails
# not yet tried are not at risk (a crash hands them back once the lease lapses; a stop, at once), and one mailbox has
# one sender at a time, so a larger claim keeps nothing from anyone; each connection still takes a batch's worth.
CLAIM_GROWTH = 8
# A row handed back: PENDING if no request for it ever reached a provider, else RETRY.
HANDED_BACK_STATUS = Case(When(attempts=0, then=Value(Status.PENDING)), default=Value(Status.RETRY))

DATABASE_GONE = (InterfaceError, OperationalError)
OUTBOUND_FIELDS = tuple(field.name for field in OutboundEmail._meta.concrete_fields)
OUTBOUND_COLUMNS = tuple(field.column or field.attname for field in OutboundEmail._meta.concrete_fields)


def _ready(now: datetime) -> QuerySet[OutboundEmail]:
    # Only the sequence's: a person's answer is sent in its request (cam.outreach.answers), never queued.
    return OutboundEmail.objects.filter(kind=OutboundEmail.Kind.SEQUENCE, status__in=READY, next_attempt_at__lte=now,
                                        campaign__status__in=SENDING_CAMPAIGNS,
                                        lead__status=Lead.Status.IN_SEQUENCE)


def outbound_claim(*, mailbox: Mailbox, limit: int, now: datetime, holder: str) -> list[OutboundEmail]:
    """Mark up to ``limit`` ready emails of ``mailbox`` as CLAIMED by ``holder`` (the batch's lease
    holder); returns them in the order they are due, with every field of their own (of the lead, only
    its id, as a deferred instance: its unsubscribe token).

    No attempt is counted: that happens only when a request for the email reaches the provider.
    """
    ready = _ready(now).filter(mailbox=mailbox).order_by("next_attempt_at", "pk")
    claim = {"status": Status.CLAIMED, "claimed_by": holder, "claimed_at": now, "updated_at": now}
    if connection.vendor == "postgresql":
        rows = _claim_returning(ready, limit=limit, claim=claim)
    else:
        with transaction.atomic():
            candidates = list(ready.values_list("pk", flat=True)[:limit])
            OutboundEmail.objects.filter(pk__in=candidates, status__in=READY).update(**claim)
        rows = list(OutboundEmail.objects.filter(pk__in=candidates, claimed_by=holder, status=Status.CLAIMED)
                    .only(*OUTBOUND_FIELDS))
    for row in rows:
        # Of the lead, only its id: loading a whole lead, with its source data, costs more than the email itself.
        row.lead = Lead.from_db(connection.alias, ["id"], [row.lead_id])
    rows.sort(key=lambda row: (row.next_attempt_at, row.pk))
    return rows


def _claim_returning(ready: QuerySet[OutboundEmail], *, limit: int, claim: dict[str, Any]) -> list[OutboundEmail]:
    """PostgreSQL's claim: one statement, atomic on its own — an ``UPDATE`` of the rows a ``SELECT … FOR
    UPDATE SKIP LOCKED`` picks, ``RETURNING`` them whole — instead of a transaction of a select, an update
    and a second select reading the rows back: a third of the round trips, and no rows read twice."""
    return list(OutboundEmail.objects.raw(*claim_statement(ready, limit=limit, claim=claim)))


def claim_statement(ready: QuerySet[OutboundEmail], *, limit: int, claim: dict[str, Any]) -> tuple[str, list[Any]]:
    """PostgreSQL's claim statement and its parameters: ``claim``'s values written to the first ``limit``
    rows of ``ready`` no other sender has locked, returned whole."""
    table = connection.ops.quote_name(OutboundEmail._meta.db_table)
    # FOR UPDATE written here: Django compiles it only inside a transaction, and this statement needs none.
    picked, picked_params = ready.values("pk")[:limit].query.sql_with_params()
    lock = connection.ops.for_update_sql(skip_locked=True, of=(table,))
    columns = ", ".join(connection.ops.quote_name(column) for column in OUTBOUND_COLUMNS)
    sql = (f"UPDATE {table} SET {set_clause(OutboundEmail, tuple(claim))} WHERE id IN ({picked} {lock}) "
           f"RETURNING {columns}")
    return sql, [*db_values(OutboundEmail, claim), *picked_params]


@dataclass
class _Batch:
    """One mailbox's batch in progress: what it claimed, what it has done, and why it stopped."""

    mailbox: Mailbox
    holder: str
    budget: Budget
    steps: dict[int, list[SequenceStep]] = field(default_factory=dict)  # each campaign's, for the next one
    counts: dict[str, Any] = field(default_factory=dict)
    untried: set[int] = field(default_factory=set)
    size: int = 0  # at most this many emails a connection, and the first claim
    claim_size: int = 0  # the next claim's: rolling, it grows while claims come back full (CLAIM_GROWTH)
    rolling: bool = False  # claim again, as long as each claim is full (``mailbox_send_due``)
    claimed: int = 0
    full: bool = False  # the last claim took as many as it could: more may be due
    stopped: str = ""
    halted: bool = False  # by the provider (``SendResult.halt_batch``), after ``retry_after`` seconds if given
    retry_after: float | None = None

    def count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1


def outbound_send_batch(*, mailbox_id: int, limit: int | None = None, now: datetime | None = None,
                        budget: Budget | None = None) -> dict[str, Any]:
    """Send what is ready for one mailbox, at most ``limit`` (one when the mailbox has a minimum gap).

    Returns counts per outcome; ``busy`` when another sender holds the mailbox, ``waiting_gap`` when
    its minimum gap has not passed, ``handed_back`` for claimed rows left untried because the batch
    stopped (``budget`` ran out, the worker is stopping, the provider halted the batch), and
    ``problems`` (a list) naming the mailbox when it could not send at all.
    Raises ``OperationalError``/``InterfaceError`` when the database went away: the batch has then
    stopped at once, and its untried rows go back to the queue through ``outbound_recover_stuck``
    once its lease lapses.
    """
    return _send_batch(mailbox_id=mailbox_id, limit=limit, now=now, budget=budget)


def _send_batch(*, mailbox_id: int, limit: int | None, now: datetime | None, budget: Budget | None,
                rolling: bool = False) -> dict[str, Any]:
    """``outbound_send_batch``'s counts; ``rolling``, claim after claim (``mailbox_send_due``)."""
    now = now or timezone.now()
    budget = budget or Budget.unlimited()
    mailbox = Mailbox.objects.filter(pk=mailbox_id, is_active=True).first()
    if mailbox is None:
        return {}
    if mailbox.needs_reconnect:  # its OAuth2 grant is gone: its emails wait, untouched, until it is connected again
        return {"disconnected": 1}
    if held_domains({mailbox.sending_domain}):
        # Its domain began failing SPF or DMARC after these emails were planned: they wait, as the planner
        # holds the rest, and their leads say why, until the domain passes or staff override it.
        held = _ready(now).filter(mailbox=mailbox).values("lead_id")
        Lead.objects.filter(pk__in=held, blocked_reason="").update(blocked_reason=Blocked.DOMAIN_NOT_AUTHENTICATED,
                                                                   updated_at=now)
        return {"domain_held": 1}
    gap = timedelta(seconds=mailbox.min_gap_seconds)
    gap_end = gap_ends_at(mailbox)  # the gap with its jitter, as the planner sees it
    if gap_end is not None and gap_end > now:
        return {"waiting_gap": 1}
    lease, holder = f"send:mailbox:{mailbox.pk}", f"{settings.AICMO_CAM_WORKER_ID}:{uuid.uuid4().hex[:12]}"
    if not lease_acquire(name=lease, holder=holder):
        return {"busy": 1}
    ttl = settings.AICMO_CAM_LOCK_TTL_SECONDS
    batch = _Batch(mailbox=mailbox, holder=holder, budget=budget.keeping(
        lease, lambda: lease_renew(name=lease, holder=holder)))
    batch.budget.renew_every = min(batch.budget.renew_every, ttl / 4)
    try:
        batch.size = batch.claim_size = 1 if gap else (limit or settings.AICMO_CAM_SEND_BATCH_SIZE)
        batch.rolling = rolling and not gap  # a mailbox with a gap sends one email, then waits
        _send(batch, now=now)
        _hand_back(batch)
        if batch.stopped and not batch.halted:
            batch.counts["stopped"] = batch.stopped
    finally:
        try:
            lease_release(name=lease, holder=holder)
        except DATABASE_GONE:  # the error on its way up says why; the lease lapses on its own
            logger.warning("Could not release the lease %s: the database is away", lease)
    return batch.counts


def _send(batch: _Batch, *, now: datetime) -> None:
    mailbox = batch.mailbox
    rows = _claim(batch, now=now)
    if not rows:
        return
    done: tuple[OutboundEmail, SendResult] | None = None  # the last email sent, its outcome not yet written
    built = _Built()
    index = 0
    with get_provider(mailbox) as provider:
        while index < len(rows):
            row = rows[index]
            batch.stopped = batch.budget.exhausted()
            if batch.stopped:
                break
            if index + 1 == len(rows) and batch.rolling and batch.full:
                # The claim's last email: the next claim now, so that its first email is built while the
                # server takes this one in, and the stream of outcomes goes on unbroken.
                try:
                    rows += _claim(batch, now=now)
                except DATABASE_GONE:
                    # The email before still has its outcome to record, patiently (_commit): the step claims
                    # no more, and this email's own write decides whether the database is back.
                    logger.warning("Mailbox %s: the next claim failed: the database is away", mailbox.name)
                    batch.full = False
            batch.untried.discard(row.pk)
            # One transaction: the previous email's outcome, and this one marked in flight — committed
            # before this one can go, while the provider does what delivers nothing yet.
            ready = _Ready(batch, done=done, next_row=row)
            done = None
            upcoming = rows[index + 1] if index + 1 < len(rows) else None
            # The next email goes on this connection unless this one is the connection's last (below).
            result = _send_one(provider, row, ready, built, upcoming=upcoming, follows=(index + 1) % batch.size != 0)
            ready.raise_failure()  # the database went away: the batch stops here
            index += 1
            if result is not None:
                done = (row, result)
                if result.halt_batch:
                    batch.stopped, batch.halted, batch.retry_after = f"halted: {result.error}", True, result.retry_after
                    break
            else:
                batch.count("lost")  # cancelled or recovered meanwhile: no longer this batch's to send
            if index % batch.size == 0 and index < len(rows):
                # A connection takes at most a batch's worth of emails (AICMO_CAM_SEND_BATCH_SIZE), as when
                # each batch had one of its own: a server that limits the messages of one connection
                # is never asked for more than that. The provider opens the next one when it sends.
                provider.close()
    if done is not None or batch.counts.get("sent"):
        _commit(batch, done=done, next_row=None, last=True)  # and, once a batch, the mailbox's last send
    if done is not None and batch.halted:
        _note_mailbox_problem(batch, done[1])


def _claim(batch: _Batch, *, now: datetime) -> list[OutboundEmail]:
    """Claim up to ``batch.claim_size`` more of the mailbox's due emails and make them ready to send: the
    suppressed among them cancelled, the rest with their steps. Rolling, a claim whose emails were all
    suppressed is followed by the next."""
    while True:
        rows = _claim_once(batch, now=now)
        if rows or not (batch.rolling and batch.full):
            return rows


def _claim_once(batch: _Batch, *, now: datetime) -> list[OutboundEmail]:
    mailbox = batch.mailbox
    rows = outbound_claim(mailbox=mailbox, limit=batch.claim_size, now=now, holder=batch.holder)
    batch.claimed += len(rows)
    batch.full = len(rows) == batch.claim_size
    if batch.full and batch.rolling:
        # A backlog: each claim costs a few statements and a pause in the stream, so the next takes more.
        batch.claim_size = min(batch.claim_size * 2, batch.size * CLAIM_GROWTH)
    if not rows:
        return []
    suppressed = suppressed_addresses(row.to_email for row in rows)
    _cancel_suppressed(batch, [row for row in rows if row.to_email in suppressed])
    rows = [row for row in rows if row.to_email not in suppressed]
    unknown = {row.campaign_id for row in rows} - batch.steps.keys()
    if unknown:
        batch.steps.update(campaign_steps(unknown))
    # Each email's step from the steps just read, rather than one query per email.
    steps_by_id = {step.pk: step for steps in batch.steps.values() for step in steps}
    for row in rows:
        row.mailbox = mailbox
        if row.step_id in steps_by_id:  # always: an email's step is one of its campaign's
            row.step = steps_by_id[row.step_id]
    batch.untried.update(row.pk for row in rows)
    return rows


class _Ready:
    """What the provider asks before an email may go: ``_commit`` of the email before it, with this one
    marked in flight. A database error is kept (the provider is told no) and raised by the batch after the
    provider returned, so that it stops where it stands."""

    def __init__(self, batch: _Batch, *, done: tuple[OutboundEmail, SendResult] | None,
                 next_row: OutboundEmail) -> None:
        self.batch, self.done, self.next_row = batch, done, next_row
        self.answer: bool | None = None  # None: not asked yet
        self.failure: BaseException | None = None
        self._in_flight: tuple[InFlight, Outcome | None] | None = None

    def start(self) -> bool:
        """Send the commit now and read its answer when called (see ``MailProvider.send_when``), so that
        the provider can do what delivers nothing on this thread meanwhile; False where it cannot be
        sent ahead (then calling does it all). A database error here leaves it to the call."""
        assert self.answer is None and self._in_flight is None, "a provider starts once, before it asks"
        try:
            self._in_flight = _write_send(self.batch, done=self.done, next_row=self.next_row)
        except DATABASE_GONE:
            return False
        return self._in_flight is not None

    def __call__(self) -> bool:
        assert self.answer is None, "a provider asks once per email"
        try:
            self.answer = self._answer()
        except DATABASE_GONE as exc:
            self.failure, self.answer = exc, False
        return self.answer

    def _answer(self) -> bool:
        if self._in_flight is not None:
            (in_flight, outcome), self._in_flight = self._in_flight, None
            try:
                written, ours = in_flight.result()
            except DATABASE_GONE:
                pass  # written again the patient way below: writing twice changes nothing more
            else:
                _counted(self.batch, outcome, written=written)
                return ours
        return _commit(self.batch, done=self.done, next_row=self.next_row)

    def raise_failure(self) -> None:
        if self.answer is None:  # a provider that never asked (a bug): the email before is recorded all the same
            self()
        if self.failure is not None:
            raise self.failure


class _Built:
    """Messages built ahead: the next email's is built while the provider waits (on the server taking the
    current one in, or, with PIPELINING, on the database committing), so building costs the batch no time of
    its own. Building ahead must not use the database, whose connection may then be busy with the commit in
    flight: a claimed email has all it needs loaded (its fields, its mailbox and step, its lead's id). One that
    fails ahead is built again at its turn, which reports the error."""

    def __init__(self) -> None:
        self._ahead: dict[int, EmailMultiAlternatives] = {}

    def ahead(self, row: OutboundEmail, provider: MailProvider, *, follows: bool) -> None:
        try:
            message = build_message(row)
        except Exception:
            return
        self._ahead[row.pk] = message
        provider.prepare(message, follows=follows)

    def take(self, row: OutboundEmail) -> EmailMultiAlternatives:
        """``row``'s message, built ahead or now; raises what building it raises."""
        message = self._ahead.pop(row.pk, None)
        return message if message is not None else build_message(row)


def _send_one(provider: MailProvider, row: OutboundEmail, ready: _Ready, built: _Built, *,
              upcoming: OutboundEmail | None, follows: bool) -> SendResult | None:
    """The provider's answer for one email, None when ``ready`` said no; never raises, so every outcome
    is recorded. ``upcoming`` (the batch's next email) is built while the provider waits, and ``follows``
    says whether it will go on the same connection."""
    try:
        message = built.take(row)
    except Exception as exc:  # nothing can be handed over: no server would ever take it as it is
        logger.error("Outbound %s could not be built: %s: %s", row.pk, type(exc).__name__, exc, exc_info=exc)
        if not ready():
            return None
        return SendResult(status=Status.FAILED, error=f"The message could not be built: {type(exc).__name__}: {exc}",
                          attempted=False)
    assert row.mailbox is not None  # build_message needed it
    try:
        return provider.send_when(message, idempotency_key=f"cam-outbound-{row.pk}", ready=ready,
                                  meanwhile=(lambda: built.ahead(upcoming, provider, follows=follows))
                                  if upcoming is not None else None)
    except Exception as exc:  # a provider bug: the message may have gone out
        logger.exception("Provider %s raised while sending outbound %s", row.mailbox.provider, row.pk)
        # Raised before it asked, it may have sent all the same: the email is marked in flight first.
        if not (ready.answer if ready.answer is not None else ready()):
            return None
        return SendResult(status=Status.UNKNOWN, error=f"{type(exc).__name__}: {exc}")


def _cancel_suppressed(batch: _Batch, rows: list[OutboundEmail]) -> None:
    """Suppressed between planning and sending: never sent."""
    if not rows:
        return
    with transaction.atomic():
        mine = OutboundEmail.objects.filter(pk__in=[row.pk for row in rows], status=Status.CLAIMED,
                                            claimed_by=batch.holder)
        lead_ids = list(mine.values_list("lead_id", flat=True))
        cancelled = mine.update(status=Status.CANCELLED, next_attempt_at=None, updated_at=timezone.now(),
                                last_error="Address or domain suppressed.")
        Lead.objects.filter(pk__in=lead_ids).update(blocked_reason=Blocked.SUPPRESSED)
    if cancelled:  # added up over the step's claims
        batch.counts["cancelled"] = batch.counts.get("cancelled", 0) + cancelled


def _commit(batch: _Batch, *, done: tuple[OutboundEmail, SendResult] | None, next_row: OutboundEmail | None,
            last: bool = False) -> bool:
    """Commit the outcome of the email just sent (with its lead's progress) and mark the next one
    in flight, in one transaction; returns whether the next email is still this batch's to send.

    This is also the batch's check that the database answers before each send. When it does not
    and an outcome is waiting to be written (it is known only here), the write is tried again on a
    fresh connection for ``OUTCOME_WRITE_PATIENCE`` seconds — never inside a caller's transaction,
    which a reconnect would lose — before the error is raised: the batch then stops, the email
    stays in flight for recovery and the untried ones stay claimed until the lease lapses. Writing
    twice is harmless: every value written is absolute and every statement conditional on the claim.
    """
    started, pause = time.monotonic(), 0.5
    while True:
        try:
            return _write(batch, done=done, next_row=next_row, last=last)
        except DATABASE_GONE:
            stopping = batch.budget.stop is not None and batch.budget.stop.is_set()
            patience_left = OUTCOME_WRITE_PATIENCE - (time.monotonic() - started)
            if done is None or connection.in_atomic_block or patience_left <= 0 or stopping:
                raise
            logger.warning("Recording the outcome of outbound %s failed: the database is away; trying again "
                           "in %g s", done[0].pk, pause)
            connection.close()
            time.sleep(min(pause, patience_left))
            pause = min(pause * 2, 5.0)


def _outcome(batch: _Batch, done: tuple[OutboundEmail, SendResult] | None,
             now: datetime) -> tuple[OutboundEmail | None, Outcome | None, bool]:
    """The email just sent and its outcome (if any), and whether its provider's events must be linked to it."""
    if done is None:
        return None, None, False
    row, result = done
    outcome = outcome_of(row, result, now=now, steps=batch.steps)
    return row, outcome, outcome.status == Status.SENT and batch.mailbox.provider in PROVIDERS_WITH_EVENTS


def _write_send(batch: _Batch, *, done: tuple[OutboundEmail, SendResult] | None,
                next_row: OutboundEmail) -> tuple[InFlight, Outcome | None] | None:
    """``_write`` of an outcome that is one statement alone, sent without waiting for its answer; None
    when it is more than that, or cannot be sent ahead."""
    now = timezone.now()
    row, outcome, link_events = _outcome(batch, done, now)
    if link_events:
        return None
    in_flight = outcome_write_send(holder=batch.holder, row=row, outcome=outcome, next_id=next_row.pk, now=now)
    return (in_flight, outcome) if in_flight is not None else None


def _counted(batch: _Batch, outcome: Outcome | None, *, written: bool) -> None:
    if outcome is not None:
        batch.count(outcome.status.lower() if written else "lost")


def _write(batch: _Batch, *, done: tuple[OutboundEmail, SendResult] | None, next_row: OutboundEmail | None,
           last: bool) -> bool:
    now = timezone.now()
    row, outcome, link_events = _outcome(batch, done, now)
    sent = batch.counts.get("sent", 0) + (outcome is not None and outcome.status == Status.SENT)
    # Alone, the outcome is one statement; with what this email or the batch's end also needs, the
    # same commit holds it all.
    with transaction.atomic() if link_events or (last and sent) else nullcontext():
        written, ours = outcome_write(holder=batch.holder, row=row, outcome=outcome,
                                      next_id=next_row.pk if next_row else None, now=now)
        if written and link_events:
            assert row is not None and outcome is not None  # link_events: there is an outcome
            for name, value in outcome.email.items():
                setattr(row, name, value)
            provider_events_link(outbound_emails=[row])
        if last and sent:
            # Once per batch: when it last sent (the minimum gap; a gap mailbox sends one email a batch).
            # The first send is day one of the mailbox's warm-up.
            Mailbox.objects.filter(pk=batch.mailbox.pk).update(
                last_sent_at=now, last_send_error="", last_send_error_at=None,
                warmup_started_on=Coalesce("warmup_started_on", Value(timezone.localdate(now))))
    _counted(batch, outcome, written=written)
    return ours


def _note_mailbox_problem(batch: _Batch, result: SendResult) -> None:
    """A batch halted because the mailbox cannot send (not because the provider asked to slow down,
    which comes with a ``retry_after``): the dashboard and the cycle's errors name the mailbox."""
    if result.retry_after is not None:
        return
    Mailbox.objects.filter(pk=batch.mailbox.pk).update(last_send_error=result.error[:2000],
                                                        last_send_error_at=timezone.now())
    batch.counts.setdefault("problems", []).append(f"mailbox {batch.mailbox.name}: {result.error}")


def _hand_back(batch: _Batch) -> None:
    """Give the claimed rows this batch did not try back to the queue, without counting an attempt.

    After a halt they wait as long as the provider asked (or ``AICMO_CAM_SEND_RETRY_SECONDS``: the server was not
    reachable); after a stop or the end of the step's time they are due again at once.
    """
    if not batch.untried:
        return
    now = timezone.now()
    values: dict[str, Any] = {"status": HANDED_BACK_STATUS, "claimed_by": "", "updated_at": now}
    if batch.halted:
        wait = timedelta(seconds=batch.retry_after) if batch.retry_after is not None else retry_base()
        values.update(next_attempt_at=now + wait, last_error=f"Not tried: the batch was {batch.stopped}"[:2000])
    handed = OutboundEmail.objects.filter(pk__in=batch.untried, status=Status.CLAIMED,
                                          claimed_by=batch.holder).update(**values)
    if handed:
        batch.counts["handed_back"] = handed
    logger.info("Mailbox %s: %s untried emails handed back (%s)", batch.mailbox.name, handed, batch.stopped)


def outbound_recover_stuck(*, now: datetime | None = None) -> dict[str, int]:
    """Rows held by senders whose lease is gone (they died, or lost the database): claimed rows go
    back to the queue uncounted; the row that was in flight becomes UNKNOWN, or RETRY where the
    provider is idempotent (its request may have reached the provider: one attempt)."""
    now = now or timezone.now()
    live = Lease.objects.filter(expires_at__gt=now).values("holder")
    with transaction.atomic():
        # Locked before it is read which are in flight: a sender still marking one waits, then finds it taken.
        orphaned = OutboundEmail.objects.filter(pk__in=list(
            OutboundEmail.objects.filter(status__in=IN_HAND).exclude(claimed_by__in=live)
            .select_for_update(of=("self",)).values_list("pk", flat=True)))
        in_flight = orphaned.filter(IN_FLIGHT)
        # A person's answer is never sent again on its own, even where that would be safe: they decide.
        retried = in_flight.filter(mailbox__provider__in=IDEMPOTENT_PROVIDERS,
                                   kind=OutboundEmail.Kind.SEQUENCE).update(
            status=Status.RETRY, next_attempt_at=now, attempts=F("attempts") + 1, claimed_by="", updated_at=now,
            last_error="Found in flight after an interrupted send; retried with the same idempotency key.")
        unknown_leads = list(in_flight.filter(kind=OutboundEmail.Kind.SEQUENCE).values_list("lead_id", flat=True))
        unknown = in_flight.update(
            status=Status.UNKNOWN, next_attempt_at=None, attempts=F("attempts") + 1, updated_at=now,
            last_error="Found in flight after an interrupted send: it may have gone out. "
                       "Check the mailbox, then resend or cancel it in the admin.")
        Lead.objects.filter(pk__in=unknown_leads).update(blocked_reason=Blocked.SEND_UNKNOWN)
        requeued = orphaned.filter(status=Status.CLAIMED).update(status=HANDED_BACK_STATUS, claimed_by="",
                                                                 updated_at=now)
        SendInFlight.objects.exclude(holder__in=live).delete()
    return {"recovered_requeued": requeued, "recovered_retry": retried, "recovered_unknown": unknown}


def mailbox_send_due(*, mailbox_id: int, now: datetime | None = None, budget: Budget | None = None) -> dict[str, Any]:
    """Everything due for one mailbox, claim after claim under one lease, until none is left, the mailbox
    must wait (its gap), the provider halts, or ``budget`` runs out (``stopped`` says why); the planner has
    already kept it within its caps. The first claim takes ``AICMO_CAM_SEND_BATCH_SIZE`` emails, and each
    claim after a full one twice as many, up to ``CLAIM_GROWTH`` times that; an SMTP connection takes a batch's
    worth at most, and the lease is renewed as the emails go."""
    return _send_batch(mailbox_id=mailbox_id, limit=None, now=now, budget=budget, rolling=True)


def _add_counts(totals: dict[str, Any], counts: dict[str, Any]) -> None:
    for key, value in counts.items():
        if isinstance(value, list):
            totals.setdefault(key, []).extend(value)
        elif isinstance(value, str):  # why a batch stopped early
            totals[key] = value
        else:
            totals[key] = totals.get(key, 0) + value


def outreach_send(*, now: datetime | None = None, inline: bool = True, budget: Budget | None = None) -> dict[str, Any]:
    """Send every mailbox's due emails: here and now, or as one queued task per mailbox.

    Inline, the mailboxes are sent one after another within ``budget``, each everything it has due
    (``mailbox_send_due``): once the budget is exhausted the remaining emails wait for the next run (they
    stay ready), and ``stopped`` says why. Queued, each task has what is left of ``budget``'s time.
    Counts are summed over the mailboxes; ``problems`` lists the mailboxes that could not send.
    """
    now = now or timezone.now()
    budget = budget or Budget.unlimited()
    mailbox_ids = sorted(set(_ready(now).values_list("mailbox_id", flat=True)))
    totals: dict[str, Any] = {"mailboxes": len(mailbox_ids)}
    seconds = None if budget.deadline is None else max(0.0, budget.deadline - budget.clock())
    for mailbox_id in mailbox_ids:
        if inline:
            stopped = budget.exhausted()
            if stopped:
                totals["stopped"] = stopped
                break
            _add_counts(totals, mailbox_send_due(mailbox_id=mailbox_id, now=now, budget=budget))
        else:
            # mypy cannot type a lambda's default argument.
            transaction.on_commit(lambda mailbox_id=mailbox_id: async_task(  # type: ignore[misc]
                "cam.outreach.tasks.send_batch_task", mailbox_id=mailbox_id, seconds=seconds,
                q_options={"group": "cam: send"}))
            totals["queued"] = totals.get("queued", 0) + 1
    return totals
