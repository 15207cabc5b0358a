"""The suppression list: list, add, read, remove — and an added address is not mailed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from cam.models import Lead, Mailbox, OutboundEmail, Suppression
from cam.outreach.planning import outreach_plan
from cam.outreach.sending import outreach_send
from tests import factories

pytestmark = pytest.mark.django_db

SUPPRESSIONS = reverse("cam-api:suppression-list")


def suppression_url(pk) -> str:
    return f"{SUPPRESSIONS}{pk}/"


def listed(response) -> list[str]:
    assert response.status_code == 200, response.json()
    return [row["email"] or f"@{row['domain']}" for row in response.json()["results"]]


@pytest.fixture
def suppressions():
    now = timezone.now()
    rows = [
        factories.SuppressionFactory(email="jane@acme.test", reason="UNSUBSCRIBED", source="unsubscribe page"),
        factories.SuppressionFactory(email="", domain="spamtrap.test", reason="COMPLAINT", note="Known trap"),
        factories.SuppressionFactory(email="bob@bounce.test", reason="HARD_BOUNCE"),
    ]
    for age, row in enumerate(rows):
        Suppression.objects.filter(pk=row.pk).update(created_at=now - timedelta(hours=age))
    return rows


def test_it_lists_the_suppressions_newest_first(read_api, suppressions):
    response = read_api.get(SUPPRESSIONS)
    assert listed(response) == ["jane@acme.test", "@spamtrap.test", "bob@bounce.test"]
    assert response.json()["results"][0]["reason"] == "UNSUBSCRIBED"


@pytest.mark.parametrize(("params", "expected"), [
    ({"reason": "HARD_BOUNCE"}, ["bob@bounce.test"]),
    ({"search": "ACME"}, ["jane@acme.test"]),
    ({"search": "spamtrap"}, ["@spamtrap.test"]),
    ({"search": "known trap"}, ["@spamtrap.test"]),
    ({"search": "unsubscribe page"}, ["jane@acme.test"]),
    ({"search": "nobody"}, []),
])
def test_it_filters_the_suppressions(api, suppressions, params, expected):
    assert listed(api.get(SUPPRESSIONS, params)) == expected


@pytest.mark.parametrize(("params", "field"), [
    ({"reason": "BORED"}, "reason"),
    ({"search": "x" * 300}, "search"),
    ({"email": "jane@acme.test"}, "email"),
])
def test_it_refuses_bad_suppression_filters_by_name(api, params, field):
    response = api.get(SUPPRESSIONS, params)
    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_it_adds_a_normalised_address_naming_the_key(api):
    response = api.post(SUPPRESSIONS, {"email": "  Jane.Doe@Example.COM ", "note": "asked by phone"}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert {key: body[key] for key in ("email", "domain", "reason", "source", "note")} == {
        "email": "jane.doe@example.com", "domain": "", "reason": "MANUAL", "source": "api-key:full key",
        "note": "asked by phone"}
    assert Suppression.objects.get().pk == body["id"]
    assert api.get(suppression_url(body["id"])).json() == body


def test_it_adds_a_domain(admin_client, superuser):
    response = admin_client.post(SUPPRESSIONS, {"domain": "@Competitor.TEST", "reason": "MANUAL"},
                                 content_type="application/json")
    assert response.status_code == 201
    assert (response.json()["email"], response.json()["domain"], response.json()["source"]) == (
        "", "competitor.test", f"staff:{superuser.username}")


def test_it_answers_200_with_the_existing_row_when_the_address_is_already_suppressed(api, suppressions):
    response = api.post(SUPPRESSIONS, {"email": "JANE@acme.test", "reason": "COMPLAINT"}, format="json")
    assert response.status_code == 200
    assert (response.json()["id"], response.json()["reason"]) == (suppressions[0].pk, "UNSUBSCRIBED")
    assert Suppression.objects.count() == 3


@pytest.mark.parametrize(("body", "fields"), [
    ({}, ["domain", "email"]),
    ({"email": "jane@acme.test", "domain": "acme.test"}, ["domain", "email"]),
    ({"email": "not an address"}, ["email"]),
    ({"email": 42}, ["email"]),
    ({"domain": "no_such domain"}, ["domain"]),
    ({"email": "jane@acme.test", "reason": "BORED"}, ["reason"]),
    ({"email": "jane@acme.test", "lead": 3}, ["lead"]),
    ({"email": "j" * 300 + "@acme.test"}, ["email"]),
])
def test_it_refuses_a_bad_suppression_by_field(api, body, fields):
    response = api.post(SUPPRESSIONS, body, format="json")
    assert response.status_code == 400
    assert sorted(response.json()) == fields
    assert not Suppression.objects.exists()


def test_it_refuses_adding_with_a_read_only_key_or_none(read_api, anon_api):
    assert read_api.post(SUPPRESSIONS, {"email": "jane@acme.test"}, format="json").status_code == 403
    assert anon_api.post(SUPPRESSIONS, {"email": "jane@acme.test"}, format="json").status_code == 401
    assert anon_api.get(SUPPRESSIONS).status_code == 401
    assert not Suppression.objects.exists()


def test_it_removes_a_suppression(api, suppressions):
    response = api.delete(suppression_url(suppressions[1].pk))
    assert response.status_code == 204
    assert not Suppression.objects.filter(pk=suppressions[1].pk).exists()
    assert api.get(suppression_url(suppressions[1].pk)).status_code == 404


def test_it_refuses_removing_with_a_read_only_key_or_none(read_api, anon_api, suppressions):
    assert read_api.delete(suppression_url(suppressions[0].pk)).status_code == 403
    assert anon_api.delete(suppression_url(suppressions[0].pk)).status_code == 401
    assert Suppression.objects.count() == 3


@pytest.mark.parametrize("pk", ["31337", str(2**70)])
def test_it_answers_404_for_an_unknown_suppression(api, pk):
    assert api.get(suppression_url(pk)).status_code == 404
    assert api.delete(suppression_url(pk)).status_code == 404


def test_an_address_added_between_planning_and_sending_is_not_mailed(api, smtp_server):
    mailbox = factories.MailboxFactory(provider=Mailbox.Provider.SMTP, smtp_host=smtp_server.host,
                                       smtp_port=smtp_server.port, smtp_security="none", min_gap_seconds=0)
    campaign = factories.CampaignFactory(send_days=[1, 2, 3, 4, 5, 6, 7], send_start_hour=0, send_end_hour=24)
    campaign.mailboxes.set([mailbox])
    factories.SequenceStepFactory(campaign=campaign, position=1)
    due = {"campaign": campaign, "status": Lead.Status.IN_SEQUENCE,
           "next_send_at": timezone.now() - timedelta(minutes=1)}
    factories.LeadFactory(email="anna@brightlane.test", **due)
    factories.LeadFactory(email="ben@brightlane.test", **due)
    assert outreach_plan()["planned"] == 2

    assert api.post(SUPPRESSIONS, {"email": "Anna@Brightlane.test"}, format="json").status_code == 201
    outreach_send(inline=True)

    assert [message.rcpt_tos for message in smtp_server.messages] == [["ben@brightlane.test"]]
    stopped = OutboundEmail.objects.get(to_email="anna@brightlane.test")
    assert (stopped.status, stopped.last_error) == (OutboundEmail.Status.CANCELLED, "Address or domain suppressed.")


def test_a_suppressed_domain_is_held_back_at_planning(api):
    campaign = factories.CampaignFactory(send_days=[1, 2, 3, 4, 5, 6, 7], send_start_hour=0, send_end_hour=24)
    campaign.mailboxes.set([factories.MailboxFactory(min_gap_seconds=0)])
    factories.SequenceStepFactory(campaign=campaign, position=1)
    lead = factories.LeadFactory(email="anna@brightlane.test", campaign=campaign, status=Lead.Status.IN_SEQUENCE,
                                 next_send_at=timezone.now() - timedelta(minutes=1))

    assert api.post(SUPPRESSIONS, {"domain": "brightlane.test"}, format="json").status_code == 201

    assert outreach_plan()["planned"] == 0
    lead.refresh_from_db()
    assert lead.blocked_reason == "suppressed"
    assert not OutboundEmail.objects.exists()


@pytest.mark.parametrize("rows", [1, 3])
def test_it_lists_the_suppressions_in_a_fixed_number_of_queries(api, django_assert_num_queries, rows):
    factories.SuppressionFactory.create_batch(rows)
    api.get(SUPPRESSIONS)
    with django_assert_num_queries(8):  # with the address's failed-key counter (cam.api.key_guesses)
        assert len(api.get(SUPPRESSIONS).json()["results"]) == rows


# -- internationalised addresses: one spelling, as leads have it ---------------------------------

LEADS = reverse("cam-api:lead-list")


@pytest.mark.parametrize("given", ["üser@exämple.com", "  ÜSER@EXÄMPLE.COM ", "üser@xn--exmple-cua.com",
                                   "Üser@XN--EXMPLE-CUA.com"])
def test_it_suppresses_an_internationalised_address_in_any_spelling_as_a_lead_stores_it(api, given):
    response = api.post(SUPPRESSIONS, {"email": given}, format="json")

    assert response.status_code == 201, response.json()
    assert (response.json()["email"], response.json()["domain"]) == ("üser@exämple.com", "")


@pytest.mark.parametrize("given", ["exämple.com", " EXÄMPLE.com ", "xn--exmple-cua.com", "@XN--EXMPLE-CUA.COM"])
def test_it_suppresses_an_internationalised_domain_in_any_spelling(api, given):
    response = api.post(SUPPRESSIONS, {"domain": given}, format="json")

    assert response.status_code == 201, response.json()
    assert (response.json()["email"], response.json()["domain"]) == ("", "exämple.com")


@pytest.mark.parametrize(("first", "again"), [
    ({"email": "üser@exämple.com"}, {"email": "ÜSER@xn--exmple-cua.com"}),
    ({"domain": "xn--exmple-cua.com"}, {"domain": "EXÄMPLE.COM"}),
])
def test_a_second_spelling_of_a_suppressed_address_or_domain_finds_the_same_row(api, first, again):
    row = api.post(SUPPRESSIONS, first, format="json").json()

    response = api.post(SUPPRESSIONS, again, format="json")

    assert (response.status_code, response.json()["id"]) == (200, row["id"])
    assert Suppression.objects.count() == 1


def test_a_row_stored_in_punycode_is_found_again_in_unicode(api):
    row = factories.SuppressionFactory(email="", domain="xn--exmple-cua.com")

    response = api.post(SUPPRESSIONS, {"domain": "exämple.com"}, format="json")

    assert (response.status_code, response.json()["id"]) == (200, row.pk)


@pytest.mark.parametrize("body", [
    {"email": "anna@acme.test"}, {"email": "anna@printer.local"}, {"email": "root@localhost"},
    {"domain": "acme.test"}, {"domain": "printer.local"},
])
def test_it_accepts_reserved_domains_a_lead_may_have(api, body):
    response = api.post(SUPPRESSIONS, body, format="json")

    assert response.status_code == 201, response.json()


@pytest.mark.parametrize("suppression", [{"domain": "xn--exmple-cua.com"}, {"domain": "exämple.com"},
                                         {"email": "FOURTH@xn--exmple-cua.com"}])
def test_a_lead_in_any_spelling_of_a_suppressed_address_or_domain_is_refused(api, suppression):
    campaign = factories.CampaignFactory()
    assert api.post(SUPPRESSIONS, suppression, format="json").status_code == 201

    for email in ("fourth@exämple.com", "Fourth@XN--EXMPLE-CUA.COM"):
        response = api.post(LEADS, {"campaign": campaign.pk, "email": email}, format="json")
        assert response.status_code == 400, response.json()
        assert "suppression list" in response.json()["email"][0]
    assert not Lead.objects.exists()


def test_a_lead_at_another_internationalised_domain_is_still_accepted(api):
    campaign = factories.CampaignFactory()
    assert api.post(SUPPRESSIONS, {"domain": "exämple.com"}, format="json").status_code == 201

    response = api.post(LEADS, {"campaign": campaign.pk, "email": "fourth@exämple.org"}, format="json")

    assert response.status_code == 201, response.json()


def due_lead(email: str, **options) -> Lead:
    campaign = factories.CampaignFactory(send_days=[1, 2, 3, 4, 5, 6, 7], send_start_hour=0, send_end_hour=24)
    campaign.mailboxes.set([options.pop("mailbox", None) or factories.MailboxFactory(min_gap_seconds=0)])
    factories.SequenceStepFactory(campaign=campaign, position=1)
    return factories.LeadFactory(email=email, campaign=campaign, status=Lead.Status.IN_SEQUENCE,
                                 next_send_at=timezone.now() - timedelta(minutes=1))


@pytest.mark.parametrize(("lead_email", "suppression"), [
    ("üser@exämple.com", {"domain": "xn--exmple-cua.com"}),
    ("üser@exämple.com", {"email": "ÜSER@xn--exmple-cua.com"}),
    # A lead stored in punycode (as the admin may store it) against a suppression added in Unicode.
    ("user@xn--exmple-cua.com", {"domain": "exämple.com"}),
    ("user@xn--exmple-cua.com", {"email": "USER@exämple.com"}),
])
def test_an_internationalised_lead_is_held_back_at_planning_whatever_the_spelling(api, lead_email, suppression):
    lead = due_lead(lead_email)

    assert api.post(SUPPRESSIONS, suppression, format="json").status_code == 201

    assert outreach_plan()["planned"] == 0
    lead.refresh_from_db()
    assert lead.blocked_reason == "suppressed"
    assert not OutboundEmail.objects.exists()


@pytest.mark.parametrize("suppression", [{"domain": "XN--EXMPLE-CUA.COM"}, {"email": "üser@xn--exmple-cua.com"}])
def test_an_internationalised_address_suppressed_after_planning_is_not_sent(api, smtp_server, suppression):
    mailbox = factories.MailboxFactory(provider=Mailbox.Provider.SMTP, smtp_host=smtp_server.host,
                                       smtp_port=smtp_server.port, smtp_security="none", min_gap_seconds=0)
    due_lead("üser@exämple.com", mailbox=mailbox)
    assert outreach_plan()["planned"] == 1

    assert api.post(SUPPRESSIONS, suppression, format="json").status_code == 201
    outreach_send(inline=True)

    assert smtp_server.messages == []
    stopped = OutboundEmail.objects.get()
    assert (stopped.status, stopped.last_error) == (OutboundEmail.Status.CANCELLED, "Address or domain suppressed.")
