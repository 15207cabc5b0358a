"""Reading stored replies: classify, match to what we sent, and apply the follow-up — once each.

A reply is marked ``processed_at`` in the same transaction as its follow-up, so a crash never applies a
follow-up twice. A batch (``replies_process``) is one transaction: one commit per batch instead of one
per reply. Its replies are read and classified first, then recorded together (the ones still
unprocessed locked in one query, recorded in one ``UPDATE``; one that cannot be read or matched is set
aside, so one unreadable message never holds up the others), and their follow-ups applied together
(``cam.followup.replies_follow_up``): a few statements per batch, whatever its size. Should any of it
fail, the batch is rolled back to before the first reply and done again one reply at a time, each
reply with its follow-up in a savepoint of its own, so the reply that fails is set aside alone. A crash
loses the batch's work, which the next cycle does again.

A bounce or complaint that does not prove it is about an email we sent (``cam.inbox.matching.unproven``)
is classified and matched but held: ``confirmation`` is ``NEEDED`` and its lead is left alone, until a
person confirms it (``bounce_confirm``: the follow-up is applied, with that person as its actor) or
dismisses it (``bounce_dismiss``: nothing changes). Reclassifying it is a person's decision too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from typing import Any

from django.db import transaction
from django.utils import timezone

from cam.bulk import bulk_update_values
from cam.followup import replies_follow_up, reply_follow_up
from cam.inbox.classify import Classification, classify_message
from cam.inbox.matching import (
    PROOFS,
    Known,
    Match,
    embedded_message_ids,
    known_addresses,
    known_emails,
    match_message,
    signed_outbound_ids,
    thread_ids,
    unproven,
)
from cam.inbox.parsing import clean_text, message_from_raw_for_reading
from cam.models import InboundEmail

logger = logging.getLogger(__name__)

CLASSIFIER = "system:classifier"
Category = InboundEmail.Category
Confirmation = InboundEmail.Confirmation
# What changes a lead only on proof that it is about an email we sent.
NEEDS_PROOF = (Category.BOUNCE_HARD, Category.BOUNCE_SOFT, Category.COMPLAINT)


@dataclass(frozen=True)
class Reading:
    """What a stored reply says, worked out before anything is written: its message (parsed once, for the
    classifier and the matching alike), its classification, and the ids of our emails it names."""

    message: Message
    result: Classification
    signed: list[int]  # signed_outbound_ids
    embedded: list[str] | None  # embedded_message_ids, for a message without thread headers (else looked up later)


def reply_read(inbound: InboundEmail) -> Reading:
    message = message_from_raw_for_reading(bytes(inbound.raw_message or b""))
    result = classify_message(message)
    embedded = None if thread_ids(inbound.in_reply_to, inbound.references) else embedded_message_ids(message)
    return Reading(message, result, signed_outbound_ids(message), embedded)


def reply_process(*, inbound: InboundEmail, reading: Reading | None = None, known: Known | None = None) -> str:
    """Classify and match one stored reply, then apply its follow-up. Returns its category.

    ``reading``, ``known``: as for ``reply_record``."""
    # No savepoint of its own: in a batch, the caller's savepoint for this reply undoes all of it.
    with transaction.atomic(savepoint=False):
        if reply_record(inbound=inbound, reading=reading, known=known):
            reply_follow_up(inbound=inbound, actor=CLASSIFIER)
    return inbound.category


def reply_record(*, inbound: InboundEmail, reading: Reading | None = None, known: Known | None = None) -> bool:
    """Classify and match one stored reply and record what it is, marked processed. Returns whether its
    follow-up is due: False when another worker recorded it meanwhile, or when it is held for a person.

    ``reading``: the reply read already (``reply_read``); ``known``: our emails its batch names
    (``cam.inbox.matching.known_emails``), so that matching it asks the database nothing."""
    fields, held = _recording(inbound, reading, known)
    # Written only if still unprocessed, in one statement: another worker may have processed it meanwhile.
    if not InboundEmail.objects.filter(pk=inbound.pk, processed_at__isnull=True).update(**fields):
        return False
    for name, value in fields.items():
        setattr(inbound, name, value)
    return not held


def _recording(inbound: InboundEmail, reading: Reading | None, known: Known | None) -> tuple[dict[str, Any], bool]:
    """What recording ``inbound`` writes (its classification and match, marked processed), and whether
    it is held for a person."""
    if reading is None:
        reading = reply_read(inbound)
    message, result = reading.message, reading.result
    match = match_message(message=message, mailbox_id=inbound.mailbox_id, sender=inbound.from_email,
                          in_reply_to=inbound.in_reply_to, references=inbound.references,
                          failed_recipients=list(result.failed_recipients), known=known,
                          signed=reading.signed if known is not None else None,
                          embedded=reading.embedded if known is not None else None)
    failed, how = report_recipients(result.category, list(result.failed_recipients), match)
    held = ""
    if result.category in NEEDS_PROOF and match.lead is not None:
        held = unproven(match, failed_recipients=failed)
    now = timezone.now()
    # Text from the message is cleaned where it is stored: PostgreSQL takes no NUL in text or JSON.
    fields = {
        "category": result.category, "confidence": result.confidence,
        "classification_reasons": [clean_text(reason) for reason in (
            *result.reasons, *([how] if how else []), *([f"matched by {match.how}"] if match.how else []),
            *([f"held for a person to confirm or dismiss — {held}"] if held else []))],
        "confirmation": Confirmation.NEEDED if held else "",
        "failed_recipients": [clean_text(address) for address in failed],
        "bounce_status_code": clean_text(result.status_code)[:16],
        "return_date": result.return_date,
        "referral_email": clean_text(result.referral_email or "")[:254],
        "reported_domain": clean_text(result.reported_domain)[:253],
        "new_text": clean_text(result.new_text) or inbound.new_text,
        "outbound_email": match.outbound, "lead": match.lead,
        "classified_at": now, "classified_by": CLASSIFIER, "processed_at": now,
    }
    return fields, bool(held)


def report_recipients(category: str, failed: list[str], match: Match) -> tuple[list[str], str]:
    """The failed (or complaining) recipients of a bounce or complaint, and how they were completed.

    In order of trust: what the report says (its DSN, the mail server's text, the headers of the
    original it carries — ``cam.inbox.bounces``); then our own record of the email it proves it is
    about. A signed return path (VERP) names exactly one email of ours, so when the report names its
    address among others, that address alone is the failure; when a report names nobody (a feedback
    loop that redacts the recipient), the address our email went to is. A report naming only someone
    else is left as it is: ``unproven`` holds it for a person."""
    if category not in NEEDS_PROOF or match.outbound is None or match.how not in PROOFS:
        return failed, ""
    ours = match.outbound.to_email.lower()
    if not failed:
        return [ours], f"the recipient is the address our email went to ({ours}, by {match.how})"
    if match.how == "return path" and len(failed) > 1 and ours in failed:
        return [ours], f"the signed return path names our email to {ours}: the others are not ours"
    return failed, ""


def replies_process(*, limit: int = 200) -> dict[str, int]:
    """Process stored replies not processed yet, oldest first. Returns counts per category, and
    ``held``: bounces and complaints waiting for a person to confirm them."""
    counts: dict[str, int] = {"processed": 0, "errors": 0}
    batch = list(InboundEmail.objects.filter(processed_at__isnull=True).order_by("created_at", "pk")[:limit])
    # Read every reply first (no database), then our emails they name in one query, then write.
    readings: list[Reading | Exception] = []
    for inbound in batch:
        try:
            readings.append(reply_read(inbound))
        except Exception as exc:  # recorded with the others' failures below
            readings.append(exc)
    read = [reading for reading in readings if isinstance(reading, Reading)]
    known = known_emails(
        message_ids={found for inbound in batch for found in thread_ids(inbound.in_reply_to, inbound.references)}
        | {found for reading in read for found in reading.embedded or ()},
        pks={found for reading in read for found in reading.signed})
    # The replies none of those match (strangers, reports without our headers) are matched by address: their
    # senders and failed recipients are looked up for the whole batch at once.
    known_addresses(known, {
        address for inbound, reading in zip(batch, readings, strict=True)
        if isinstance(reading, Reading) and not _matched_by_ids(inbound, reading, known)
        for address in (inbound.from_email, *reading.result.failed_recipients) if address})
    together: dict[str, int] = {"processed": 0, "errors": 0}
    with transaction.atomic():
        try:
            with transaction.atomic():
                replies_follow_up(inbounds=_record_together(batch, readings, known, together), actor=CLASSIFIER)
        except Exception:
            logger.exception("%s replies could not be recorded and followed up together: they are processed "
                             "one by one", len(batch))
            for inbound, reading in zip(batch, readings, strict=True):
                _process_one(inbound, reading, known, counts)
        else:
            counts = together
    return counts


def _matched_by_ids(inbound: InboundEmail, reading: Reading, known: Known) -> bool:
    """Whether ``known`` holds an email of ours that ``inbound``'s signed return path, thread headers or
    carried original names, so that matching it looks no address up. (Only a shortcut: an address not looked
    up for the batch is looked up when the reply is matched.)"""
    return bool(known.latest(reading.signed) or known.first(thread_ids(inbound.in_reply_to, inbound.references))
                or known.first(reading.embedded or []))


# What recording a reply writes (``_recording``).
RECORDED = ["category", "confidence", "classification_reasons", "confirmation", "failed_recipients",
            "bounce_status_code", "return_date", "referral_email", "reported_domain", "new_text", "outbound_email",
            "lead", "classified_at", "classified_by", "processed_at"]
SET_ASIDE = ["could not be processed: see the log"]


def _record_together(batch: list[InboundEmail], readings: list[Reading | Exception], known: Known,
                     counts: dict[str, int]) -> list[InboundEmail]:
    """Record a batch's replies as ``reply_record`` does each, in a few statements: the replies still
    unprocessed are locked in one query (another worker may have processed some meanwhile: those are
    left as they are), and recorded in one ``UPDATE``. A reply that cannot be read or matched is set
    aside. Returns the replies whose follow-up is due, in order."""
    # In id order, as the leads are, so two workers with overlapping batches wait rather than deadlock.
    unprocessed = set(InboundEmail.objects.select_for_update().filter(
        pk__in=[inbound.pk for inbound in batch], processed_at__isnull=True).order_by("pk").values_list(
        "pk", flat=True))
    recorded: list[InboundEmail] = []
    due: list[InboundEmail] = []
    failed: list[int] = []
    for inbound, reading in zip(batch, readings, strict=True):
        try:
            if isinstance(reading, Exception):
                raise reading
            # Read and matched only while still unprocessed: another worker may have processed it meanwhile.
            recording = _recording(inbound, reading, known) if inbound.pk in unprocessed else None
        except Exception:
            logger.exception("Reply %s could not be processed", inbound.pk)
            failed.append(inbound.pk)
            counts["errors"] += 1
            continue
        if recording is not None:
            fields, held = recording
            for name, value in fields.items():
                setattr(inbound, name, value)
            recorded.append(inbound)
            if not held:
                due.append(inbound)
        _count(inbound, counts)
    bulk_update_values(recorded, RECORDED)
    if failed:
        _set_aside(failed)
    return due


def _set_aside(pks: list[int]) -> None:
    # Recorded, and set aside so the next cycle does not trip over it again; staff can reclassify it by hand.
    InboundEmail.objects.filter(pk__in=pks, processed_at__isnull=True).update(
        processed_at=timezone.now(), classification_reasons=SET_ASIDE)


def _process_one(inbound: InboundEmail, reading: Reading | Exception, known: Known, counts: dict[str, int]) -> None:
    """``reply_process`` in a savepoint of the batch's transaction, counted; a failure is recorded."""
    try:
        if isinstance(reading, Exception):
            raise reading
        with transaction.atomic():
            reply_process(inbound=inbound, reading=reading, known=known)
    except Exception:
        logger.exception("Reply %s could not be processed", inbound.pk)
        _set_aside([inbound.pk])
        counts["errors"] += 1
        return
    _count(inbound, counts)


def _count(inbound: InboundEmail, counts: dict[str, int]) -> None:
    category = inbound.category
    counts["processed"] += 1
    counts[category.lower() or "unmatched"] = counts.get(category.lower() or "unmatched", 0) + 1
    if inbound.needs_confirmation:
        counts["held"] = counts.get("held", 0) + 1


@transaction.atomic
def reply_reclassify(*, inbound: InboundEmail, category: str, by: str) -> None:
    """A person corrects a reply's category; the follow-up for the new category is applied.

    ``by`` names who, as lead events do: ``staff:<username>`` or ``api-key:<name>``."""
    if category not in InboundEmail.Category.values:
        raise ValueError(f"Unknown category {category!r}.")
    now = timezone.now()
    # A held bounce or complaint is decided by whoever sets its category: the follow-up is theirs.
    _decide(inbound, Confirmation.CONFIRMED, by=by, now=now)
    inbound.category, inbound.confidence, inbound.classified_at = category, 1.0, now
    inbound.classified_by = by[:150]
    # The person's reading first; the classifier's own reasons stay beneath it, and an earlier person's reading
    # gives way (each change is in the lead's history), so reclassifying twice does not stack lines.
    machine = [reason for reason in inbound.classification_reasons if not reason.startswith(("set by ", "read as "))]
    inbound.classification_reasons = [f"read as {Category(category).label.lower()} by {by}", *machine]
    inbound.processed_at = inbound.processed_at or now
    inbound.save(update_fields=["category", "confidence", "classified_at", "classified_by",
                                "classification_reasons", "processed_at"])
    reply_follow_up(inbound=inbound, actor=by, reclassified=True)


class NotHeld(ValueError):
    """The reply is not waiting for a person to confirm it (never held, or confirmed or dismissed already)."""


def _decide(inbound: InboundEmail, decision: str, *, by: str, now: datetime) -> bool:
    """Record ``decision`` on a held reply; False when it was not held. Conditional on the row, so
    two people deciding at once decide once."""
    if not InboundEmail.objects.filter(pk=inbound.pk, confirmation=Confirmation.NEEDED).update(
            confirmation=decision, confirmation_by=by[:150], confirmation_at=now):
        return False
    inbound.confirmation, inbound.confirmation_by, inbound.confirmation_at = decision, by[:150], now
    return True


def _person_decides(inbound: InboundEmail, decision: str, *, by: str) -> None:
    """``_decide`` for a held reply a person confirms or dismisses, with who did it among its reasons;
    raises ``NotHeld`` when it was not waiting for that."""
    if not _decide(inbound, decision, by=by, now=timezone.now()):
        inbound.refresh_from_db(fields=["confirmation", "confirmation_by", "confirmation_at"])
        raise NotHeld(_not_held(inbound))
    inbound.classification_reasons = [f"{Confirmation(decision).name.lower()} by {by}",
                                      *inbound.classification_reasons]
    inbound.save(update_fields=["classification_reasons"])


@transaction.atomic
def bounce_confirm(*, inbound: InboundEmail, by: str) -> None:
    """A person confirms a held bounce or complaint: its follow-up is applied now, with ``by`` as the
    actor its lead events and suppression name. Raises ``NotHeld`` when it is not waiting for that.

    ``by`` names who, as lead events do: ``staff:<username>`` or ``api-key:<name>``."""
    _person_decides(inbound, Confirmation.CONFIRMED, by=by)
    reply_follow_up(inbound=inbound, actor=by)


@transaction.atomic
def bounce_dismiss(*, inbound: InboundEmail, by: str) -> None:
    """A person dismisses a held bounce or complaint (forged, or not about our email): nothing changes
    for its lead, and it no longer counts in the metrics. Raises ``NotHeld`` when it is not waiting."""
    _person_decides(inbound, Confirmation.DISMISSED, by=by)


def _not_held(inbound: InboundEmail) -> str:
    if inbound.confirmation in (Confirmation.CONFIRMED, Confirmation.DISMISSED):
        return (f"Reply #{inbound.pk} was already {Confirmation(inbound.confirmation).label.lower()} "
                f"({inbound.confirmation_by}).")
    return f"Reply #{inbound.pk} is not waiting to be confirmed: it proved itself, or is no bounce or complaint."
