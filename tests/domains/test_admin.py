"""Setup › Sending domains without a browser: Check now, the override dialog's refusal, Hold again."""

import pytest

from cam.models import SendingDomain
from tests.domains.conftest import m365_mailbox

pytestmark = pytest.mark.django_db


def test_staff_check_override_and_hold_a_domain_from_its_page(admin_client, zones):
    m365_mailbox("nospf.example")
    domain = SendingDomain.objects.create(domain="nospf.example")
    page = f"/admin/cam/sendingdomain/{domain.pk}"

    assert admin_client.get(f"{page}/check/").status_code == 302
    domain.refresh_from_db()
    assert (domain.verdict, domain.holds_leads) == ("fail", True)
    html = admin_client.get(f"{page}/change/").content.decode()
    assert "add a txt record at nospf.example" in html.lower()
    assert f'{page}/override/' in html and f'{page}/hold/' not in html

    # The dialog's form requires a reason: without one nothing changes.
    refused = admin_client.post(f"{page}/override/", {"_form_submitted": "on", "reason": " "}, HTTP_HX_REQUEST="true")
    assert "This field is required." in refused.content.decode()
    domain.refresh_from_db()
    assert domain.holds_leads

    done = admin_client.post(f"{page}/override/", {"_form_submitted": "on", "reason": "Records change on Monday"},
                            HTTP_HX_REQUEST="true")
    assert done["HX-Refresh"] == "true"
    domain.refresh_from_db()
    assert (domain.override_reason, domain.override_by.is_superuser, domain.holds_leads) == (
        "Records change on Monday", True, False)
    html = admin_client.get(f"{page}/change/").content.decode()
    assert f'{page}/hold/' in html and f'{page}/override/' not in html

    admin_client.post(f"{page}/hold/", {"_form_submitted": "on", "reason": ""}, HTTP_HX_REQUEST="true")
    domain.refresh_from_db()
    assert domain.holds_leads
    assert [entry["action"] for entry in domain.history] == ["override", "hold"]
    listed = admin_client.get("/admin/cam/sendingdomain/").content.decode()
    assert "Held: SPF or DMARC fails" in listed
