"""The leads endpoints: list with filters, read, create, bulk create and status changes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from cam.models import HarvestRejection, Lead, LeadEvent, OutboundEmail, Suppression
from tests.factories import (
    CampaignFactory,
    LeadFactory,
    OutboundEmailFactory,
    SuppressionFactory,
)

pytestmark = pytest.mark.django_db

Status = Lead.Status
LIST = reverse("cam-api:lead-list")
BULK = reverse("cam-api:lead-bulk")


def detail(pk) -> str:
    return reverse("cam-api:lead-detail", args=[pk])


def status_url(pk) -> str:
    return reverse("cam-api:lead-status", args=[pk])


def ids(response) -> list[int]:
    assert response.status_code == 200, response.json()
    return [lead["id"] for lead in response.json()["results"]]


# -- list and read -------------------------------------------------------------------------------

def test_it_lists_leads_newest_first(read_api):
    older = LeadFactory()
    newer = LeadFactory()

    response = read_api.get(LIST)

    assert ids(response) == [newer.pk, older.pk]
    assert response.json()["results"][0]["email"] == newer.email


def test_it_filters_by_campaign_status_and_score(read_api):
    campaign = CampaignFactory()
    match = LeadFactory(campaign=campaign, status=Status.QUALIFIED, score=70)
    LeadFactory(campaign=campaign, status=Status.QUALIFIED, score=40)
    LeadFactory(campaign=campaign, status=Status.NEW, score=70)
    LeadFactory(campaign=campaign, status=Status.QUALIFIED, score=None)
    LeadFactory(status=Status.QUALIFIED, score=70)

    response = read_api.get(LIST, {"campaign": campaign.pk, "status": "QUALIFIED", "score_min": 50, "score_max": 90})

    assert ids(response) == [match.pk]


def test_it_filters_by_creation_time(read_api):
    now = timezone.now()
    leads = LeadFactory.create_batch(3)
    for days, lead in zip((10, 5, 1), leads, strict=True):
        Lead.objects.filter(pk=lead.pk).update(created_at=now - timedelta(days=days))

    response = read_api.get(LIST, {"created_after": (now - timedelta(days=7)).isoformat(),
                                   "created_before": (now - timedelta(days=2)).date().isoformat()})

    assert ids(response) == [leads[1].pk]


def test_it_searches_email_name_and_company_word_by_word(read_api):
    anna = LeadFactory(email="anna@brightlane.example.com", first_name="Anna", last_name="Schmidt",
                       company="Brightlane Software")
    LeadFactory(email="anna@other.example.com", first_name="Anna", last_name="Meier", company="Other")
    LeadFactory(email="jo@schmidt.example.com", first_name="Jo", last_name="Weber", company="Weber AG")

    assert ids(read_api.get(LIST, {"search": "anna SCHMIDT"})) == [anna.pk]
    assert ids(read_api.get(LIST, {"search": "brightlane"})) == [anna.pk]


@pytest.mark.parametrize(("query", "field"), [
    ({"campaign": "first"}, "campaign"),
    ({"campaign": str(10**30)}, "campaign"),
    ({"status": "HAPPY"}, "status"),
    ({"status": ""}, "status"),
    ({"score_min": "high"}, "score_min"),
    ({"score_min": "101"}, "score_min"),
    ({"score_max": "-1"}, "score_max"),
    ({"score_min": "80", "score_max": "20"}, "score_max"),
    ({"created_after": "yesterday"}, "created_after"),
    ({"created_before": "2024-13-45"}, "created_before"),
    ({"created_after": "2024-06-01", "created_before": "2024-01-01"}, "created_before"),
    ({"search": "x" * 201}, "search"),
])
def test_it_refuses_bad_filters_naming_them(read_api, query, field):
    response = read_api.get(LIST, query)

    assert response.status_code == 400
    assert list(response.json()) == [field]


@pytest.mark.parametrize("query", [{"bogus": "1"}, {"status": "NEW", "bogus": "1"}, {"score": "5"}])
def test_it_refuses_an_unknown_list_parameter_naming_it(read_api, query):
    response = read_api.get(LIST, query)

    assert response.status_code == 400
    assert response.json() == {name: ["Unknown query parameter."] for name in query if name != "status"}


def test_it_keeps_the_search_pagination_and_format_parameters(read_api):
    campaign = CampaignFactory()
    LeadFactory(campaign=campaign, email="anna@brightlane.example.com")
    LeadFactory(campaign=campaign, email="bo@brightlane.example.com")
    response = read_api.get(LIST, {"search": "brightlane", "page": 2, "page_size": 1, "format": "json"})
    assert response.status_code == 200, response.json()
    assert (response.json()["count"], len(response.json()["results"])) == (2, 1)


@pytest.mark.parametrize("count", [1, 3])
def test_it_lists_leads_in_the_same_number_of_queries_whatever_their_number(read_api, django_assert_num_queries,
                                                                             count):
    campaign = CampaignFactory()
    LeadFactory.create_batch(count, campaign=campaign, score=60)
    read_api.get(LIST)  # warm up the throttle's cache row

    # The address's failed-key counter (1), the key (1), the throttle's counter (4: an atomic increment), the count
    # and the page (2).
    with django_assert_num_queries(8):
        response = read_api.get(LIST, {"campaign": campaign.pk, "score_min": 50, "search": "lead"})

    assert len(response.json()["results"]) == count


def test_it_reads_a_lead(read_api):
    lead = LeadFactory(email="anna@brightlane.example.com", first_name="Anna", last_name="Schmidt", score=72)

    body = read_api.get(detail(lead.pk)).json()

    assert (body["email"], body["email_domain"], body["full_name"], body["score"], body["campaign"]) == (
        "anna@brightlane.example.com", "brightlane.example.com", "Anna Schmidt", 72, lead.campaign_id)


@pytest.mark.parametrize("pk", ["999999", "x1", str(10**30)])
def test_it_answers_404_for_an_unknown_lead(read_api, pk):
    assert read_api.get(f"{LIST}{pk}/").status_code == 404


def test_it_refuses_to_list_without_credentials(anon_api):
    LeadFactory()

    response = anon_api.get(LIST)

    assert response.status_code == 401
    assert "results" not in response.json()


# -- create ----------------------------------------------------------------------------------------

def test_it_adds_a_lead_with_its_address_normalised(api):
    campaign = CampaignFactory()

    response = api.post(LIST, {"campaign": campaign.pk, "email": "  Info@Brightlane.Example.COM ",
                               "first_name": "Anna", "company_size": 120, "timezone": "Europe/Berlin",
                               "website": "https://brightlane.example.com"}, format="json")

    assert response.status_code == 201, response.json()
    lead = Lead.objects.get(campaign=campaign)
    assert (lead.email, lead.is_role_account, lead.is_free_mail, lead.status, lead.first_name, lead.company_size) == (
        "info@brightlane.example.com", True, False, Status.NEW, "Anna", 120)
    assert response.json()["id"] == lead.pk
    assert response.json()["email_domain"] == "brightlane.example.com"


def test_it_refuses_an_address_already_a_lead_of_the_campaign(api):
    lead = LeadFactory(email="anna@brightlane.example.com")
    LeadFactory(email="jo@brightlane.example.com")  # in another campaign: no matter

    duplicate = api.post(LIST, {"campaign": lead.campaign_id, "email": "ANNA@brightlane.example.com"}, format="json")
    elsewhere = api.post(LIST, {"campaign": lead.campaign_id, "email": "jo@brightlane.example.com"}, format="json")

    assert duplicate.status_code == 400
    assert duplicate.json() == {"email": ["duplicate: anna@brightlane.example.com is already a lead in this "
                                          "campaign"]}
    assert elsewhere.status_code == 201


def test_it_updates_an_existing_lead_with_new_values_and_answers_200(api):
    lead = LeadFactory(email="anna@brightlane.example.com", title="Developer", company="Brightlane",
                       status=Status.IN_SEQUENCE, current_step=2)

    response = api.post(LIST, {"campaign": lead.campaign_id, "email": "Anna@Brightlane.example.com", "title": "CTO",
                               "company": ""}, format="json")

    assert response.status_code == 200, response.json()
    assert (response.json()["id"], response.json()["title"]) == (lead.pk, "CTO")
    lead.refresh_from_db()
    assert (lead.title, lead.company, lead.status, lead.current_step) == ("CTO", "Brightlane", Status.IN_SEQUENCE, 2)
    assert lead.raw_data == {"email": "Anna@Brightlane.example.com", "title": "CTO", "company": ""}
    assert Lead.objects.count() == 1


@pytest.mark.parametrize(("item", "field", "reason"), [
    ({"email": "not-an-address"}, "email", "invalid email 'not-an-address': "),
    ({"company_size": 20_000_000}, "company_size", "company_size '20000000' is not between 0 and 10,000,000"),
    ({"website": "not a url"}, "website", "website 'not a url' is not a web address"),
    ({"timezone": "Mars/Olympus"}, "timezone", "timezone 'Mars/Olympus' is not a known time zone"),
    ({"first_name": "B\x00en"}, "first_name", "the value of first_name holds a NUL character, which cannot be stored"),
])
def test_a_rejected_item_is_a_400_naming_the_field_and_a_harvest_rejection(api, item, field, reason):
    campaign = CampaignFactory()

    response = api.post(LIST, {"campaign": campaign.pk, "email": "anna@brightlane.example.com", **item},
                        format="json")

    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert response.json()[field][0].startswith(reason)
    rejection = HarvestRejection.objects.get(campaign=campaign)
    assert (rejection.line, rejection.reason[:len(reason)], rejection.source) == (0, reason, None)
    assert not Lead.objects.exists()


@pytest.mark.parametrize(("suppression", "message"), [
    ({"email": "anna@brightlane.example.com"}, "anna@brightlane.example.com is on the suppression list"),
    ({"email": "", "domain": "brightlane.example.com"}, "the domain brightlane.example.com is on the suppression list"),
])
def test_it_refuses_a_suppressed_address(api, suppression, message):
    SuppressionFactory(**suppression)
    campaign = CampaignFactory()

    response = api.post(LIST, {"campaign": campaign.pk, "email": "anna@brightlane.example.com"}, format="json")

    assert (response.status_code, response.json()) == (400, {"email": [message]})
    assert not Lead.objects.exists()


@pytest.mark.parametrize(("item", "field"), [
    ({"email": "not-an-address"}, "email"),
    ({"email": ""}, "email"),
    ({"email": None}, "email"),
    ({"campaign": 999999}, "campaign"),
    ({"campaign": "one"}, "campaign"),
    ({"campaign": 10**30}, "campaign"),
    ({"company_size": -5}, "company_size"),
    ({"company_size": "many"}, "company_size"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"website": "not a url"}, "website"),
    ({"first_name": "x" * 101}, "first_name"),
    ({"score": 90}, "score"),
    ({"status": "WON"}, "status"),
])
def test_it_refuses_a_bad_lead_naming_the_field(api, item, field):
    campaign = CampaignFactory()

    response = api.post(LIST, {"campaign": campaign.pk, "email": "anna@brightlane.example.com", **item},
                        format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert not Lead.objects.exists()


def test_it_refuses_a_read_only_key_to_add_a_lead(read_api):
    campaign = CampaignFactory()

    response = read_api.post(LIST, {"campaign": campaign.pk, "email": "anna@brightlane.example.com"}, format="json")

    assert response.status_code == 403
    assert not Lead.objects.exists()


def test_it_refuses_to_add_a_lead_without_credentials(anon_api):
    campaign = CampaignFactory()

    response = anon_api.post(LIST, {"campaign": campaign.pk, "email": "anna@brightlane.example.com"}, format="json")

    assert response.status_code == 401


# -- bulk create --------------------------------------------------------------------------------------

def test_it_saves_the_valid_items_and_reports_the_others_by_index(api):
    campaign = CampaignFactory()
    LeadFactory(campaign=campaign, email="known@brightlane.example.com")
    old = LeadFactory(campaign=campaign, email="old@brightlane.example.com", title="Developer")
    SuppressionFactory(email="blocked@brightlane.example.com")
    items = [
        {"campaign": campaign.pk, "email": "Anna@Brightlane.example.com", "first_name": "Anna"},
        {"campaign": campaign.pk, "email": "not-an-address"},
        {"campaign": campaign.pk, "email": "known@brightlane.example.com"},
        {"campaign": campaign.pk, "email": "blocked@brightlane.example.com"},
        {"campaign": campaign.pk, "email": "anna@brightlane.example.com"},
        {"campaign": 999999, "email": "jo@brightlane.example.com"},
        "not an object",
        {"campaign": campaign.pk, "email": "jo@brightlane.example.com", "colour": "red"},
        {"campaign": campaign.pk, "email": "jo@brightlane.example.com", "company": "Brightlane"},
        {"campaign": campaign.pk, "email": "known@brightlane.example.com", "title": "Head of Sales"},
        {"campaign": campaign.pk, "email": "old@brightlane.example.com", "title": "CTO"},
    ]

    response = api.post(BULK, {"leads": items}, format="json")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["created_count"], body["updated_count"], body["error_count"]) == (2, 1, 8)
    assert [(c["index"], c["lead"]["email"]) for c in body["created"]] == [
        (0, "anna@brightlane.example.com"), (8, "jo@brightlane.example.com")]
    assert [(u["index"], u["lead"]["id"], u["lead"]["title"]) for u in body["updated"]] == [(10, old.pk, "CTO")]
    errors = {error["index"]: error["errors"] for error in body["errors"]}
    assert sorted(errors) == [1, 2, 3, 4, 5, 6, 7, 9]
    assert list(errors[1]) == ["email"]
    assert errors[2] == {"email": ["duplicate: known@brightlane.example.com is already a lead in this campaign"]}
    assert errors[3] == {"email": ["blocked@brightlane.example.com is on the suppression list"]}
    assert errors[4] == {"email": ["duplicate: anna@brightlane.example.com is already item 0 of this request"]}
    assert errors[5] == {"campaign": ["No campaign with id 999999."]}
    assert list(errors[6]) == ["non_field_errors"]
    assert errors[7] == {"colour": ["Unknown field."]}
    # An earlier item's address, however the later one differs: the first item of an address decides.
    assert errors[9] == {"email": ["duplicate: known@brightlane.example.com is already item 2 of this request"]}
    assert set(Lead.objects.filter(campaign=campaign).values_list("email", "company")) == {
        ("known@brightlane.example.com", Lead.objects.get(email="known@brightlane.example.com").company),
        ("anna@brightlane.example.com", ""), ("jo@brightlane.example.com", "Brightlane"),
        ("old@brightlane.example.com", old.company)}


def test_it_refuses_more_items_than_the_limit(api, settings):
    settings.AICMO_CAM_API_BULK_MAX_ITEMS = 3
    campaign = CampaignFactory()
    items = [{"campaign": campaign.pk, "email": f"lead{n}@brightlane.example.com"} for n in range(4)]

    response = api.post(BULK, {"leads": items}, format="json")

    assert response.status_code == 400
    assert response.json() == {"leads": ["At most 3 leads per request; this one has 4."]}
    assert not Lead.objects.exists()


@pytest.mark.parametrize("odd", [None, 7, 1.5, True, False, "text", [], [{"campaign": 1}], [[[]]]],
                         ids=["null", "integer", "float", "true", "false", "string", "empty-list", "list",
                              "nested-lists"])
def test_an_item_that_is_not_an_object_is_that_items_error_and_the_others_are_saved(api, odd):
    campaign = CampaignFactory()
    items = [{"campaign": campaign.pk, "email": "anna@brightlane.example.com"}, odd,
             {"campaign": campaign.pk, "email": "jo@brightlane.example.com"}]

    response = api.post(BULK, {"leads": items}, format="json")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["created_count"], body["error_count"]) == (2, 1)
    assert [c["index"] for c in body["created"]] == [0, 2]
    assert [error["index"] for error in body["errors"]] == [1]
    assert list(body["errors"][0]["errors"]) == ["non_field_errors"]
    assert Lead.objects.filter(campaign=campaign).count() == 2


def test_a_deeply_nested_bulk_body_is_a_json_400(api):
    response = api.post(BULK, '{"leads": [' + "[" * 1000 + "]" * 1000 + "]}", content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {"detail": "The JSON body is nested more than 32 levels deep."}
    assert not Lead.objects.exists()


@pytest.mark.parametrize("body", [{"leads": []}, {"leads": "all"}, {}, {"leads": [], "campaign": 1}, [], None,
                                  {"leads": None}])
def test_it_refuses_a_malformed_bulk_request(api, body):
    response = api.post(BULK, body, format="json")

    assert response.status_code == 400


def test_it_refuses_a_read_only_key_to_bulk_create(read_api):
    campaign = CampaignFactory()

    response = read_api.post(BULK, {"leads": [{"campaign": campaign.pk, "email": "a@brightlane.example.com"}]},
                             format="json")

    assert response.status_code == 403
    assert not Lead.objects.exists()


def test_it_refuses_to_bulk_create_without_credentials(anon_api):
    assert anon_api.post(BULK, {"leads": []}, format="json").status_code == 401


def queries_to_bulk_create(api, count: int) -> int:
    """Queries to add ``count`` items to two campaigns: one suppressed, one already a lead, the rest new."""
    campaigns = CampaignFactory.create_batch(2)
    SuppressionFactory(email=f"blocked{count}@brightlane.example.com")
    LeadFactory(campaign=campaigns[0], email=f"known{count}@brightlane.example.com")
    items = [{"campaign": campaigns[0].pk, "email": f"blocked{count}@brightlane.example.com"},
             {"campaign": campaigns[0].pk, "email": f"known{count}@brightlane.example.com"},
             *({"campaign": campaigns[n % 2].pk, "email": f"lead{n}@brightlane.example.com", "first_name": "Anna"}
               for n in range(count - 2))]
    api.post(BULK, {"leads": [{"campaign": campaigns[1].pk, "email": f"warm{count}@brightlane.example.com"}]},
             format="json")  # warm up the throttle's cache row
    with CaptureQueriesContext(connection) as queries:
        response = api.post(BULK, {"leads": items}, format="json")
    assert (response.json()["created_count"], response.json()["error_count"]) == (count - 2, 2)
    return len(queries)


def test_it_bulk_creates_in_the_same_number_of_queries_for_10_and_100_items(api):
    few = queries_to_bulk_create(api, 10)

    assert few == queries_to_bulk_create(api, 100)
    # The address's failed-key counter (1), the key (1), the throttle's counter (4: an atomic increment), the
    # campaigns (1); then for each of the two campaigns the intake's batch: its savepoint and release, the
    # suppressions, the existing leads, the insert and the read of the leads created (6 each). On PostgreSQL
    # the insert is the staging table and the move across, and the move itself finds the existing leads: they
    # are read only for the campaign where it met one (6 and 7).
    assert few == (20 if connection.vendor == "postgresql" else 19)


# -- status changes ---------------------------------------------------------------------------------

def test_it_moves_a_lead_to_an_allowed_status_and_records_who_did_it(api):
    lead = LeadFactory(status=Status.IN_SEQUENCE, next_send_at=timezone.now())
    waiting = OutboundEmailFactory(lead=lead, status=OutboundEmail.Status.PENDING)

    response = api.post(status_url(lead.pk), {"status": "INTERESTED", "reason": "Called us back"}, format="json")

    assert response.status_code == 200, response.json()
    assert (response.json()["status"], response.json()["status_reason"], response.json()["next_send_at"]) == (
        "INTERESTED", "Called us back", None)
    event = LeadEvent.objects.get(lead=lead)
    assert (event.from_status, event.to_status, event.actor, event.reason) == (
        "IN_SEQUENCE", "INTERESTED", "api-key:full key", "Called us back")
    waiting.refresh_from_db()
    assert waiting.status == OutboundEmail.Status.CANCELLED


def test_it_names_a_staff_user_as_the_actor(admin_client):
    lead = LeadFactory(status=Status.INTERESTED)

    response = admin_client.post(status_url(lead.pk), {"status": "WON"}, content_type="application/json")

    assert response.status_code == 200
    event = LeadEvent.objects.get(lead=lead)
    assert (event.to_status, event.actor, event.reason) == (
        "WON", f"staff:{admin_client.user.username}", f"Set by staff:{admin_client.user.username}.")


def test_it_unsubscribes_through_the_suppression_list(api):
    lead = LeadFactory(status=Status.IN_SEQUENCE, email="anna@brightlane.example.com")
    elsewhere = LeadFactory(status=Status.QUALIFIED, email="anna@brightlane.example.com")

    response = api.post(status_url(lead.pk), {"status": "UNSUBSCRIBED", "reason": "asked on the phone"},
                        format="json")

    assert response.json()["status"] == "UNSUBSCRIBED"
    assert Suppression.objects.get(email="anna@brightlane.example.com").reason == Suppression.Reason.UNSUBSCRIBED
    elsewhere.refresh_from_db()
    assert elsewhere.status == Status.UNSUBSCRIBED


@pytest.mark.parametrize(("current", "wanted", "allowed"), [
    (Status.UNSUBSCRIBED, "IN_SEQUENCE", "INTERESTED, REFERRED, MEETING_BOOKED, NOT_INTERESTED, NURTURE, DEAD, WON, "
                                         "LOST"),
    (Status.BOUNCED, "QUALIFIED", "UNSUBSCRIBED, INTERESTED, REFERRED, MEETING_BOOKED, NOT_INTERESTED, NURTURE, DEAD, "
                                  "WON, LOST"),
    (Status.DEAD, "IN_SEQUENCE", "INTERESTED, REFERRED, MEETING_BOOKED, NOT_INTERESTED, NURTURE, WON, LOST, "
                                 "UNSUBSCRIBED, BOUNCED"),
    (Status.NEW, "WON", "DISQUALIFIED, DEAD, UNSUBSCRIBED, BOUNCED"),
    (Status.NEW, "MEETING_BOOKED", "DISQUALIFIED, DEAD, UNSUBSCRIBED, BOUNCED"),
    (Status.INTERESTED, "QUALIFIED", "REFERRED, MEETING_BOOKED, NOT_INTERESTED, NURTURE, DEAD, WON, LOST, "
                                     "UNSUBSCRIBED, BOUNCED"),
])
def test_it_refuses_a_transition_the_engine_does_not_allow(api, current, wanted, allowed):
    lead = LeadFactory(status=current)

    response = api.post(status_url(lead.pk), {"status": wanted}, format="json")

    assert response.status_code == 400
    assert response.json() == {"status": [f"A lead cannot go from {current} to {wanted}. Allowed from {current}: "
                                          f"{allowed}."]}
    lead.refresh_from_db()
    assert lead.status == current
    assert not LeadEvent.objects.exists()


@pytest.mark.parametrize("body", [{"status": "HAPPY"}, {}, {"status": 5}, {"status": "WON", "why": "x"}])
def test_it_refuses_an_unknown_status_listing_the_allowed_ones(api, body):
    lead = LeadFactory(status=Status.NURTURE)

    response = api.post(status_url(lead.pk), body, format="json")

    assert response.status_code == 400
    errors = response.json()
    if "why" in body:
        assert list(errors) == ["why"]
    else:
        assert list(errors) == ["status"]
        assert errors["status"][-1] == ("Allowed from NURTURE: INTERESTED, REFERRED, MEETING_BOOKED, NOT_INTERESTED, "
                                        "DEAD, WON, LOST, UNSUBSCRIBED, BOUNCED.")


def test_it_changes_nothing_when_asked_for_the_current_status(api):
    lead = LeadFactory(status=Status.NURTURE, status_reason="Replied vaguely")

    response = api.post(status_url(lead.pk), {"status": "NURTURE"}, format="json")

    assert (response.status_code, response.json()["status_reason"]) == (200, "Replied vaguely")
    assert not LeadEvent.objects.exists()


def test_it_refuses_a_read_only_key_to_change_a_status(read_api):
    lead = LeadFactory(status=Status.IN_SEQUENCE)

    assert read_api.post(status_url(lead.pk), {"status": "DEAD"}, format="json").status_code == 403
    lead.refresh_from_db()
    assert lead.status == Status.IN_SEQUENCE


def test_it_answers_404_when_changing_the_status_of_an_unknown_lead(api):
    assert api.post(status_url(999999), {"status": "DEAD"}, format="json").status_code == 404


# -- the outcomes of a conversation, and leaving UNSUBSCRIBED -------------------------------------------------

def test_it_books_a_meeting_with_an_interested_lead_and_then_marks_it_won(api):
    lead = LeadFactory(status=Status.INTERESTED)

    booked = api.post(status_url(lead.pk), {"status": "MEETING_BOOKED", "reason": "Demo on Tuesday"}, format="json")
    won = api.post(status_url(lead.pk), {"status": "WON"}, format="json")

    assert (booked.status_code, booked.json()["status"], booked.json()["status_reason"]) == (
        200, "MEETING_BOOKED", "Demo on Tuesday")
    assert (won.status_code, won.json()["status"]) == (200, "WON")
    assert list(LeadEvent.objects.filter(lead=lead).order_by("id").values_list("from_status", "to_status")) == [
        ("INTERESTED", "MEETING_BOOKED"), ("MEETING_BOOKED", "WON")]


@pytest.mark.parametrize("final", [Status.UNSUBSCRIBED, Status.BOUNCED])
def test_it_refuses_to_take_a_lead_out_of_unsubscribed_or_bounced_while_its_address_is_suppressed(api, final):
    lead = LeadFactory(email="anna@mail.brightlane.example.com", status=final)
    suppression = SuppressionFactory(email="", domain="brightlane.example.com")

    refused = api.post(status_url(lead.pk), {"status": "INTERESTED", "reason": "Wrote back"}, format="json")

    assert refused.status_code == 400
    assert refused.json() == {"status": [
        f"A lead cannot leave {final} while its address is suppressed (the domain brightlane.example.com is on the "
        "suppression list, which covers mail.brightlane.example.com). Remove the suppression first, on its own page "
        "under Suppressions, then change the status."]}
    assert (Lead.objects.get(pk=lead.pk).status, LeadEvent.objects.count()) == (final, 0)

    assert api.delete(reverse("cam-api:suppression-detail", args=[suppression.pk])).status_code == 204
    allowed = api.post(status_url(lead.pk), {"status": "INTERESTED", "reason": "Wrote back"}, format="json")

    assert (allowed.status_code, allowed.json()["status"], allowed.json()["next_send_at"]) == (200, "INTERESTED", None)
    assert LeadEvent.objects.get(lead=lead).from_status == final


def test_it_lets_a_bounced_lead_unsubscribe_while_suppressed(api):
    lead = LeadFactory(email="anna@brightlane.example.com", status=Status.BOUNCED)
    SuppressionFactory(email="anna@brightlane.example.com", reason=Suppression.Reason.HARD_BOUNCE)

    response = api.post(status_url(lead.pk), {"status": "UNSUBSCRIBED"}, format="json")

    assert (response.status_code, response.json()["status"]) == (200, "UNSUBSCRIBED")


@pytest.mark.parametrize("method", ["put", "patch"])
def test_it_offers_no_way_to_change_a_leads_address(api, method):
    lead = LeadFactory(email="anna@brightlane.example.com")
    OutboundEmailFactory(lead=lead, status=OutboundEmail.Status.SENT)

    response = getattr(api, method)(detail(lead.pk), {"email": "anna.schmidt@brightlane.example.com"}, format="json")

    assert response.status_code == 405
    assert Lead.objects.get(pk=lead.pk).email == "anna@brightlane.example.com"
