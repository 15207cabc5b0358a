"""Sent emails and their outcomes, made in bulk so a test can have hundreds of sends."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from django.utils import timezone

from cam.models import Campaign, InboundEmail, Lead, Mailbox, OutboundEmail, ProviderEvent, SequenceStep
from cam.reporting import period_start
from tests.factories import InboundEmailFactory, MailboxFactory, ProviderEventFactory, SequenceStepFactory

_numbers = itertools.count(1)


def sends(campaign: Campaign, count: int, *, mailbox: Mailbox | None = None, at: datetime | None = None,
          status: str = OutboundEmail.Status.SENT) -> list[OutboundEmail]:
    """``count`` emails of ``campaign`` to new leads, sent one second apart ending at ``at``."""
    mailbox = mailbox or MailboxFactory()
    step = SequenceStep.objects.filter(campaign=campaign, position=1).first() or SequenceStepFactory(
        campaign=campaign, position=1)
    at = at or timezone.now() - timedelta(hours=1)
    numbers = [next(_numbers) for _ in range(count)]
    leads = Lead.objects.bulk_create([Lead(campaign=campaign, email=f"m{n}@metrics{n}.test") for n in numbers])
    return OutboundEmail.objects.bulk_create([
        OutboundEmail(lead=lead, step=step, campaign=campaign, mailbox=mailbox, to_email=lead.email,
                      message_id=f"<metrics.{n}@outreach.test>", status=status,
                      sent_at=at - timedelta(seconds=i) if status == OutboundEmail.Status.SENT else None)
        for i, (n, lead) in enumerate(zip(numbers, leads, strict=True))])


def answer(email: OutboundEmail, category: str) -> InboundEmail:
    """An inbound message about ``email``, already classified as ``category`` and processed."""
    now = timezone.now()
    return InboundEmailFactory(mailbox=email.mailbox, outbound_email=email, lead=email.lead, category=category,
                               classified_at=now, processed_at=now)


def provider_event(email: OutboundEmail, event_type: str) -> ProviderEvent:
    return ProviderEventFactory(outbound_email=email, event_type=event_type)


def earlier_today(before: timedelta, *, now: datetime | None = None) -> datetime:
    """``before`` ago, or halfway through today (local time) when today began less than that ago: a send
    "earlier today" for a test that runs just after midnight, as CI may."""
    now = now or timezone.now()
    start = period_start("today", now=now)
    return max(now - before, start + (now - start) / 2)
