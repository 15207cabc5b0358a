"""One email's outcome, written with its lead's progress, together with the next email marked SENDING.

The sender writes this once per email, right after the provider call, so it is the price of "a
crash loses at most the one email in flight": kept to one durable commit per email. On PostgreSQL it
is one statement — three ``UPDATE``s as data-modifying ``WITH`` queries, atomic as any statement, in
one round trip. Elsewhere (SQLite, in-process) it is the same three ``UPDATE``s in one transaction.

Every statement is conditional on the batch's claim (``claimed_by``), so a sender that lost its lease
changes nothing another sender has taken over, and writing the same outcome twice (after a commit
whose answer was lost with the connection) changes nothing more: every value written is absolute.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from django.conf import settings
from django.db import connection, models, transaction

from cam.models import Lead, OutboundEmail, SequenceStep
from cam.models.campaigns import step_after
from cam.outreach.planning import step_delay
from cam.outreach.providers import SendResult

Status = OutboundEmail.Status
Blocked = Lead.BlockedReason
MAX_ATTEMPTS = 5
RETRY_CAP = timedelta(hours=6)
# Emails in a sender's hands. Marking one SENDING finds it CLAIMED, or already SENDING when this very
# write committed before the connection dropped and is being written again.
IN_HAND = (Status.CLAIMED, Status.SENDING)


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
    """Write ``outcome`` of ``row`` (if any) and mark the email ``next_id`` (if any) SENDING, together.

    Returns (the outcome was written, the next email is still this batch's to send). Call it inside
    a transaction to add writes of your own to the same commit (then it does not open one).
    """
    if connection.vendor == "postgresql":
        return _one_statement(holder=holder, row=row, outcome=outcome, next_id=next_id, now=now)
    with transaction.atomic():
        written = bool(row is not None and outcome is not None
                       and OutboundEmail.objects.filter(pk=row.pk, claimed_by=holder).update(**outcome.email))
        if written and row is not None and outcome is not None and outcome.lead:  # (written: both are there)
            Lead.objects.filter(pk=row.lead_id).update(**outcome.lead)
        marked = next_id is not None and bool(
            OutboundEmail.objects.filter(pk=next_id, status__in=IN_HAND, claimed_by=holder)
            .update(status=Status.SENDING, updated_at=now))
    return written, marked


def _one_statement(*, holder: str, row: OutboundEmail | None, outcome: Outcome | None, next_id: int | None,
                   now: datetime) -> tuple[bool, bool]:
    queries: list[str] = []
    params: list[Any] = []
    email_table = connection.ops.quote_name(OutboundEmail._meta.db_table)
    if row is not None and outcome is not None:
        sets, values = _assignments(OutboundEmail, outcome.email)
        queries.append(f"outcome AS (UPDATE {email_table} SET {sets} WHERE id = %s AND claimed_by = %s "
                       f"RETURNING lead_id)")
        params += [*values, row.pk, holder]
        if outcome.lead:
            sets, values = _assignments(Lead, outcome.lead)
            queries.append(f"progress AS (UPDATE {connection.ops.quote_name(Lead._meta.db_table)} SET {sets} "
                           f"WHERE id IN (SELECT lead_id FROM outcome) RETURNING id)")
            params += values
    else:
        queries.append("outcome AS (SELECT NULL::bigint AS lead_id WHERE false)")
    if next_id is not None:
        queries.append(f"mark AS (UPDATE {email_table} SET status = %s, updated_at = %s "
                       f"WHERE id = %s AND claimed_by = %s AND status IN (%s, %s) RETURNING id)")
        params += [Status.SENDING, now, next_id, holder, *IN_HAND]
    else:
        queries.append("mark AS (SELECT NULL::bigint AS id WHERE false)")
    # Data-modifying WITH queries run to completion whether or not the SELECT reads them.
    sql = f"WITH {', '.join(queries)} SELECT (SELECT count(*) FROM outcome), (SELECT count(*) FROM mark)"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        written, marked = cursor.fetchone()
    return bool(written), bool(marked)


def _assignments(model: type[models.Model], values: dict[str, Any]) -> tuple[str, list[Any]]:
    """``"col" = %s, …`` and the values as the database takes them."""
    meta = model._meta
    sets, params = [], []
    for name, value in values.items():
        field: Any = meta.get_field(name)  # a column of the table, never a relation's other side
        sets.append(f"{connection.ops.quote_name(field.column)} = %s")
        params.append(field.get_db_prep_save(value, connection))
    return ", ".join(sets), params
