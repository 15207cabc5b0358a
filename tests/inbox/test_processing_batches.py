"""Processing replies in batches: read first, our emails they name looked up once per batch, one commit."""

from __future__ import annotations

import pytest

from cam.inbox import processing
from cam.inbox.processing import replies_process
from cam.models import InboundEmail
from tests.factories import LeadFactory, OutboundEmailFactory, SequenceStepFactory
from tests.inbox.test_followup import reply, sent  # noqa: F401

pytestmark = pytest.mark.django_db


def answers(sent, count: int) -> None:  # noqa: F811
    """``count`` replies, each to an email of ours to a lead of its own."""
    step = SequenceStepFactory(campaign=sent.campaign, position=3)
    for n in range(count):
        lead = LeadFactory(campaign=sent.campaign, email=f"person{n}@company{n}.example.com")
        email = OutboundEmailFactory(lead=lead, campaign=sent.campaign, step=step, mailbox=sent.mailbox,
                                     status="SENT", to_email=lead.email, subject="Hello",
                                     message_id=f"<batch.{n}@outreach.example.com>")
        reply(email, "Sounds interesting, let's talk next week!")


@pytest.mark.parametrize("count", [3, 30])
def test_matching_a_batch_asks_one_query_however_many_replies(sent, count, monkeypatch,  # noqa: F811
                                                               django_assert_num_queries):
    answers(sent, count)
    monkeypatch.setattr(processing, "reply_follow_up", lambda **kwargs: None)  # the lead's side is counted elsewhere
    # The batch, our emails it names, and the transaction's savepoint; then per reply its savepoint
    # and release around the one UPDATE that records it.
    with django_assert_num_queries(2 + 2 + 3 * count):
        assert replies_process()["positive"] == count
    matched = InboundEmail.objects.filter(outbound_email__isnull=False, lead__isnull=False)
    assert matched.count() == count
    assert all(inbound.outbound_email.lead_id == inbound.lead_id for inbound in matched)


def test_a_reply_that_cannot_be_read_is_set_aside_and_the_others_are_processed(sent, monkeypatch):  # noqa: F811
    answers(sent, 3)
    broken = InboundEmail.objects.order_by("pk")[1]
    reading = processing.reply_read
    monkeypatch.setattr(processing, "reply_read", lambda inbound: (
        reading(inbound) if inbound.pk != broken.pk else 1 / 0))

    assert replies_process() == {"processed": 2, "errors": 1, "positive": 2}
    broken.refresh_from_db()
    assert broken.processed_at is not None and broken.classification_reasons == ["could not be processed: see the log"]
