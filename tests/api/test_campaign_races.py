"""Campaign settings edited while the status changes: an edit never writes the status back, and a status
change that loses a race says so."""

from __future__ import annotations

import threading

import pytest
from rest_framework.test import APIClient

from cam.campaigns import campaign_update, campaigns_pause
from cam.models import CamAPIKey, Campaign
from tests import factories
from tests.concurrency import run_at_once

TRIALS = 10


def _client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


def test_an_edit_from_a_campaign_read_before_a_pause_keeps_the_pause(db):
    campaign = factories.CampaignFactory(status=Campaign.Status.ACTIVE, description="before")
    stale = Campaign.objects.get(pk=campaign.pk)  # read as ACTIVE

    campaigns_pause(campaign_ids=[campaign.pk], reason="Paused by staff:boss")
    campaign_update(campaign=stale, fields={"description": "after"})

    campaign.refresh_from_db()
    assert (campaign.status, campaign.status_reason, campaign.description) == (
        "PAUSED", "Paused by staff:boss", "after")
    assert campaign.status_changed_at is not None


@pytest.mark.django_db(transaction=True)
def test_a_pause_at_the_same_moment_as_an_edit_always_holds():
    # Each thread its own client (the key is committed, so every thread's connection sees it).
    _, key = CamAPIKey.objects.create_key(name="race")
    campaign = factories.CampaignFactory(status=Campaign.Status.ACTIVE)
    for trial in range(TRIALS):
        Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.ACTIVE)
        turn = iter(["pause", "edit"])
        lock = threading.Lock()

        def request(trial=trial, turn=turn, lock=lock):
            with lock:
                mine = next(turn)
            client = _client(key)
            if mine == "pause":
                return mine, client.post(f"/api/cam/campaigns/{campaign.pk}/pause/", {}, format="json").status_code
            return mine, client.patch(f"/api/cam/campaigns/{campaign.pk}/", {"description": f"d{trial}"},
                                      format="json").status_code

        results, errors = run_at_once(request, threads=2, timeout=30)

        assert not errors
        assert sorted(results) == [("edit", 200), ("pause", 200)]
        answer = _client(key).get(f"/api/cam/campaigns/{campaign.pk}/").json()
        assert (answer["status"], answer["description"]) == ("PAUSED", f"d{trial}"), trial


@pytest.mark.django_db(transaction=True)
def test_of_two_resumes_at_once_one_resumes_and_the_other_says_the_status_changed():
    _, key = CamAPIKey.objects.create_key(name="race")
    campaign = factories.CampaignFactory(status=Campaign.Status.PAUSED)

    def request():
        response = _client(key).post(f"/api/cam/campaigns/{campaign.pk}/resume/", {}, format="json")
        return response.status_code, response.json()

    results, errors = run_at_once(request, threads=2, timeout=30)

    assert not errors
    assert sorted(status for status, _ in results) == [200, 409]
    refused = next(body for status, body in results if status == 409)
    # Re-read after the refused update, the campaign is ACTIVE (the other resume), never "PAUSED".
    assert refused["detail"] == "The campaign is ACTIVE: only campaigns that are PAUSED or DEGRADED can be resumed."
    campaign.refresh_from_db()
    assert campaign.status == "ACTIVE"


def test_a_status_change_refused_then_allowed_by_another_change_says_it_changed_meanwhile(api, monkeypatch):
    # The conditional update found the campaign ACTIVE; a pause landed before the status was read again.
    campaign = factories.CampaignFactory(status=Campaign.Status.ACTIVE)
    from cam.api import campaigns as campaigns_api

    def resume_losing_to_a_pause(*, campaign_ids, reason):
        Campaign.objects.filter(pk__in=list(campaign_ids)).update(status=Campaign.Status.PAUSED)
        return 0

    monkeypatch.setitem(campaigns_api.STATUS_CHANGES, "resume",
                        (resume_losing_to_a_pause, *campaigns_api.STATUS_CHANGES["resume"][1:]))

    response = api.post(f"/api/cam/campaigns/{campaign.pk}/resume/", {}, format="json")

    assert response.status_code == 409
    detail = response.json()["detail"]
    assert detail.startswith("The campaign's status changed meanwhile")
    assert "it is now PAUSED" in detail
    assert "only campaigns that are" not in detail
