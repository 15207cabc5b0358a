"""One email's outcome, written with its lead's progress, together with the next email marked in flight.

The sender writes this once per email, right after the provider call, so it is the price of "a
crash loses at most the one email in flight": kept to one durable commit per email. On PostgreSQL it
is one statement — the outcome's and the lead's ``UPDATE``s and the mark as data-modifying ``WITH``
queries, atomic as any statement, in one round trip. Elsewhere (SQLite, in-process) it is the same
statements in one transaction.

The next email is marked in flight by its holder's ``SendInFlight`` row (``cam.in_flight``), not by a new
version of the email's own row: that row is wide and in a dozen indexes, and its three versions per email
(claimed, in flight, sent) were the largest part of the database's work per email; the in-flight row is in
one index the change leaves alone, so PostgreSQL rewrites it in place. The mark locks the email's row as
it checks that the email is still the batch's, so that a cancel either sees the mark or is seen by it.

The commit is durable (``synchronous_commit`` stays on) although the outcome alone would not need it:
the same commit marks the next email in flight right before it is handed over, and that mark must
survive a database crash. Lost with an asynchronous commit, it and every later one would be gone:
the emails sent since would be handed back by recovery and sent twice. Splitting the mark (durable)
from the outcome (asynchronous) would cost a second round trip for the same one flush per email.

Every statement is conditional on the batch's claim (``claimed_by``), so a sender that lost its lease
changes nothing another sender has taken over, and writing the same outcome twice (after a commit
whose answer was lost with the connection) changes nothing more: every value written is absolute.
A write with no next email (a batch's last) removes the holder's in-flight row instead.
"""

from __future__ import annotations

import functools
import re
import weakref
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from cam.models import Lead, OutboundEmail, SendInFlight, SequenceStep
from cam.models.campaigns import step_after
from cam.outreach.planning import step_delay
from cam.outreach.providers import SendResult

Status = OutboundEmail.Status
Blocked = Lead.BlockedReason
MAX_ATTEMPTS = 5
RETRY_CAP = timedelta(hours=6)
# Emails in a sender's hands: claimed, one of them in flight (``cam.in_flight``).
IN_HAND = (Status.CLAIMED,)


def retry_base() -> timedelta:
    """The first wait before an email the provider could not take is tried again."""
    return timedelta(seconds=settings.AICMO_CAM_SEND_RETRY_SECONDS)


def retry_delay(attempts: int, retry_after: float | None) -> timedelta:
    """The provider's ``retry_after`` when given, else the base doubled per attempt, up to RETRY_CAP."""
    if retry_after is not None:
        return timedelta(seconds=max(retry_after, 1))
    return min(retry_base() * cast(int, 2 ** max(attempts - 1, 0)), RETRY_CAP)  # int ** int is Any to mypy


@dataclass(frozen=True)
class Outcome:
    """The new values of an email and of its lead (empty: the lead does not change)."""

    email: dict[str, Any]
    lead: dict[str, Any]

    @property
    def status(self) -> str:
        return cast(str, self.email["status"])


def outcome_of(row: OutboundEmail, result: SendResult, *, now: datetime,
               steps: dict[int, list[SequenceStep]]) -> Outcome:
    """What one send's result makes of the email and its lead; ``steps`` are each campaign's steps, for
    the one after the email's (its next email is due after that step's delay)."""
    attempts = row.attempts + (1 if result.attempted else 0)
    email: dict[str, Any] = {"attempts": attempts, "last_error": result.error[:2000], "updated_at": now}
    lead: dict[str, Any] = {}
    assert row.step is not None  # the sequence's emails; a person's answer has its own (cam.outreach.answers)
    if result.status == Status.SENT:
        following = step_after(steps.get(row.campaign_id, ()), row.step.position)
        email.update(status=Status.SENT, sent_at=now, next_attempt_at=None,
                     provider_message_id=result.provider_message_id[:255])
        lead.update(current_step=row.step.position, last_contacted_at=now,
                    next_send_at=now + step_delay(following) if following else None, blocked_reason="")
    elif result.status == Status.RETRY and (attempts < MAX_ATTEMPTS or not result.attempted):
        # Giving up only ever follows a request that reached the provider.
        email.update(status=Status.RETRY, next_attempt_at=now + retry_delay(attempts, result.retry_after))
    elif result.status == Status.RETRY:
        email.update(status=Status.FAILED, next_attempt_at=None,
                     last_error=f"Gave up after {attempts} attempts. Last: {result.error}"[:2000])
        lead.update(blocked_reason=Blocked.SEND_FAILED)
    else:  # FAILED or UNKNOWN
        email.update(status=result.status, next_attempt_at=None)
        lead.update(blocked_reason=Blocked.SEND_UNKNOWN if result.status == Status.UNKNOWN else Blocked.SEND_FAILED)
    return Outcome(email=email, lead=lead)


def outcome_write(*, holder: str, row: OutboundEmail | None, outcome: Outcome | None, next_id: int | None,
                  now: datetime) -> tuple[bool, bool]:
    """Write ``outcome`` of ``row`` (if any) and mark the email ``next_id`` in flight, together; with no
    ``next_id``, the holder has nothing in flight any more.

    Returns (the outcome was written, the next email is still this batch's to send). Call it inside
    a transaction to add writes of your own to the same commit (then it does not open one).
    """
    if connection.vendor == "postgresql":
        return _one_statement(holder=holder, row=row, outcome=outcome, next_id=next_id, now=now)
    # The statements are written here rather than through the ORM: compiling three querysets cost
    # more than running them (about a millisecond an email on SQLite).
    email_table = connection.ops.quote_name(OutboundEmail._meta.db_table)
    with transaction.atomic(), connection.cursor() as cursor:
        written = False
        if row is not None and outcome is not None:
            cursor.execute(f"UPDATE {email_table} SET {set_clause(OutboundEmail, tuple(outcome.email))} "
                           f"WHERE id = %s AND claimed_by = %s",
                           [*db_values(OutboundEmail, outcome.email), row.pk, holder])
            written = cursor.rowcount > 0
        if written and row is not None and outcome is not None and outcome.lead:  # (written: both are there)
            cursor.execute(f"UPDATE {connection.ops.quote_name(Lead._meta.db_table)} "
                           f"SET {set_clause(Lead, tuple(outcome.lead))} WHERE id = %s",
                           [*db_values(Lead, outcome.lead), row.lead_id])
        marked = False
        if next_id is not None:
            # SQLite's transactions here take the write lock as they begin: nothing changes the email between
            # this check and the commit, so it needs no row lock.
            cursor.execute(f"INSERT INTO {_in_flight_table()} (holder, email_id) {_target(email_table, lock='')} "
                           f"ON CONFLICT (holder) DO UPDATE SET email_id = excluded.email_id",
                           [next_id, holder, Status.CLAIMED])
            marked = cursor.rowcount > 0
        else:
            cursor.execute(_clear(), [holder])
    return written, marked


def _in_flight_table() -> str:
    return connection.ops.quote_name(SendInFlight._meta.db_table)


def _target(email_table: str, *, lock: str) -> str:
    """The row that marks an email in flight (its holder and id; parameters: the email's id, the holder and
    ``CLAIMED``), if the email is still in this batch's hands; ``lock`` the row lock that check takes.

    The email is found by its id alone, locked, and only then checked. Asked for its id, holder and status
    together, PostgreSQL may look the row up through the status index instead: statistics taken while few
    emails were claimed make ``status = 'CLAIMED'`` look rarer than one id, and each email's mark then
    walked every claimed email of every sender (a claim of 1,000: 0.43 ms of the statement's 0.55).
    Locked first, the check reads what a cancel that held the lock left, as before (``cam.in_flight``)."""
    if not lock:  # SQLite: the transaction holds the write lock already
        return f"SELECT claimed_by, id FROM {email_table} WHERE id = %s AND claimed_by = %s AND status = %s"
    # OFFSET 0 keeps the outer conditions out of the subquery (PostgreSQL pushes them down otherwise, row
    # lock or not): its only condition is the id, which only the primary key answers.
    return (f"SELECT claimed_by, id FROM (SELECT claimed_by, id, status FROM {email_table} WHERE id = %s {lock} "
            f"OFFSET 0) AS email WHERE claimed_by = %s AND status = %s")


def _clear() -> str:
    """The statement that leaves the holder (its one parameter) with nothing in flight."""
    return f"DELETE FROM {_in_flight_table()} WHERE holder = %s"


def _one_statement(*, holder: str, row: OutboundEmail | None, outcome: Outcome | None, next_id: int | None,
                   now: datetime) -> tuple[bool, bool]:
    sql, params = _statement_and_params(holder=holder, row=row, outcome=outcome, next_id=next_id, now=now)
    with _server_binding_cursor() as cursor:
        cursor.execute(sql, params)
        written, marked = cursor.fetchone()
    return bool(written), bool(marked)


def _statement_and_params(*, holder: str, row: OutboundEmail | None, outcome: Outcome | None, next_id: int | None,
                          now: datetime) -> tuple[str, list[Any]]:
    params: list[Any] = []
    if row is not None and outcome is not None:
        params += [*db_values(OutboundEmail, outcome.email), row.pk, holder]
        if outcome.lead:
            params += db_values(Lead, outcome.lead)
    params += [next_id, holder, Status.CLAIMED] if next_id is not None else [holder]
    sql = _statement(tuple(outcome.email) if row is not None and outcome is not None else None,
                     tuple(outcome.lead) if row is not None and outcome is not None and outcome.lead else None,
                     next_id is not None)
    return sql, params


@functools.cache
def _statement(email: tuple[str, ...] | None, lead: tuple[str, ...] | None, mark: bool) -> str:
    """The one statement (PostgreSQL's) writing an outcome with these email and lead fields, if any,
    and marking the next email in flight, if ``mark``, else clearing the holder's: the same few come back
    for every email."""
    email_table = connection.ops.quote_name(OutboundEmail._meta.db_table)
    queries = []
    if email is not None:
        queries.append(f"outcome AS (UPDATE {email_table} SET {set_clause(OutboundEmail, email)} "
                       f"WHERE id = %s AND claimed_by = %s RETURNING lead_id)")
        if lead is not None:
            queries.append(f"progress AS (UPDATE {connection.ops.quote_name(Lead._meta.db_table)} "
                           f"SET {set_clause(Lead, lead)} WHERE id IN (SELECT lead_id FROM outcome) RETURNING id)")
    else:
        queries.append("outcome AS (SELECT NULL::bigint AS lead_id WHERE false)")
    if mark:
        # The email's row is locked as it is checked: a cancel that locked it first is waited for, and the
        # check then reads what the cancel left (cam.in_flight).
        queries.append(f"mark AS (INSERT INTO {_in_flight_table()} (holder, email_id) "
                       f"{_target(email_table, lock='FOR NO KEY UPDATE')} "
                       f"ON CONFLICT (holder) DO UPDATE SET email_id = EXCLUDED.email_id RETURNING email_id)")
        marked = "(SELECT count(*) FROM mark)"
    else:
        queries.append(f"clear AS ({_clear()} RETURNING holder)")
        marked = "0"
    # Data-modifying WITH queries run to completion whether or not the SELECT reads them.
    return f"WITH {', '.join(queries)} SELECT (SELECT count(*) FROM outcome), {marked}"


def outcome_write_send(*, holder: str, row: OutboundEmail | None, outcome: Outcome | None, next_id: int | None,
                       now: datetime) -> InFlight | None:
    """``outcome_write``, sent to PostgreSQL without waiting for its answer, so that the caller can do
    what delivers nothing (the next email's SMTP envelope) on the same thread while the database
    commits. ``InFlight.result()`` reads the answer; nothing else may use the connection before it.
    None where the statement cannot be sent ahead (another database, or inside a transaction, which
    would not commit it): then call ``outcome_write``."""
    # The connection looked up once: each look-up through ``connection`` reads a context-local, which cost
    # more per email than anything else here on the client.
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql" or db.in_atomic_block:
        return None
    sql, params = _statement_and_params(holder=holder, row=row, outcome=outcome, next_id=next_id, now=now)
    db.ensure_connection()
    sent = _SentAhead(db.connection)
    try:
        # Wrapped as Django wraps its own cursors: query logs and counts see the statement, errors are Django's.
        db._prepare_cursor(sent).execute(sql, params)  # type: ignore[attr-defined]
    except BaseException:
        sent.drain()  # a statement sent is answered before the connection serves another
        raise
    return InFlight(sent, db)


class InFlight:
    """An outcome statement sent, its answer not read yet (``outcome_write_send``)."""

    def __init__(self, sent: _SentAhead, db: BaseDatabaseWrapper) -> None:
        self._sent, self._db = sent, db

    def result(self) -> tuple[bool, bool]:
        """What ``outcome_write`` returns, once the database answered; raises what it would raise."""
        with self._db.wrap_database_errors:
            written, marked = self._sent.answer()
        return written, marked


@dataclass
class _Prepared:
    """What a psycopg connection keeps for ``_SentAhead``: the outcome statements prepared on it, by text
    (their names), and one transformer for the values, as a psycopg cursor keeps one."""

    names: dict[str, bytes]
    transformer: Any


_prepared: weakref.WeakKeyDictionary[Any, _Prepared] = weakref.WeakKeyDictionary()
_PLACEHOLDER = re.compile(r"%s")
_NO_SUCH_STATEMENT = b"26000"  # invalid_sql_statement_name: the prepared statement is not there


class _SentAhead:
    """The psycopg side of ``outcome_write_send``: the statement prepared once per connection (its
    parameters' types left to the server, which infers them from the columns), then each time sent
    with its values as text and flushed, and its one row read later. Django's cursor wrapper calls
    ``execute``; ``close`` is all else it asks of a cursor."""

    def __init__(self, pg: Any) -> None:
        self._pg = pg
        self._sent: tuple[str, list[Any]] | None = None
        self._waiting = False  # sent, its answer not read

    @property
    def _query(self) -> Any:
        """The statement with its values, as Django's debug log reads it from a psycopg cursor."""
        if self._sent is None:
            return None
        return SimpleNamespace(query=connection.ops.compose_sql(*self._sent).encode())  # type: ignore[attr-defined]

    def execute(self, sql: str, params: list[Any]) -> None:
        from psycopg import generators
        from psycopg.adapt import PyFormat, Transformer

        self._sent = (sql, params)
        pg, pgconn = self._pg, self._pg.pgconn
        kept = _prepared.get(pg)
        if kept is None:
            kept = _prepared[pg] = _Prepared(names={}, transformer=Transformer(pg))
        names = kept.names
        name = names.get(sql)
        if name is None:
            counter = iter(range(1, len(params) + 1))
            numbered = _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)
            name = f"cam_outcome_{len(names) + 1}".encode()
            pgconn.send_prepare(name, numbered.encode())
            _check(pg, pg.wait(generators.execute(pgconn)))
            names[sql] = name
        values = kept.transformer.dump_sequence(params, [PyFormat.TEXT] * len(params))
        pgconn.send_query_prepared(name, values)
        self._waiting = True
        pg.wait(generators.send(pgconn))

    def answer(self) -> tuple[bool, bool]:
        from psycopg import generators, pq

        self._waiting = False
        results = self._pg.wait(generators.fetch_many(self._pg.pgconn))
        state = pq.DiagnosticField.SQLSTATE
        if self._sent is not None and any(result.error_field(state) == _NO_SUCH_STATEMENT for result in results):
            # Dropped meanwhile: psycopg runs DEALLOCATE ALL after a rollback or a DROP while statements of its
            # own are prepared. Nothing ran: prepared afresh, it runs now.
            _prepared.pop(self._pg, None)
            self.execute(*self._sent)
            self._waiting = False
            results = self._pg.wait(generators.fetch_many(self._pg.pgconn))
        _check(self._pg, results)
        written, marked = results[0].get_value(0, 0), results[0].get_value(0, 1)
        return written not in (None, b"0"), marked not in (None, b"0")

    def drain(self) -> None:
        """Read and drop the answer of a statement sent, if any: whatever went wrong is raised by the caller."""
        if self._waiting:
            with suppress(Exception):
                self.answer()

    def close(self) -> None:
        pass


def _check(pg: Any, results: list[Any]) -> None:
    from psycopg import errors, pq

    for result in results:
        if result.status == pq.ExecStatus.FATAL_ERROR:
            raise errors.error_from_result(result, encoding=pg.info.encoding)


def _server_binding_cursor() -> Any:
    """A cursor whose parameters are bound by the server rather than written into the SQL: the same
    few statements come back for every email, and psycopg prepares such a statement once per
    connection (after ``prepare_threshold`` runs), so the server no longer parses and plans it each
    time — about a fifth of its work per email. Wrapped as Django wraps its own, so query logs and
    counts see it."""
    from django.db.backends.postgresql.base import ServerBindingCursor  # only on PostgreSQL

    connection.ensure_connection()
    return connection._prepare_cursor(ServerBindingCursor(connection.connection))  # type: ignore[attr-defined,call-arg]


@functools.cache
def set_clause(model: type[models.Model], names: tuple[str, ...]) -> str:
    """``"col" = %s, …`` for ``names``: the same few come back for every email."""
    return ", ".join(f"{connection.ops.quote_name(_column(_field(model, name)))} = %s" for name in names)


@functools.cache
def _field(model: type[models.Model], name: str) -> models.Field[Any, Any]:
    # Columns of the table, never a relation's other side.
    return cast("models.Field[Any, Any]", model._meta.get_field(name))


def _column(field: models.Field[Any, Any]) -> str:
    assert field.column is not None  # a concrete field's, as every field the outcome writes is
    return field.column


def db_values(model: type[models.Model], values: dict[str, Any]) -> list[Any]:
    """The values as the database takes them. Preparing a value through its field costs more than the
    statement's own work on the client (about a tenth of a millisecond an email), so the values that
    need none are passed as they are: plain text and numbers, None, and — on PostgreSQL, which takes
    them as they are — aware datetimes. Anything else goes through its field."""
    db = connections[DEFAULT_DB_ALIAS]
    as_is = _AS_IS_POSTGRESQL if db.vendor == "postgresql" else _AS_IS
    return [value if type(value) in as_is and (type(value) is not datetime or value.tzinfo is not None)
            else _field(model, name).get_db_prep_save(value, db) for name, value in values.items()]


# Values any of the outcome's fields takes as they are (Django's preparation gives them back unchanged).
_AS_IS = frozenset({str, int, type(None)})
_AS_IS_POSTGRESQL = _AS_IS | {datetime}
