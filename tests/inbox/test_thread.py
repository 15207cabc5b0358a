"""A conversation's thread: both ways, oldest first, quotes and footers folded, in a fixed number of queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from cam.inbox.thread import IN, OUT, reply_thread
from cam.models import InboundEmail, OutboundEmail
from tests.factories import InboundEmailFactory, LeadFactory, OutboundEmailFactory
from tests.inbox.test_desk import a_desk, raw_reply

pytestmark = pytest.mark.django_db


def test_it_holds_every_email_sent_and_every_message_received_oldest_first():
    desk = a_desk()

    thread = reply_thread(reply_id=desk["anna"].pk)

    assert [(message.direction, message.record.pk) for message in thread.messages] == [
        (OUT, desk["step_one"].pk), (IN, desk["anna_away"].pk), (OUT, desk["step_two"].pk), (IN, desk["anna"].pk)]
    assert [message.step for message in thread.messages if message.direction == OUT] == [1, 2]
    assert [message.current for message in thread.messages] == [False, False, False, True]
    assert thread.lead == desk["anna"].lead


def test_our_email_reads_as_sent_with_its_footer_folded():
    desk = a_desk()

    first = reply_thread(reply_id=desk["anna"].pk).messages[0]

    assert first.text == "Hi Anna,\n\nWould Brightlane like fewer chores?\n\nAlex"
    assert first.folded == "Example Ltd, 1 High Street\nNot interested? Unsubscribe: https://cam.example.com/u/abc/"
    assert (first.sender, first.recipient, first.subject) == (
        "Alex Sender <alex@outreach.test>", "anna@brightlane.example.com", "Quick question, Anna")


def test_a_reply_reads_as_its_own_words_with_the_whole_message_folded_beneath():
    desk = a_desk()

    reply = reply_thread(reply_id=desk["anna"].pk).messages[-1]

    assert reply.text.startswith("Sounds interesting — could we talk on Thursday afternoon?")
    assert "> Just bringing this up again: 20 minutes on Thursday?" in reply.folded
    assert reply.sender == "Anna Berg <anna@brightlane.example.com>"


def test_a_reply_without_words_of_its_own_shows_the_whole_message_and_folds_nothing():
    lead = LeadFactory(email="nora@gone.example.com")
    bounce = InboundEmailFactory(lead=lead, new_text="", category=InboundEmail.Category.BOUNCE_HARD,
                                 raw_message=raw_reply(sender="mailer-daemon@mx.example.com", subject="Undelivered",
                                                       words="550 5.1.1 user unknown"))

    (message,) = reply_thread(reply_id=bounce.pk).messages

    assert (message.text, message.folded) == ("550 5.1.1 user unknown", "")


def test_emails_not_sent_are_not_part_of_the_conversation():
    lead = LeadFactory()
    for status in (OutboundEmail.Status.PENDING, OutboundEmail.Status.FAILED, OutboundEmail.Status.CANCELLED):
        OutboundEmailFactory(lead=lead, status=status)
    reply = InboundEmailFactory(lead=lead)

    assert [message.direction for message in reply_thread(reply_id=reply.pk).messages] == [IN]


def test_a_message_that_matched_no_lead_is_alone_in_its_thread():
    desk = a_desk()

    thread = reply_thread(reply_id=desk["stranger"].pk)

    assert thread.lead is None
    assert [message.record.pk for message in thread.messages] == [desk["stranger"].pk]


@pytest.mark.parametrize("messages", [1, 50])
def test_it_reads_a_conversation_in_three_queries_however_long(django_assert_num_queries, messages):
    lead = LeadFactory()
    for n in range(messages - 1):
        at = timezone.now() - timedelta(hours=messages - n)
        if n % 2:
            InboundEmailFactory(lead=lead, received_at=at, raw_message=raw_reply(sender=lead.email, subject="Re",
                                                                                  words="Yes", quoted="Hello"))
        else:
            OutboundEmailFactory(lead=lead, status=OutboundEmail.Status.SENT, sent_at=at)
    reply = InboundEmailFactory(lead=lead, received_at=timezone.now())

    # the reply with its lead, campaign, mailbox and people; the messages received; the emails sent
    with django_assert_num_queries(3):
        thread = reply_thread(reply_id=reply.pk)
    assert len(thread.messages) == messages


def test_it_refuses_an_unknown_reply():
    with pytest.raises(InboundEmail.DoesNotExist):
        reply_thread(reply_id=424242)
