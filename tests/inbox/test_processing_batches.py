"""Processing replies in batches: read first, our emails they name looked up once per batch, one commit."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from cam import followup
from cam.inbox import processing
from cam.inbox.matching import match_message
from cam.inbox.parsing import message_from_raw
from cam.inbox.processing import replies_process
from cam.models import HumanAlertLog, InboundEmail, Lead, LeadEvent, OutboundEmail, Suppression
from tests.factories import CampaignFactory, LeadFactory, MailboxFactory, OutboundEmailFactory, SequenceStepFactory
from tests.inbox.test_followup import bounce, reply, sent  # noqa: F401

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
def test_reading_matching_and_recording_a_batch_cost_the_same_statements_however_many_replies(
        sent, count, monkeypatch, django_assert_num_queries):  # noqa: F811
    answers(sent, count)
    monkeypatch.setattr(processing, "replies_follow_up", lambda **kwargs: None)  # the lead's side is counted below
    # The batch, our emails it names; the transaction's savepoint and the one the batch may be undone to
    # (with their releases); the replies still unprocessed, locked, and the one UPDATE that records them.
    with django_assert_num_queries(2 + 4 + 2):
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


TEXTS = ("Sounds interesting, let's talk next week!", "No thanks, we are not interested.",
         "Please remove me from your list.")


@pytest.mark.parametrize("count", [3, 30])
def test_the_follow_ups_of_a_batch_cost_the_same_statements_however_many_replies(sent, count,  # noqa: F811
                                                                                django_assert_num_queries):
    step = SequenceStepFactory(campaign=sent.campaign, position=3)
    for n in range(count):  # positive, negative and unsubscribe replies in turn, each lead with an email waiting
        lead = LeadFactory(campaign=sent.campaign, email=f"person{n}@company{n}.example.com", status="IN_SEQUENCE")
        email = OutboundEmailFactory(lead=lead, campaign=sent.campaign, step=step, mailbox=sent.mailbox,
                                     status="SENT", to_email=lead.email, message_id=f"<batch.{n}@outreach.example.com>")
        OutboundEmailFactory(lead=lead, campaign=sent.campaign, step=sent.step, mailbox=sent.mailbox, status="PENDING")
        reply(email, TEXTS[n % 3])

    # Reading, matching and recording as above (2 + 4 + 2); then the follow-ups' savepoint and
    # release, the leads locked, our emails they answer, the address's other leads, the suppressions
    # listed and the new ones, the lead events, the leads, the emails to cancel found and cancelled, and
    # the alerts (the channels, the rows queued already, the new rows, the replies marked alerted).
    with django_assert_num_queries(2 + 4 + 2 + 2 + 2 + 3 + 2 + 2 + 4):
        counts = replies_process()
    assert (counts["processed"], counts["errors"]) == (count, 0)
    assert Lead.objects.filter(status="UNSUBSCRIBED").count() == count // 3
    assert Suppression.objects.count() == count // 3
    assert HumanAlertLog.objects.count() == -(-count // 3)
    assert LeadEvent.objects.count() == count
    assert not OutboundEmail.objects.filter(status="PENDING", lead__email__startswith="person").exists()


def a_world(prefix: str) -> dict[str, OutboundEmail]:
    """Two campaigns, one stopping a company on a reply, with leads that share a company or an address;
    each lead got step 1 and has step 2 waiting. Our email to each, by name."""
    mailbox = MailboxFactory(from_email=f"alex@{prefix}outreach.example.com")
    stops = CampaignFactory(name=f"{prefix} stops companies", stop_company_on_reply=True, soft_bounce_limit=3)
    other = CampaignFactory(name=f"{prefix} other", soft_bounce_limit=3)
    emails = {}
    for name, campaign, address in (
            ("anna", stops, "anna@{p}brightlane.example.com"), ("jonas", stops, "jonas@{p}brightlane.example.com"),
            ("mia", stops, "mia@{p}other.example.com"), ("kim", stops, "kim@{p}brightlane.example.com"),
            ("anna elsewhere", other, "anna@{p}brightlane.example.com"), ("bob", other, "bob@{p}shared.example.com"),
            ("bob again", stops, "bob@{p}shared.example.com"), ("lea", other, "lea@{p}away.example.com")):
        first = campaign.steps.get_or_create(position=1, defaults={"subject_template": "Hello"})[0]
        second = campaign.steps.get_or_create(position=2, defaults={"subject_template": ""})[0]
        lead = LeadFactory(campaign=campaign, email=address.format(p=prefix), first_name=name, last_name="",
                           company=name, status="IN_SEQUENCE", current_step=1, mailbox=mailbox,
                           last_contacted_at=timezone.now() - timedelta(days=1))
        emails[name] = OutboundEmailFactory(lead=lead, campaign=campaign, step=first, mailbox=mailbox, status="SENT",
                                            subject="Hello", message_id=f"<{prefix}.{name.replace(' ', '.')}@cam>")
        OutboundEmailFactory(lead=lead, campaign=campaign, step=second, mailbox=mailbox, status="PENDING",
                             message_id=f"<{prefix}.{name.replace(' ', '.')}.2@cam>")
    return emails


def the_replies(emails: dict[str, OutboundEmail]) -> None:
    """Replies that reach one another's leads: the same lead twice, a colleague after a company stop, an
    address stopped in one campaign while its lead in another answers, bounces among them."""
    reply(emails["mia"], "No thanks, we are not interested.")
    reply(emails["anna"], "Sounds interesting, let's talk next week!")  # stops jonas and kim (the company)
    reply(emails["jonas"], "Yes please, send me the details.")  # on a lead now in NURTURE
    reply(emails["anna elsewhere"], "Please remove me from your list.")  # the address, in both campaigns
    reply(emails["bob again"], "Sounds interesting, let's talk next week!")
    bounce(emails["bob"], status="5.1.1", diagnostic="550 5.1.1 User unknown")  # bob's address, both campaigns
    reply(emails["lea"], "I am out of the office until Monday, 15 December 2031.",
          subject="Out of Office: Hello", headers={"Auto-Submitted": "auto-replied"})
    bounce(emails["lea"], status="4.2.2", diagnostic="452 4.2.2 Mailbox full")
    reply(emails["mia"], "Actually, yes: sounds interesting, let's talk.")  # the same lead again


def what_happened(prefix: str) -> dict[str, object]:
    """Everything the follow-ups wrote about one world, with its prefix and reply numbers made neutral."""
    inbound_ids = list(InboundEmail.objects.filter(mailbox__from_email__contains=prefix).order_by("pk")
                       .values_list("pk", flat=True))

    def neutral(text: object) -> object:
        if isinstance(text, list):
            return tuple(neutral(item) for item in text)
        if not isinstance(text, str):
            return text
        text = re.sub(r"(#|/reply/)(\d+)", lambda found: f"{found[1]}r{inbound_ids.index(int(found[2]))}", text)
        return text.replace(prefix, "")

    def rows(queryset, *fields):
        return sorted(tuple(neutral(value) for value in row) for row in queryset.values_list(*fields))

    leads = Lead.objects.filter(campaign__name__startswith=prefix)
    return {
        "leads": rows(leads, "campaign__name", "email", "status", "status_reason", "next_send_at", "paused_until",
                      "current_step", "blocked_reason"),
        "replied": rows(leads.filter(replied_at__isnull=False), "email", "campaign__name"),
        "events": [tuple(neutral(value) for value in row) for row in LeadEvent.objects.filter(
            lead__in=leads).order_by("lead__campaign__name", "lead__email", "pk").values_list(
            "lead__campaign__name", "lead__email", "from_status", "to_status", "actor", "reason")],
        "suppressions": rows(Suppression.objects.filter(email__contains=prefix), "email", "reason", "source"),
        "emails": rows(OutboundEmail.objects.filter(lead__in=leads), "message_id", "status", "last_error",
                       "soft_bounces"),
        "alerts": rows(HumanAlertLog.objects.filter(lead__in=leads), "alert_type", "title", "body"),
        "replies": rows(InboundEmail.objects.filter(pk__in=inbound_ids), "category", "alert_sent",
                        "classification_reasons"),
    }


def test_a_batch_does_what_its_replies_one_by_one_would(monkeypatch):
    one_by_one = a_world("w1x")
    the_replies(one_by_one)
    while replies_process(limit=1)["processed"]:
        pass
    together = a_world("w2x")
    the_replies(together)
    groups = []
    independent = followup._independent
    monkeypatch.setattr(followup, "_independent", lambda *args: groups.append(independent(*args)) or groups[-1])

    assert replies_process()["processed"] == 9

    # Cut where a reply reaches an earlier one's lead, address or company (both campaigns' replies stop
    # the company in the first): [mia, anna], [jonas], [anna elsewhere, bob again], [bob's bounce, lea],
    # [lea's soft bounce, mia again].
    assert len(groups) == 1 and [len(group) for group in groups[0]] == [2, 1, 2, 2, 2]
    expected, got = what_happened("w1x"), what_happened("w2x")
    for kind in expected:
        assert got[kind] == expected[kind], kind
    leads = dict(Lead.objects.filter(campaign__name__startswith="w2x").values_list("first_name", "status"))
    assert leads == {"anna": "INTERESTED", "jonas": "INTERESTED", "mia": "INTERESTED", "kim": "NURTURE",
                     "anna elsewhere": "UNSUBSCRIBED", "bob": "BOUNCED", "bob again": "INTERESTED", "lea": "PAUSED"}


def test_a_batch_whose_follow_ups_fail_is_done_again_one_reply_at_a_time(sent, monkeypatch):  # noqa: F811
    answers(sent, 3)
    broken = InboundEmail.objects.order_by("pk")[1]
    positive = followup.FOLLOW_UPS["POSITIVE"]

    def fails_for_one(reply):
        if reply.inbound.pk == broken.pk:
            raise RuntimeError("boom")
        positive(reply)

    monkeypatch.setitem(followup.FOLLOW_UPS, "POSITIVE", fails_for_one)

    assert replies_process() == {"processed": 2, "errors": 1, "positive": 2}
    broken.refresh_from_db()
    assert (broken.category, broken.classification_reasons) == ("", ["could not be processed: see the log"])
    assert sorted(Lead.objects.filter(email__startswith="person").values_list("status", flat=True)) == [
        "INTERESTED", "INTERESTED", "NEW"]
    assert HumanAlertLog.objects.count() == 2


def test_a_reply_another_worker_recorded_meanwhile_is_left_as_it_is(sent, monkeypatch):  # noqa: F811
    answers(sent, 3)
    taken = InboundEmail.objects.order_by("pk")[1]
    lookup = processing.known_emails

    def meanwhile(**kwargs):  # after the batch is read, before it is recorded
        InboundEmail.objects.filter(pk=taken.pk).update(processed_at=timezone.now(), category="NEGATIVE")
        return lookup(**kwargs)

    monkeypatch.setattr(processing, "known_emails", meanwhile)
    replies_process()

    taken.refresh_from_db()
    assert (taken.category, taken.lead_id, taken.alert_sent) == ("NEGATIVE", None, False)
    assert HumanAlertLog.objects.count() == 2
    assert LeadEvent.objects.filter(lead__email__startswith="person").count() == 2


def strangers(sent, count: int) -> None:  # noqa: F811
    """``count`` messages without thread headers, matched only by their sender's address, if at all: a lead we
    wrote to from two mailboxes, a lead we never wrote to, and someone we do not know, in turn."""
    other = MailboxFactory(from_email="sam@outreach.example.com")
    steps = [SequenceStepFactory(campaign=sent.campaign, position=position) for position in (10, 11, 12)]
    for n in range(count):
        address = f"someone{n}@stranger{n}.example.com"
        if n % 3 == 0:
            lead = LeadFactory(campaign=sent.campaign, email=address)
            for step, mailbox, days in zip(steps, (other, sent.mailbox, other), (1, 3, 5), strict=True):
                OutboundEmailFactory(lead=lead, campaign=sent.campaign, step=step, mailbox=mailbox,
                                     status="SENT", to_email=address, sent_at=timezone.now() - timedelta(days=days),
                                     message_id=f"<s.{n}.{days}@outreach.example.com>")
        elif n % 3 == 1:
            LeadFactory(campaign=sent.campaign, email=address)
        inbound = reply(sent, "Who are you? What is this about?", sender=address)
        InboundEmail.objects.filter(pk=inbound.pk).update(from_email=address, in_reply_to="", references="")


@pytest.mark.parametrize("count", [3, 30])
def test_replies_matched_by_address_cost_the_same_statements_however_many(
        sent, count, monkeypatch, django_assert_num_queries):  # noqa: F811
    strangers(sent, count)
    monkeypatch.setattr(processing, "replies_follow_up", lambda **kwargs: None)
    # As above, but no Message-ID or id of ours to look up; instead the batch's addresses: our emails to them, and
    # the leads with them (were three statements per reply).
    with django_assert_num_queries(1 + 2 + 4 + 2):
        assert replies_process()["processed"] == count


def test_replies_matched_by_address_in_a_batch_match_as_each_alone(sent, monkeypatch):  # noqa: F811
    strangers(sent, 6)
    monkeypatch.setattr(processing, "replies_follow_up", lambda **kwargs: None)
    replies_process()
    for inbound in InboundEmail.objects.order_by("pk"):
        alone = match_message(message=message_from_raw(bytes(inbound.raw_message)), mailbox_id=inbound.mailbox_id,
                              sender=inbound.from_email, in_reply_to="", references="", failed_recipients=[])
        assert (inbound.outbound_email, inbound.lead) == (alone.outbound, alone.lead)
        assert (f"matched by {alone.how}" in inbound.classification_reasons) == bool(alone.how)
    by_sender = InboundEmail.objects.filter(outbound_email__isnull=False)
    # The latest from the reply's own mailbox, not the latest of all.
    assert {inbound.outbound_email.message_id.split("@")[0] for inbound in by_sender} == {"<s.0.3", "<s.3.3"}
    assert InboundEmail.objects.filter(outbound_email__isnull=True, lead__isnull=False).count() == 2
