"""POST /api/cam/sending-domains/{id}/check/, override/ and hold/: the same services as the admin and command."""

import pytest
from django.urls import reverse

from cam.models import SendingDomain
from tests.api.conftest import client_with_key
from tests.domains.conftest import m365_mailbox

pytestmark = pytest.mark.django_db


def url(domain: SendingDomain, action: str = "") -> str:
    base = reverse("cam-api:sending-domain-detail", args=[domain.pk])
    return f"{base}{action}/" if action else base


def test_the_api_checks_overrides_and_holds_a_domain_again(zones):
    api = client_with_key(name="ops")
    m365_mailbox("nospf.example")
    domain = SendingDomain.objects.create(domain="nospf.example")

    checked = api.post(url(domain, "check"))
    assert checked.status_code == 200, checked.json()
    body = checked.json()
    assert (body["verdict"], body["holds_leads"]) == ("fail", True)
    spf = next(check for check in body["checks"] if check["name"] == "spf")
    assert spf["fix"] == "Add a TXT record at nospf.example: `v=spf1 include:spf.protection.outlook.com ~all`."

    refused = api.post(url(domain, "override"), {"reason": ""}, format="json")
    assert refused.status_code == 400
    overridden = api.post(url(domain, "override"), {"reason": "SPF fix is with the registrar"}, format="json")
    assert overridden.status_code == 200
    assert (overridden.json()["holds_leads"], overridden.json()["override_reason"]) == (
        False, "SPF fix is with the registrar")
    assert overridden.json()["history"][0]["by"] == "api-key:ops"

    held = api.post(url(domain, "hold"), {}, format="json")
    assert (held.status_code, held.json()["holds_leads"], held.json()["override_at"]) == (200, True, None)
    again = api.post(url(domain, "hold"), {}, format="json")
    assert again.status_code == 409
    assert "not overridden" in again.json()["detail"]

    listed = api.get(reverse("cam-api:sending-domain-list")).json()
    assert [row["domain"] for row in listed["results"]] == ["nospf.example"]


def test_a_read_only_key_reads_but_cannot_override(zones):
    domain = SendingDomain.objects.create(domain="nospf.example")
    read = client_with_key(read_only=True)
    assert read.get(url(domain)).status_code == 200
    assert read.post(url(domain, "override"), {"reason": "x"}, format="json").status_code == 403
