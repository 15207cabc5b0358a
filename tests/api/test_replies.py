"""Replies: list with filters, read, reclassify."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from cam.followup import leads_resume_paused
from cam.models import HumanAlertLog, InboundEmail, Lead, OutboundEmail, Suppression
from tests import factories

pytestmark = pytest.mark.django_db

REPLIES = reverse("cam-api:reply-list")


def reply_url(pk) -> str:
    return reverse("cam-api:reply-detail", args=[pk])


def reclassify_url(pk) -> str:
    return reverse("cam-api:reply-reclassify", args=[pk])


def subjects(response) -> list[str]:
    assert response.status_code == 200, response.json()
    return [row["subject"] for row in response.json()["results"]]


@pytest.fixture
def replies():
    """Three replies: matched to an email of campaign A, matched to a lead of campaign B only, unmatched."""
    now = timezone.now()
    campaign_a, campaign_b = factories.CampaignFactory(name="A"), factories.CampaignFactory(name="B")
    lead_a = factories.LeadFactory(campaign=campaign_a, email="anna@brightlane.test", status=Lead.Status.IN_SEQUENCE)
    outbound = factories.OutboundEmailFactory(lead=lead_a, status="SENT", sent_at=now - timedelta(days=2))
    lead_b = factories.LeadFactory(campaign=campaign_b)
    positive = factories.InboundEmailFactory(subject="Re: yes", lead=lead_a, outbound_email=outbound,
                                             category="POSITIVE", confidence=0.9, processed_at=now,
                                             received_at=now - timedelta(hours=1),
                                             new_text="Sounds good, call me on Tuesday.",
                                             classification_reasons=["positive phrase"], classified_by="rules")
    ooo = factories.InboundEmailFactory(subject="Away", lead=lead_b, category="OUT_OF_OFFICE",
                                        processed_at=now, received_at=now - timedelta(days=3))
    unmatched = factories.InboundEmailFactory(subject="Who are you?", received_at=now - timedelta(days=5))
    return {"a": campaign_a, "b": campaign_b, "lead_a": lead_a, "outbound": outbound, "positive": positive,
            "ooo": ooo, "unmatched": unmatched}


def test_it_lists_the_replies_newest_first(read_api, replies):
    assert subjects(read_api.get(REPLIES)) == ["Who are you?", "Away", "Re: yes"]


def test_it_reads_one_reply_with_its_text_classification_lead_and_email(api, replies):
    response = api.get(reply_url(replies["positive"].pk))
    assert response.status_code == 200
    body = response.json()
    assert {key: body[key] for key in ("new_text", "category", "confidence", "classification_reasons",
                                       "classified_by", "lead", "outbound_email", "campaign")} == {
        "new_text": "Sounds good, call me on Tuesday.", "category": "POSITIVE", "confidence": 0.9,
        "classification_reasons": ["positive phrase"], "classified_by": "rules", "lead": replies["lead_a"].pk,
        "outbound_email": replies["outbound"].pk, "campaign": replies["a"].pk}
    assert "raw_message" not in body


@pytest.mark.parametrize(("params", "expected"), [
    ({"category": "POSITIVE"}, ["Re: yes"]),
    ({"unprocessed": "true"}, ["Who are you?"]),
    ({"unprocessed": "false"}, ["Away", "Re: yes"]),
    ({"received_after": "past"}, ["Re: yes"]),
    ({"received_before": "past"}, ["Who are you?", "Away"]),
])
def test_it_filters_the_replies(api, replies, params, expected):
    yesterday = (timezone.now() - timedelta(days=1)).isoformat()
    params = {key: yesterday if value == "past" else value for key, value in params.items()}
    assert subjects(api.get(REPLIES, params)) == expected


def test_it_filters_the_replies_by_the_campaign_of_their_email_or_else_their_lead(api, replies):
    assert subjects(api.get(REPLIES, {"campaign": replies["a"].pk})) == ["Re: yes"]
    assert subjects(api.get(REPLIES, {"campaign": replies["b"].pk})) == ["Away"]
    assert api.get(REPLIES, {"campaign": replies["b"].pk}).json()["results"][0]["campaign"] == replies["b"].pk


@pytest.mark.parametrize(("params", "field"), [
    ({"category": "happy"}, "category"),
    ({"unprocessed": "maybe"}, "unprocessed"),
    ({"campaign": "x"}, "campaign"),
    ({"campaign": str(2**64)}, "campaign"),
    ({"received_after": "tuesday"}, "received_after"),
    ({"received_before": "2024-02-30T10:00"}, "received_before"),
    ({"search": "anna"}, "search"),
])
def test_it_refuses_bad_reply_filters_by_name(api, params, field):
    response = api.get(REPLIES, params)
    assert response.status_code == 400
    assert list(response.json()) == [field]


@pytest.mark.parametrize("pk", ["424242", str(2**70)])
def test_it_answers_404_for_an_unknown_reply(api, pk):
    assert api.get(f"{REPLIES}{pk}/").status_code == 404
    assert api.post(f"{REPLIES}{pk}/reclassify/", {"category": "NEGATIVE"}, format="json").status_code == 404


def test_it_refuses_the_replies_without_credentials(anon_api, replies):
    assert anon_api.get(REPLIES).status_code == 401
    assert anon_api.get(reply_url(replies["positive"].pk)).status_code == 401


def test_it_reclassifies_a_reply_and_applies_the_follow_up_naming_the_key(api, replies):
    response = api.post(reclassify_url(replies["positive"].pk), {"category": "NEGATIVE"}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert (body["category"], body["confidence"], body["classified_by"]) == ("NEGATIVE", 1.0, "api-key:full key")
    assert body["classification_reasons"][0] == "read as negative by api-key:full key"
    inbound = InboundEmail.objects.get(pk=replies["positive"].pk)
    assert inbound.category == "NEGATIVE"
    lead = Lead.objects.get(pk=replies["lead_a"].pk)
    assert lead.status == Lead.Status.NOT_INTERESTED
    assert lead.events.get().actor == "api-key:full key"


def test_it_reclassifies_for_a_staff_session_naming_the_user(admin_client, superuser, replies):
    response = admin_client.post(reclassify_url(replies["ooo"].pk), {"category": "POSITIVE"},
                                 content_type="application/json")
    assert response.status_code == 200
    assert response.json()["classified_by"] == f"staff:{superuser.username}"
    assert HumanAlertLog.objects.filter(inbound_email=replies["ooo"]).exists()


def test_it_reclassifies_a_reply_that_matched_no_lead(api, replies):
    response = api.post(reclassify_url(replies["unmatched"].pk), {"category": "NEUTRAL"}, format="json")
    assert response.status_code == 200
    assert (response.json()["category"], response.json()["lead"]) == ("NEUTRAL", None)
    assert response.json()["processed_at"] is not None


def test_it_refuses_an_unknown_category_listing_the_valid_ones(api, replies):
    response = api.post(reclassify_url(replies["positive"].pk), {"category": "HAPPY"}, format="json")
    assert response.status_code == 400
    [message] = response.json()["category"]
    assert message.startswith('"HAPPY" is not a category; choose one of POSITIVE, NEGATIVE, UNSUBSCRIBE')
    assert InboundEmail.objects.get(pk=replies["positive"].pk).category == "POSITIVE"


@pytest.mark.parametrize(("body", "field"), [
    ({}, "category"),
    ({"category": 7}, "category"),
    ({"category": "NEGATIVE", "note": "x"}, "note"),
])
def test_it_refuses_a_bad_reclassify_body_by_field(api, replies, body, field):
    response = api.post(reclassify_url(replies["positive"].pk), body, format="json")
    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_it_refuses_a_reclassify_with_a_read_only_key_or_none(read_api, anon_api, replies):
    url = reclassify_url(replies["positive"].pk)
    assert read_api.post(url, {"category": "NEGATIVE"}, format="json").status_code == 403
    assert anon_api.post(url, {"category": "NEGATIVE"}, format="json").status_code == 401
    assert InboundEmail.objects.get(pk=replies["positive"].pk).category == "POSITIVE"


@pytest.mark.parametrize("rows", [1, 3])
def test_it_lists_the_replies_in_a_fixed_number_of_queries(api, django_assert_num_queries, rows):
    for _ in range(rows):
        lead = factories.LeadFactory()
        factories.InboundEmailFactory(lead=lead, outbound_email=factories.OutboundEmailFactory(lead=lead))
    api.get(REPLIES)
    with django_assert_num_queries(8):  # with the address's failed-key counter (cam.api.key_guesses)
        assert len(api.get(REPLIES).json()["results"]) == rows


# -- bounces and complaints that prove nothing are held for a person ----------------------------

FORGED = ("From: MAILER-DAEMON@attacker.example\r\nTo: alex@outreach.test\r\n"
          "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
          'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
          "--b\r\nContent-Type: text/plain\r\n\r\nNot delivered.\r\n"
          "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.attacker.example\r\n\r\n"
          "Final-Recipient: rfc822; anna@brightlane.test\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--b--\r\n")


@pytest.fixture
def held(replies) -> InboundEmail:
    """A forged bounce naming Anna, read and held by the inbox step."""
    from cam.inbox.processing import replies_process

    inbound = factories.InboundEmailFactory(raw_message=FORGED.encode(), from_email="mailer-daemon@attacker.example",
                                            subject="Undelivered Mail Returned to Sender", in_reply_to="",
                                            references="", received_at=timezone.now())
    replies_process()
    inbound.refresh_from_db()
    assert (inbound.category, inbound.confirmation, inbound.lead_id) == ("BOUNCE_HARD", "NEEDED",
                                                                         replies["lead_a"].pk)
    return inbound


def test_it_shows_and_filters_the_held_replies(api, held):
    body = api.get(reply_url(held.pk)).json()
    assert (body["confirmation"], body["needs_confirmation"], body["confirmation_by"]) == ("NEEDED", True, "")
    assert any("unproven" in reason for reason in body["classification_reasons"])
    assert [row["id"] for row in api.get(REPLIES, {"confirmation": "NEEDED"}).json()["results"]] == [held.pk]
    assert api.get(REPLIES, {"confirmation": "maybe"}).status_code == 400


def test_confirming_a_held_bounce_applies_it_naming_the_key(api, replies, held):
    response = api.post(reverse("cam-api:reply-confirm", args=[held.pk]))
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["confirmation"], body["needs_confirmation"], body["confirmation_by"]) == (
        "CONFIRMED", False, "api-key:full key")
    lead = Lead.objects.get(pk=replies["lead_a"].pk)
    assert lead.status == Lead.Status.BOUNCED
    assert lead.events.get().actor == "api-key:full key"
    assert "confirmed by api-key:full key" in Suppression.objects.get(email=lead.email).source

    again = api.post(reverse("cam-api:reply-confirm", args=[held.pk]))
    assert again.status_code == 409
    assert "already confirmed" in again.json()["detail"]


def test_dismissing_a_held_bounce_leaves_the_lead(api, replies, held):
    response = api.post(reverse("cam-api:reply-dismiss", args=[held.pk]))
    assert (response.status_code, response.json()["confirmation"]) == (200, "DISMISSED")
    assert Lead.objects.get(pk=replies["lead_a"].pk).status == Lead.Status.IN_SEQUENCE
    assert not Suppression.objects.exists()
    assert api.post(reverse("cam-api:reply-confirm", args=[held.pk])).status_code == 409


def test_only_a_held_reply_can_be_confirmed_or_dismissed(api, replies, read_api, held):
    for name in ("confirm", "dismiss"):
        response = api.post(reverse(f"cam-api:reply-{name}", args=[replies["positive"].pk]))
        assert response.status_code == 409
        assert "not waiting to be confirmed" in response.json()["detail"]
        assert read_api.post(reverse(f"cam-api:reply-{name}", args=[held.pk])).status_code == 403
    assert Lead.objects.get(pk=replies["lead_a"].pk).status == Lead.Status.IN_SEQUENCE


# -- a final status stays: nothing brings a lead back out of UNSUBSCRIBED or BOUNCED -------------

def reclassify(api, inbound, category: str) -> dict:
    response = api.post(reclassify_url(inbound.pk), {"category": category}, format="json")
    assert response.status_code == 200, response.json()
    return response.json()


@pytest.mark.parametrize("later", ["POSITIVE", "QUESTION", "REFERRAL", "NEGATIVE", "NEUTRAL", "OUT_OF_OFFICE",
                                   "BOUNCE_SOFT", "BOUNCE_HARD", "AUTO_REPLY"])
def test_reclassifying_an_unsubscribe_leaves_the_lead_unsubscribed(api, replies, later):
    inbound, lead = replies["positive"], replies["lead_a"]
    reclassify(api, inbound, "UNSUBSCRIBE")
    assert Lead.objects.get(pk=lead.pk).status == Lead.Status.UNSUBSCRIBED

    body = reclassify(api, inbound, later)

    assert body["category"] == later
    assert InboundEmail.objects.get(pk=inbound.pk).category == later
    lead.refresh_from_db()
    assert (lead.status, lead.next_send_at, lead.paused_until) == (Lead.Status.UNSUBSCRIBED, None, None)
    assert Suppression.objects.filter(email=lead.email).exists()
    last = lead.events.order_by("-id").first()
    if later != "AUTO_REPLY":  # an automatic reply changes nothing, so there is nothing to record
        assert (last.from_status, last.to_status, last.actor) == ("UNSUBSCRIBED", "UNSUBSCRIBED", "api-key:full key")
        assert "the lead stays UNSUBSCRIBED" in last.reason
        assert last.inbound_email_id == inbound.pk
    assert not OutboundEmail.objects.filter(status__in=["PENDING", "RETRY"]).exists()


@pytest.mark.parametrize("later", ["POSITIVE", "NEGATIVE", "NEUTRAL", "OUT_OF_OFFICE", "BOUNCE_SOFT"])
def test_reclassifying_a_hard_bounce_leaves_the_lead_bounced(api, replies, later):
    inbound, lead = replies["positive"], replies["lead_a"]
    reclassify(api, inbound, "BOUNCE_HARD")

    reclassify(api, inbound, later)

    lead.refresh_from_db()
    assert lead.status == Lead.Status.BOUNCED
    last = lead.events.order_by("-id").first()
    assert (last.from_status, last.to_status) == ("BOUNCED", "BOUNCED")
    assert "the lead stays BOUNCED" in last.reason


@pytest.mark.parametrize("later", ["UNSUBSCRIBE", "COMPLAINT"])
def test_a_bounced_lead_may_still_become_unsubscribed(api, replies, later):
    inbound, lead = replies["positive"], replies["lead_a"]
    reclassify(api, inbound, "BOUNCE_HARD")

    reclassify(api, inbound, later)

    lead.refresh_from_db()
    assert lead.status == Lead.Status.UNSUBSCRIBED
    assert lead.events.order_by("-id").first().from_status == "BOUNCED"


def test_a_final_lead_keeps_its_status_but_a_warm_reply_still_reaches_a_person(api, replies):
    inbound, lead = replies["positive"], replies["lead_a"]
    reclassify(api, inbound, "UNSUBSCRIBE")

    reclassify(api, inbound, "POSITIVE")

    assert Lead.objects.get(pk=lead.pk).status == Lead.Status.UNSUBSCRIBED
    assert HumanAlertLog.objects.filter(inbound_email=inbound).count() == 1


def test_a_soft_bounce_for_a_final_lead_is_not_retried(api, replies):
    inbound, outbound = replies["positive"], replies["outbound"]
    reclassify(api, inbound, "UNSUBSCRIBE")

    reclassify(api, inbound, "BOUNCE_SOFT")

    outbound.refresh_from_db()
    assert (outbound.status, outbound.soft_bounces, outbound.next_attempt_at) == ("SENT", 0, None)


# -- a closed lead stays closed: a reply does not reopen it or move it sideways --------------------

def lead_status(api, lead, status: str) -> None:
    response = api.post(reverse("cam-api:lead-status", args=[lead.pk]), {"status": status}, format="json")
    assert response.status_code == 200, response.json()


@pytest.mark.parametrize("closed", ["DEAD", "WON"])
def test_an_absence_reclassified_on_a_closed_lead_does_not_pause_it_or_bring_it_back(api, replies, closed):
    inbound, lead = replies["positive"], replies["lead_a"]
    lead_status(api, lead, closed)

    reclassify(api, inbound, "OUT_OF_OFFICE")

    lead.refresh_from_db()
    assert (lead.status, lead.paused_until, lead.next_send_at) == (closed, None, None)
    last = lead.events.order_by("-id").first()
    assert (last.from_status, last.to_status, last.actor, last.inbound_email_id) == (
        closed, closed, "api-key:full key", inbound.pk)
    assert f"the lead stays {closed}" in last.reason
    assert leads_resume_paused(now=timezone.now() + timedelta(days=30)) == 0
    assert Lead.objects.get(pk=lead.pk).status == closed


CLOSED = ["INTERESTED", "REFERRED", "NOT_INTERESTED", "NURTURE", "DEAD", "WON", "LOST"]


@pytest.mark.parametrize("closed", CLOSED)
@pytest.mark.parametrize("later", ["POSITIVE", "QUESTION", "REFERRAL", "NEGATIVE", "NEUTRAL", "OUT_OF_OFFICE",
                                   "BOUNCE_SOFT", "AUTO_REPLY", "UNSUBSCRIBE", "BOUNCE_HARD"])
def test_reclassifying_a_reply_on_a_closed_lead(api, replies, closed, later):
    inbound, lead, outbound = replies["positive"], replies["lead_a"], replies["outbound"]
    lead_status(api, lead, closed)

    reclassify(api, inbound, later)

    reopened = closed in ("NOT_INTERESTED", "NURTURE", "DEAD")
    # A sale stays a sale through an address stop (the address is suppressed all the same).
    stopped = closed if closed == "WON" else None
    status = {"UNSUBSCRIBE": stopped or "UNSUBSCRIBED", "BOUNCE_HARD": stopped or "BOUNCED",
              "POSITIVE": "INTERESTED" if reopened else closed, "QUESTION": "INTERESTED" if reopened else closed,
              "REFERRAL": "REFERRED" if reopened else closed}.get(later, closed)
    lead.refresh_from_db()
    assert (lead.status, lead.paused_until, lead.next_send_at) == (status, None, None)
    outbound.refresh_from_db()
    assert (outbound.status, outbound.soft_bounces) == ("SENT", 0)
    assert HumanAlertLog.objects.filter(inbound_email=inbound).count() == (later in ("POSITIVE", "QUESTION",
                                                                                       "REFERRAL"))
    if later != "AUTO_REPLY":
        last = lead.events.order_by("-id").first()
        assert (last.from_status, last.to_status, last.inbound_email_id) == (closed, status, inbound.pk)
