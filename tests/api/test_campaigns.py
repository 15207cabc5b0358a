"""The campaigns endpoints: list, read, create, update, pause/resume/activate, metrics and sequence steps."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from cam.decisions import metrics_compute
from cam.models import Campaign, CampaignRule, SequenceStep
from tests.factories import (
    CampaignFactory,
    MailboxFactory,
    OutboundEmailFactory,
    SequenceStepFactory,
)

pytestmark = pytest.mark.django_db

Status = Campaign.Status
LIST = reverse("cam-api:campaign-list")


def detail(campaign) -> str:
    return reverse("cam-api:campaign-detail", args=[campaign.pk if hasattr(campaign, "pk") else campaign])


def url(name: str, campaign) -> str:
    return reverse(f"cam-api:campaign-{name}", args=[campaign.pk])


def steps_url(campaign) -> str:
    return reverse("cam-api:campaign-step-list", kwargs={"campaign_pk": campaign.pk})


def step_url(step) -> str:
    return reverse("cam-api:campaign-step-detail", kwargs={"campaign_pk": step.campaign_id, "pk": step.pk})


NEW_CAMPAIGN = {"name": "Logistics leaders", "icp_industries": ["logistics"], "icp_countries": ["DE", "AT"],
                "send_days": [1, 2, 3], "send_start_hour": 8, "send_end_hour": 16, "timezone": "Europe/Berlin",
                "daily_cap": 80, "max_hard_bounce_rate": 4.5}


# -- list and read -------------------------------------------------------------------------------

def test_it_lists_campaigns_by_name_with_their_step_count(read_api):
    second, first = CampaignFactory(name="B campaign"), CampaignFactory(name="A campaign")
    SequenceStepFactory.create_batch(2, campaign=second)

    response = read_api.get(LIST)

    assert response.status_code == 200
    assert response.json()["count"] == 2
    assert [(c["id"], c["name"], c["step_count"]) for c in response.json()["results"]] == [
        (first.pk, "A campaign", 0), (second.pk, "B campaign", 2)]


def test_it_filters_campaigns_by_status(read_api):
    CampaignFactory(status=Status.ACTIVE)
    paused = CampaignFactory(status=Status.PAUSED)

    response = read_api.get(LIST, {"status": "PAUSED"})

    assert [c["id"] for c in response.json()["results"]] == [paused.pk]


def test_it_refuses_an_unknown_status_filter(read_api):
    response = read_api.get(LIST, {"status": "SLEEPING"})

    assert response.status_code == 400
    assert list(response.json()) == ["status"]


@pytest.mark.parametrize("count", [1, 3])
def test_it_lists_campaigns_in_the_same_number_of_queries_whatever_their_number(read_api, django_assert_num_queries,
                                                                                 count):
    for _ in range(count):
        campaign = CampaignFactory()
        campaign.mailboxes.set(MailboxFactory.create_batch(2))
        SequenceStepFactory(campaign=campaign)

    read_api.get(LIST)  # warm up: the throttle's first use of its cache row costs queries of its own
    # The address's failed-key counter (1), the key (1), the throttle's counter (4: an atomic increment), the count,
    # the page (steps counted in it) and the mailboxes of the page (3).
    with django_assert_num_queries(9):
        response = read_api.get(LIST)

    assert len(response.json()["results"]) == count
    assert all(len(c["mailboxes"]) == 2 for c in response.json()["results"])


def test_it_reads_a_campaign(read_api):
    mailbox = MailboxFactory()
    campaign = CampaignFactory(name="Software in DACH", daily_cap=150)
    campaign.mailboxes.set([mailbox])

    body = read_api.get(detail(campaign)).json()

    assert (body["name"], body["daily_cap"], body["mailboxes"], body["status"]) == (
        "Software in DACH", 150, [mailbox.pk], "ACTIVE")
    assert body["send_days"] == [1, 2, 3, 4, 5]
    assert body["max_complaint_rate"] == 0.3


@pytest.mark.parametrize("pk", ["999999", "abc", str(10**30)])
def test_it_answers_404_for_an_unknown_campaign(read_api, pk):
    assert read_api.get(f"{LIST}{pk}/").status_code == 404


def test_it_refuses_a_client_without_credentials(anon_api):
    CampaignFactory()

    response = anon_api.get(LIST)

    assert response.status_code == 401
    assert "results" not in response.json()


# -- create and update ----------------------------------------------------------------------------

def test_it_creates_a_draft_campaign_with_the_default_rules(api):
    mailbox = MailboxFactory()

    response = api.post(LIST, {**NEW_CAMPAIGN, "mailboxes": [mailbox.pk]}, format="json")

    assert response.status_code == 201, response.json()
    campaign = Campaign.objects.get(name="Logistics leaders")
    assert response.json()["id"] == campaign.pk
    assert (campaign.status, campaign.daily_cap, campaign.timezone, campaign.send_days) == (
        Status.DRAFT, 80, "Europe/Berlin", [1, 2, 3])
    assert list(campaign.mailboxes.all()) == [mailbox]
    rules = {rule.metric: rule.threshold for rule in CampaignRule.objects.filter(campaign=campaign)}
    assert rules == {"hard_bounce_rate": Decimal("4.5"), "complaint_rate": Decimal("0.3"),
                     "positive_reply_rate": Decimal("0.5")}


def test_it_refuses_a_read_only_key_to_create(read_api):
    response = read_api.post(LIST, NEW_CAMPAIGN, format="json")

    assert response.status_code == 403
    assert not Campaign.objects.exists()


def test_it_refuses_to_create_without_credentials(anon_api):
    assert anon_api.post(LIST, NEW_CAMPAIGN, format="json").status_code == 401


@pytest.mark.parametrize(("change", "field"), [
    ({"send_start_hour": 17, "send_end_hour": 9}, "send_end_hour"),
    ({"send_end_hour": 25}, "send_end_hour"),
    ({"send_days": [1, 8]}, "send_days"),
    ({"send_days": [1, 1]}, "send_days"),
    ({"send_days": []}, "send_days"),
    ({"send_days": "1,2"}, "send_days"),
    ({"weight_industry": 101}, "weight_industry"),
    ({"min_score": -1}, "min_score"),
    ({"daily_cap": 0}, "daily_cap"),
    ({"daily_cap": "many"}, "daily_cap"),
    ({"daily_cap": 10**30}, "daily_cap"),
    ({"no_reply_days": 10**6}, "no_reply_days"),
    ({"out_of_office_days": 40_000}, "out_of_office_days"),
    ({"soft_bounce_limit": 40_000}, "soft_bounce_limit"),
    ({"description": "nul \u0000 byte"}, "description"),
    ({"max_hard_bounce_rate": 100.5}, "max_hard_bounce_rate"),
    ({"max_complaint_rate": "1e400"}, "max_complaint_rate"),
    ({"icp_company_size_min": 500, "icp_company_size_max": 50}, "icp_company_size_max"),
    ({"icp_company_size_min": -1}, "icp_company_size_min"),
    ({"no_reply_days": -3}, "no_reply_days"),
    ({"icp_industries": "software"}, "icp_industries"),
    ({"icp_industries": [{"a": 1}]}, "icp_industries"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"timezone": "1" * 401}, "timezone"),
    ({"timezone": 10**400}, "timezone"),
    ({"no_reply_outcome": "FORGET"}, "no_reply_outcome"),
    ({"mailboxes": [999999]}, "mailboxes"),
    ({"name": ""}, "name"),
    ({"dayly_cap": 5}, "dayly_cap"),
])
def test_it_refuses_bad_settings_naming_the_field(api, change, field):
    response = api.post(LIST, {**NEW_CAMPAIGN, **change}, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert not Campaign.objects.exists()


@pytest.mark.parametrize("given", [
    lambda pk: pk + 0.5, lambda pk: float(pk), lambda pk: f"{pk}.5", lambda pk: True, lambda pk: [pk],
    lambda pk: {"id": pk}, lambda pk: None, lambda pk: 2**63, lambda pk: 10**30, lambda pk: "",
    lambda pk: str(pk), lambda pk: f" {pk}", lambda pk: f"{pk}.0",
], ids=["fraction", "whole-float", "fraction-string", "boolean", "list", "object", "null", "past-bigint",
        "huge", "empty-string", "digits-string", "spaced-string", "whole-float-string"])
def test_it_refuses_a_mailbox_id_that_is_not_a_whole_number_naming_mailboxes(api, given):
    mailbox = MailboxFactory()

    response = api.post(LIST, {**NEW_CAMPAIGN, "mailboxes": [given(mailbox.pk)]}, format="json")

    assert response.status_code == 400, response.json()
    assert list(response.json()) == ["mailboxes"]
    assert not Campaign.objects.exists()


def test_it_accepts_a_mailbox_id_as_a_json_integer(api):
    mailbox = MailboxFactory()
    response = api.post(LIST, {**NEW_CAMPAIGN, "mailboxes": [mailbox.pk]}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["mailboxes"] == [mailbox.pk]


def test_it_refuses_a_deeply_nested_body_with_a_json_400(api):
    response = api.post(LIST, "[" * 1000 + "]" * 1000, content_type="application/json")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "The JSON body is nested more than 32 levels deep."}


@pytest.mark.parametrize("query", [{"bogus": "1"}, {"status": "ACTIVE", "bogus": "1"}, {"search": "x"}])
def test_it_refuses_an_unknown_list_parameter_naming_it(read_api, query):
    response = read_api.get(LIST, query)

    assert response.status_code == 400
    assert response.json() == {name: ["Unknown query parameter."] for name in query if name != "status"}


def test_it_keeps_the_pagination_and_format_parameters(read_api):
    CampaignFactory.create_batch(2)
    response = read_api.get(LIST, {"page": 2, "page_size": 1, "format": "json"})
    assert response.status_code == 200
    assert len(response.json()["results"]) == 1


def test_it_refuses_an_unknown_parameter_on_the_steps(read_api):
    campaign = CampaignFactory()
    assert read_api.get(steps_url(campaign), {"page": 1}).status_code == 200
    response = read_api.get(steps_url(campaign), {"bogus": "1"})
    assert response.status_code == 400
    assert response.json() == {"bogus": ["Unknown query parameter."]}


def test_it_refuses_a_name_already_taken(api):
    CampaignFactory(name="Logistics leaders")

    response = api.post(LIST, NEW_CAMPAIGN, format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["name"]


def test_it_refuses_a_body_that_is_not_an_object(api):
    response = api.post(LIST, [NEW_CAMPAIGN], format="json")

    assert response.status_code == 400


def test_it_changes_some_settings_and_keeps_the_others(api):
    campaign = CampaignFactory(daily_cap=200, send_start_hour=9, send_end_hour=17)

    response = api.patch(detail(campaign), {"daily_cap": 50, "send_end_hour": 12, "status": "COMPLETED"},
                         format="json")

    assert response.status_code == 200, response.json()
    campaign.refresh_from_db()
    # The status is changed by pause, resume and activate only.
    assert (campaign.daily_cap, campaign.send_start_hour, campaign.send_end_hour, campaign.status) == (
        50, 9, 12, Status.ACTIVE)
    assert response.json()["daily_cap"] == 50


def test_it_checks_a_partial_change_against_the_stored_values(api):
    campaign = CampaignFactory(send_start_hour=9, send_end_hour=17)

    response = api.patch(detail(campaign), {"send_start_hour": 18}, format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["send_end_hour"]
    campaign.refresh_from_db()
    assert campaign.send_start_hour == 9


def test_it_replaces_the_settings_with_put(api):
    campaign = CampaignFactory(name="Old name")
    campaign.mailboxes.set([MailboxFactory()])

    response = api.put(detail(campaign), {**NEW_CAMPAIGN, "mailboxes": []}, format="json")

    assert response.status_code == 200, response.json()
    campaign.refresh_from_db()
    assert (campaign.name, campaign.daily_cap, list(campaign.mailboxes.all())) == ("Logistics leaders", 80, [])


def test_it_refuses_a_read_only_key_to_update(read_api):
    campaign = CampaignFactory(daily_cap=200)

    assert read_api.patch(detail(campaign), {"daily_cap": 5}, format="json").status_code == 403
    campaign.refresh_from_db()
    assert campaign.daily_cap == 200


def test_it_answers_404_when_updating_an_unknown_campaign(api):
    assert api.patch(detail(999999), {"daily_cap": 5}, format="json").status_code == 404


# -- pause, resume, activate --------------------------------------------------------------------------

def test_it_pauses_an_active_campaign_with_who_and_why(api):
    campaign = CampaignFactory(status=Status.ACTIVE)

    response = api.post(url("pause", campaign), {"reason": "bounces look high"}, format="json")

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["status_reason"]) == (
        "PAUSED", "Paused by api-key:full key: bounces look high")
    campaign.refresh_from_db()
    assert campaign.status == Status.PAUSED


def test_it_resumes_a_paused_campaign_without_a_body(api):
    campaign = CampaignFactory(status=Status.PAUSED)

    response = api.post(url("resume", campaign))

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["status_reason"]) == ("ACTIVE", "Resumed by api-key:full key")


def test_it_activates_a_draft_campaign(api):
    campaign = CampaignFactory(status=Status.DRAFT)

    response = api.post(url("activate", campaign), {}, format="json")

    assert (response.status_code, response.json()["status"]) == (200, "ACTIVE")


@pytest.mark.parametrize(("action", "status", "message"), [
    ("resume", Status.ACTIVE, "The campaign is ACTIVE: only campaigns that are PAUSED or DEGRADED can be resumed."),
    ("pause", Status.DRAFT, "The campaign is DRAFT: only campaigns that are ACTIVE or DEGRADED can be paused."),
    ("pause", Status.PAUSED, "The campaign is PAUSED: only campaigns that are ACTIVE or DEGRADED can be paused."),
    ("activate", Status.PAUSED, "The campaign is PAUSED: only campaigns that are DRAFT can be activated."),
])
def test_it_answers_409_when_the_status_does_not_allow_the_change(api, action, status, message):
    campaign = CampaignFactory(status=status)

    response = api.post(url(action, campaign), {"reason": "try"}, format="json")

    assert response.status_code == 409
    assert response.json() == {"detail": message}
    campaign.refresh_from_db()
    assert campaign.status == status


def test_it_refuses_a_read_only_key_to_pause(read_api):
    campaign = CampaignFactory(status=Status.ACTIVE)

    assert read_api.post(url("pause", campaign)).status_code == 403
    campaign.refresh_from_db()
    assert campaign.status == Status.ACTIVE


def test_it_refuses_a_bad_pause_body(api):
    campaign = CampaignFactory(status=Status.ACTIVE)

    response = api.post(url("pause", campaign), {"why": "x"}, format="json")

    assert (response.status_code, list(response.json())) == (400, ["why"])


def test_it_answers_404_when_pausing_an_unknown_campaign(api):
    assert api.post(reverse("cam-api:campaign-pause", args=[999999])).status_code == 404


# -- metrics ----------------------------------------------------------------------------------------

def test_it_says_when_no_metrics_were_computed_yet(read_api):
    campaign = CampaignFactory()

    response = read_api.get(url("metrics", campaign))

    assert response.status_code == 200
    assert response.json() == {"campaign": campaign.pk, "computed_at": None, "window_days": None, "window": {},
                               "all_time": {}}


def test_it_returns_the_stored_metrics(read_api):
    campaign = CampaignFactory()
    OutboundEmailFactory.create_batch(2, campaign=campaign, lead__campaign=campaign, status="SENT",
                                      sent_at="2020-01-01T10:00:00Z")
    metrics_compute()

    body = read_api.get(url("metrics", campaign)).json()

    assert body["computed_at"] is not None
    assert body["window_days"] == 7
    assert (body["all_time"]["sent"], body["all_time"]["bounced_hard_rate"]) == (2, 0.0)
    assert (body["window"]["sent"], body["window"]["bounced_hard_rate"]) == (0, None)


def test_it_answers_404_for_the_metrics_of_an_unknown_campaign(read_api):
    assert read_api.get(reverse("cam-api:campaign-metrics", args=[999999])).status_code == 404


def test_it_refuses_metrics_without_credentials(anon_api):
    assert anon_api.get(url("metrics", CampaignFactory())).status_code == 401


# -- sequence steps -----------------------------------------------------------------------------------

STEP = {"position": 1, "delay_days": 0, "subject_template": "Hello {{ first_name|default:'there' }}",
        "body_template": "Hi {{ first_name }},\n\nShort question about {{ company }}."}


def test_it_lists_a_campaigns_steps_in_order(read_api):
    campaign = CampaignFactory()
    second = SequenceStepFactory(campaign=campaign, position=2, subject_template="")
    first = SequenceStepFactory(campaign=campaign, position=1)
    SequenceStepFactory(position=1)  # another campaign's

    response = read_api.get(steps_url(campaign))

    assert [s["id"] for s in response.json()["results"]] == [first.pk, second.pk]


@pytest.mark.parametrize("count", [1, 3])
def test_it_lists_steps_in_the_same_number_of_queries_whatever_their_number(read_api, django_assert_num_queries,
                                                                             count):
    campaign = CampaignFactory()
    for position in range(1, count + 1):
        SequenceStepFactory(campaign=campaign, position=position)

    read_api.get(steps_url(campaign))  # warm up the throttle's cache row
    # The address's failed-key counter (1), the key (1), the throttle's counter (4: an atomic increment), the
    # campaign, the count and the page (3).
    with django_assert_num_queries(9):
        response = read_api.get(steps_url(campaign))

    assert len(response.json()["results"]) == count


def test_it_adds_a_step(api):
    campaign = CampaignFactory()

    response = api.post(steps_url(campaign), STEP, format="json")

    assert response.status_code == 201, response.json()
    step = SequenceStep.objects.get(campaign=campaign)
    assert (response.json()["id"], step.position, step.subject_template) == (
        step.pk, 1, "Hello {{ first_name|default:'there' }}")


@pytest.mark.parametrize(("change", "field"), [
    ({"body_template": "Hi {% if first_name %}"}, "body_template"),
    ({"html_template": "<p>{{ first_name|nosuchfilter }}</p>"}, "html_template"),
    ({"subject_template": ""}, "subject_template"),
    ({"position": 0}, "position"),
    ({"position": "first"}, "position"),
    ({"delay_days": -1}, "delay_days"),
    ({"delay_hours": 40_000}, "delay_hours"),
    ({"position": 40_000}, "position"),
    ({"body_template": ""}, "body_template"),
    ({"campaign": 5, "colour": "red"}, "colour"),
])
def test_it_refuses_a_bad_step_naming_the_field(api, change, field):
    campaign = CampaignFactory()

    response = api.post(steps_url(campaign), {**STEP, **change}, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert not SequenceStep.objects.exists()


def test_it_refuses_a_position_already_taken(api):
    step = SequenceStepFactory(position=1)

    response = api.post(steps_url(step.campaign), STEP, format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["position"]


def test_it_changes_a_step_checking_the_result(api):
    first = SequenceStepFactory(position=2, subject_template="Hello")
    step = SequenceStepFactory(campaign=first.campaign, position=3, subject_template="")

    moved = api.patch(step_url(step), {"position": 1}, format="json")  # ahead of the first, with no subject
    changed = api.patch(step_url(step), {"delay_days": 3, "body_template": "Still there, {{ first_name }}?"},
                        format="json")

    assert moved.status_code == 400
    assert list(moved.json()) == ["subject_template"]
    assert changed.status_code == 200
    step.refresh_from_db()
    assert (step.position, step.delay_days, step.body_template) == (3, 3, "Still there, {{ first_name }}?")


def test_it_deletes_a_step_no_email_came_from(api):
    step = SequenceStepFactory()

    response = api.delete(step_url(step))

    assert response.status_code == 204
    assert not SequenceStep.objects.exists()


def test_it_keeps_a_step_emails_came_from(api):
    email = OutboundEmailFactory()

    response = api.delete(step_url(email.step))

    assert response.status_code == 409
    assert response.json() == {"detail": f"Step {email.step.position} has 1 email; disable it instead."}
    assert SequenceStep.objects.filter(pk=email.step_id).exists()


def _sequence(*subjects: str, status=Campaign.Status.ACTIVE) -> list[SequenceStep]:
    campaign = CampaignFactory(status=status)
    return [SequenceStepFactory(campaign=campaign, position=position, subject_template=subject)
            for position, subject in enumerate(subjects, start=1)]


def test_it_refuses_deleting_the_first_step_when_the_next_has_no_subject(api):
    first, _, _ = _sequence("Hello", "", "")

    response = api.delete(step_url(first))

    assert response.status_code == 409
    assert response.json()["detail"] == (
        "Step 2 would become the campaign's first email, and it has no subject; give it one first (follow-ups "
        "reuse the first email's subject).")
    assert list(first.campaign.steps.values_list("position", flat=True)) == [1, 2, 3]


def test_it_deletes_the_first_step_when_the_next_has_a_subject_and_any_later_step(api):
    first, second, third = _sequence("Hello", "Still there?", "")

    assert api.delete(step_url(third)).status_code == 204  # not the first: its subject does not matter
    assert api.delete(step_url(first)).status_code == 204
    # The step that was second moved up to first place.
    assert list(second.campaign.steps.values_list("pk", "position")) == [(second.pk, 1)]


def test_it_deletes_the_only_step(api):
    (only,) = _sequence("Hello")
    assert api.delete(step_url(only)).status_code == 204


@pytest.mark.parametrize("method", ["patch", "put"])
def test_it_refuses_moving_the_first_step_behind_a_step_without_a_subject(api, method):
    first, _ = _sequence("Hello", "")
    body = {"position": 5} if method == "patch" else {
        "position": 5, "delay_days": 0, "delay_hours": 0, "subject_template": "Hello", "body_template": "Hi",
        "html_template": ""}

    response = getattr(api, method)(step_url(first), body, format="json")

    assert response.status_code == 409, response.json()
    assert response.json()["detail"].startswith("Step 2 would become the campaign's first email, and it has no "
                                                "subject")
    first.refresh_from_db()
    assert first.position == 1


def test_it_moves_a_step_when_the_first_keeps_a_subject(api):
    first, second, third = _sequence("Hello", "", "")
    assert api.patch(step_url(third), {"position": 9}, format="json").status_code == 200
    assert api.patch(step_url(first), {"position": 1, "delay_days": 2}, format="json").status_code == 200
    assert api.patch(step_url(second), {"subject_template": "Again"}, format="json").status_code == 200
    assert api.patch(step_url(first), {"position": 4}, format="json").status_code == 200


def test_it_answers_404_for_a_step_of_another_campaign_or_an_unknown_campaign(read_api):
    step = SequenceStepFactory()
    other = CampaignFactory()

    assert read_api.get(reverse("cam-api:campaign-step-detail",
                                kwargs={"campaign_pk": other.pk, "pk": step.pk})).status_code == 404
    assert read_api.get(reverse("cam-api:campaign-step-list", kwargs={"campaign_pk": 999999})).status_code == 404


def test_it_refuses_a_read_only_key_to_change_steps(read_api):
    step = SequenceStepFactory()

    assert read_api.post(steps_url(step.campaign), {**STEP, "position": 2}, format="json").status_code == 403
    assert read_api.delete(step_url(step)).status_code == 403
    assert SequenceStep.objects.count() == 1


def test_it_refuses_steps_without_credentials(anon_api):
    assert anon_api.get(steps_url(CampaignFactory())).status_code == 401
