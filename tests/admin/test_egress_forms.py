"""Saving a lead source or an alert channel refuses a URL CAM would refuse to request (see cam.egress)."""

import json

import pytest
from django.urls import reverse

from cam.models import AlertChannel, LeadSource
from tests import factories

pytestmark = pytest.mark.django_db


def source_form(campaign, config, kind="http_json") -> dict:
    return {"campaign": campaign.pk, "name": "CRM", "kind": kind, "config": json.dumps(config), "enabled": "on"}


@pytest.mark.parametrize(("config", "message"), [
    ({"url": "http://10.0.0.5/contacts"}, "url: http://10.0.0.5/contacts: refused: 10.0.0.5 is a private address; add "
                                          "10.0.0.5 to AICMO_CAM_EGRESS_ALLOW if this internal destination is "
                                          "deliberate."),
    ({"url": "http://169.254.169.254/latest/"}, "url: http://169.254.169.254/latest/: refused: 169.254.169.254 is a "
                                                "cloud metadata address, which is never allowed."),
    ({"url": "file:///etc/passwd"}, "url: Enter an http(s) URL, not 'file:///etc/passwd'."),
    ({"url": "https://crm.example.com", "pagination": {"type": "offset"}},
     "pagination: type must be none, page or cursor."),
])
def test_it_refuses_a_source_configuration_the_harvest_would_refuse(admin_client, no_egress_allowed, config, message):
    response = admin_client.post(reverse("admin:cam_leadsource_add"), source_form(factories.CampaignFactory(), config))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"config": [message]}
    assert not LeadSource.objects.exists()


def test_it_saves_a_source_on_a_host_name_without_looking_it_up(admin_client, no_egress_allowed, dns):
    dns["crm.example.test"] = ["10.0.0.5"]  # checked when harvesting: the answer may change after saving
    campaign = factories.CampaignFactory()

    response = admin_client.post(reverse("admin:cam_leadsource_add"),
                                 source_form(campaign, {"url": "https://crm.example.test/api/contacts"}))

    assert response.status_code == 302
    assert LeadSource.objects.get(campaign=campaign).config["url"] == "https://crm.example.test/api/contacts"
    assert dns.lookups == []


def test_it_saves_an_internal_source_the_allow_list_names(admin_client, settings):
    settings.AICMO_CAM_EGRESS_ALLOW = ["10.20.0.0/16"]
    campaign = factories.CampaignFactory()

    response = admin_client.post(reverse("admin:cam_leadsource_add"),
                                 source_form(campaign, {"url": "http://10.20.3.4:8080/contacts"}))

    assert response.status_code == 302
    assert LeadSource.objects.filter(campaign=campaign).count() == 1


def channel_form(**fields) -> dict:
    return {"name": "Ops hook", "kind": "webhook", "recipients": "", "url_env": "CAM_SECRET_HOOK_URL",
            "secret_env": "CAM_SECRET_HOOK_SECRET", "alert_types": "[]", "enabled": "on", **fields}


@pytest.mark.parametrize(("url", "message"), [
    ("http://192.168.1.10/hooks/s3cr3t", "The URL in CAM_SECRET_HOOK_URL is refused: 192.168.1.10 is a private "
                                         "address; add 192.168.1.10 to AICMO_CAM_EGRESS_ALLOW if this internal "
                                         "destination is deliberate."),
    ("ftp://hooks.example.com/s3cr3t", "The URL in CAM_SECRET_HOOK_URL is refused: only http:// and https:// URLs "
                                       "with a host may be requested."),
])
def test_it_refuses_a_channel_whose_variable_holds_a_refused_url(admin_client, no_egress_allowed, monkeypatch, url,
                                                                 message):
    monkeypatch.setenv("CAM_SECRET_HOOK_URL", url)

    response = admin_client.post(reverse("admin:cam_alertchannel_add"), channel_form())

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"url_env": [message]}
    assert "s3cr3t" not in message  # the URL is a secret: the message names the variable
    assert not AlertChannel.objects.exists()


def test_it_saves_a_channel_whose_variable_only_the_worker_has(admin_client, no_egress_allowed, monkeypatch):
    monkeypatch.delenv("CAM_SECRET_HOOK_URL", raising=False)

    response = admin_client.post(reverse("admin:cam_alertchannel_add"), channel_form())

    assert response.status_code == 302
    assert AlertChannel.objects.get().url_env == "CAM_SECRET_HOOK_URL"
