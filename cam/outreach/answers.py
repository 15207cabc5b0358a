"""A person's answer to a reply, sent from CAM in the same thread: ``answer_send``.

The answer goes out as the sequence's emails do — an ``OutboundEmail`` (of kind ``manual``, with its
author), built by ``cam.outreach.messages.build_message`` (the compliance footer in its text and the
List-Unsubscribe headers), handed to the mailbox's provider with the email's idempotency key, its
outcome (``SENT``, ``FAILED``, ``UNKNOWN``) written by ``cam.outreach.outcomes`` conditional on its
claim — so the same guarantees hold:

- **Exactly once.** The answer's form carries a key of its own; the email is stored under it (unique)
  before anything is sent, so a second submit of the same form (a double click, a retry) finds it and
  sends nothing more. The email is in flight (``cam.in_flight``) under a lease of its own while the provider
  is asked; a crash then leaves it for ``cam.outreach.sending.outbound_recover_stuck``, which makes an
  answer ``UNKNOWN`` (never tried again on its own: a person wrote it and decides).
- **In the thread.** From the mailbox that wrote to the lead, to the address that replied,
  ``Re:`` the reply's subject, ``In-Reply-To`` the reply's Message-ID and ``References`` its chain.
- **Beside the sequence, never part of it.** An answer has no step; the lead's sequence position, next
  send and status are left as they are (a positive reply has already stopped the sequence; nothing here
  restarts it); it does not count against the daily caps or in the campaign's sent figures and rates.
- **Told at once.** Sent in the request, not queued: staff see "sent" or the provider's refusal. A
  provider that asks to wait (a rate limit, a server that cannot be reached) makes the answer
  ``FAILED`` with that reason, and the person sends it again when they choose.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from cam.locks import lease_acquire, lease_release
from cam.models import AnswerSnippet, InboundEmail, Lead, Mailbox, OutboundEmail
from cam.outreach.messages import build_message, new_message_id
from cam.outreach.outcomes import Outcome, outcome_write
from cam.outreach.providers import SendResult, get_provider
from cam.outreach.rendering import TemplateProblem, footer_text, render_snippet, template_context
from cam.outreach.unsubscribe import unsubscribe_url
from cam.suppressions import suppressed_addresses

Status = OutboundEmail.Status
MAX_ANSWER_CHARS = 20_000


class AnswerRefused(ValueError):
    """The answer cannot be sent; the message says why, for the person who wrote it."""


@dataclass(frozen=True)
class Answered:
    email: OutboundEmail
    sent_now: bool  # False: the same form was submitted before, and this is that answer


def answer_key() -> str:
    """A fresh key for one answer form: every submit of that form names the same answer."""
    return uuid.uuid4().hex


def answer_mailbox(inbound: InboundEmail) -> Mailbox | None:
    """The mailbox that wrote to the lead (the email the reply answers, else the lead's), else the one
    the reply arrived in."""
    if inbound.outbound_email_id and inbound.outbound_email and inbound.outbound_email.mailbox_id:
        return inbound.outbound_email.mailbox
    if inbound.lead_id and inbound.lead and inbound.lead.mailbox_id:
        return inbound.lead.mailbox
    return inbound.mailbox


def answer_subject(subject: str) -> str:
    subject = " ".join(subject.split())
    return subject if subject.lower().startswith("re:") else f"Re: {subject}".strip()


def answer_send(*, inbound: InboundEmail, author: User, body: str, key: str) -> Answered:
    """Send ``body`` as ``author``'s answer to ``inbound``, once for ``key`` (see the module's docstring).

    Raises ``AnswerRefused`` when it cannot go: no text, no lead, no active mailbox, a suppressed
    address, a key that names another reply's answer.
    """
    key = (key or "").strip()
    if not key or len(key) > 64:
        raise AnswerRefused("The answer form has no valid key: reload the page and write it again.")
    existing = OutboundEmail.objects.filter(idempotency_key=key).first()
    if existing is not None:
        if existing.answers_id != inbound.pk:
            raise AnswerRefused("This form's key belongs to another answer: reload the page.")
        return Answered(email=existing, sent_now=False)
    text = (body or "").strip()
    if not text:
        raise AnswerRefused("Write the answer first: it is empty.")
    if len(text) > MAX_ANSWER_CHARS:
        raise AnswerRefused(f"The answer is {len(text):,} characters long; at most {MAX_ANSWER_CHARS:,} are sent.")
    lead = inbound.lead
    if lead is None:
        raise AnswerRefused("This message is not linked to a lead: answer it from your mailbox.")
    mailbox = answer_mailbox(inbound)
    if mailbox is None:
        raise AnswerRefused("No mailbox wrote to this lead: answer it from your mailbox.")
    if not mailbox.is_active:
        raise AnswerRefused(f"The mailbox {mailbox.name} is not active: activate it to answer from it.")
    to_email = (inbound.from_email or lead.email).strip().lower()
    stopped = suppressed_addresses([to_email])
    if stopped:
        raise AnswerRefused(f"Not sent: {stopped[to_email]}.")

    url = unsubscribe_url(lead)
    holder = f"{settings.AICMO_CAM_WORKER_ID}:answer:{uuid.uuid4().hex[:12]}"
    lease = f"send:answer:{key}"
    references = " ".join(part for part in (inbound.references.strip(), inbound.message_id.strip()) if part)
    now = timezone.now()
    try:
        with transaction.atomic():
            email = OutboundEmail.objects.create(
                kind=OutboundEmail.Kind.MANUAL, lead=lead, campaign_id=lead.campaign_id, mailbox=mailbox,
                to_email=to_email, from_email=mailbox.from_email, subject=answer_subject(inbound.subject),
                body_text=text + "\n" + footer_text(url), message_id=new_message_id(mailbox),
                in_reply_to=inbound.message_id, references=references[-4000:], status=Status.CLAIMED,
                claimed_by=holder, claimed_at=now, provider=mailbox.provider, author=author, answers=inbound,
                idempotency_key=key)
    except IntegrityError:  # the same form, submitted twice at once: the other submit sends it
        existing = OutboundEmail.objects.get(idempotency_key=key)
        return Answered(email=existing, sent_now=False)
    if not lease_acquire(name=lease, holder=holder):  # pragma: no cover - a new key's lease is free
        raise AnswerRefused("This answer is already being sent.")
    try:
        _, ours = outcome_write(holder=holder, row=None, outcome=None, next_id=email.pk, now=now)  # in flight
        if ours:
            email.lead, email.mailbox = lead, mailbox
            result = _deliver(email)
            outcome_write(holder=holder, row=email, outcome=_outcome(result), next_id=None, now=timezone.now())
    finally:
        lease_release(name=lease, holder=holder)
    email.refresh_from_db()
    return Answered(email=email, sent_now=True)


def _deliver(email: OutboundEmail) -> SendResult:
    """The provider's answer; never raises, so the outcome is always written."""
    assert email.mailbox is not None
    try:
        message = build_message(email)
    except Exception as exc:
        return SendResult(status=Status.FAILED, error=f"The message could not be built: {exc}", attempted=False)
    try:
        with get_provider(email.mailbox) as provider:
            return provider.send(message, idempotency_key=f"cam-outbound-{email.pk}")
    except Exception as exc:  # a provider bug: the message may have gone out
        return SendResult(status=Status.UNKNOWN, error=f"{type(exc).__name__}: {exc}")


def _outcome(result: SendResult) -> Outcome:
    """The answer's new values; its lead is left as it is."""
    now = timezone.now()
    email = {"attempts": 1 if result.attempted else 0, "last_error": result.error[:2000], "updated_at": now,
             "next_attempt_at": None, "claimed_by": ""}
    if result.status == Status.SENT:
        email.update(status=Status.SENT, sent_at=now, provider_message_id=result.provider_message_id[:255])
    elif result.status == Status.UNKNOWN:
        email.update(status=Status.UNKNOWN)
    else:  # FAILED, or a provider asking to wait: a person sends it again when they choose
        reason = result.error or "the provider refused it"
        email.update(status=Status.FAILED,
                     last_error=(f"Not sent: {reason}" if result.status == Status.FAILED else
                                 f"Not sent, try again later: {reason}")[:2000])
    return Outcome(email=email, lead={})


def answers_of(lead: Lead) -> list[OutboundEmail]:
    """The answers people sent to ``lead``, oldest first."""
    return list(OutboundEmail.objects.filter(lead=lead, kind=OutboundEmail.Kind.MANUAL).order_by("created_at"))


def snippets_for(inbound: InboundEmail) -> list[tuple[AnswerSnippet, str]]:
    """Every saved answer, rendered for the lead of ``inbound`` (a snippet that does not render for it is
    left out: the composer offers what can be inserted as it is). Two queries: the lead's and the snippets."""
    lead = Lead.objects.select_related("campaign").get(pk=inbound.lead_id) if inbound.lead_id else None
    if lead is None:
        return []
    mailbox = answer_mailbox(inbound)
    context = template_context(lead=lead, campaign=lead.campaign, mailbox=mailbox,
                               unsubscribe_url=unsubscribe_url(lead))
    rendered = []
    for snippet in AnswerSnippet.objects.all():
        try:
            rendered.append((snippet, render_snippet(snippet.body, context)))
        except TemplateProblem:
            continue
    return rendered
