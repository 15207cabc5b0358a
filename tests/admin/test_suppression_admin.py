"""Suppressions added in the admin are spelled as leads are, in one entry per address or domain."""

import pytest

from cam.models import Suppression
from tests.factories import SuppressionFactory

pytestmark = pytest.mark.django_db

ADD = "/admin/cam/suppression/add/"


def add(admin_client, **fields):
    return admin_client.post(ADD, {"email": "", "domain": "", "reason": "MANUAL", "source": "", "note": "",
                                   **fields})


@pytest.mark.parametrize(("field", "typed", "stored"), [
    ("email", "  Üser@XN--EXMPLE-CUA.COM ", "üser@exämple.com"),
    ("email", "üser@exämple.com", "üser@exämple.com"),
    ("domain", "XN--EXMPLE-CUA.COM", "exämple.com"),
    ("domain", "Exämple.com", "exämple.com"),
    ("email", "someone@agency.test", "someone@agency.test"),
])
def test_it_stores_any_spelling_as_leads_spell_it(admin_client, field, typed, stored):
    assert add(admin_client, **{field: typed}).status_code == 302
    assert getattr(Suppression.objects.get(), field) == stored


def test_it_refuses_an_entry_already_listed_in_another_spelling(admin_client):
    SuppressionFactory(email="", domain="exämple.com")

    page = add(admin_client, domain="xn--exmple-cua.com")

    assert page.status_code == 200
    assert "Already on the suppression list as @exämple.com." in page.content.decode()
    assert Suppression.objects.count() == 1


def test_it_asks_for_one_of_address_or_domain(admin_client):
    assert "Give an email address or a domain." in add(admin_client).content.decode()
    both = add(admin_client, email="a@b.test", domain="b.test").content.decode()
    assert "Give either an email address or a domain, not both." in both
    assert not Suppression.objects.exists()


def test_editing_keeps_the_entry_it_edits(admin_client):
    row = SuppressionFactory(email="kept@agency.test", domain="")
    response = admin_client.post(f"/admin/cam/suppression/{row.pk}/change/",
                                 {"email": "KEPT@agency.test", "domain": "", "reason": "MANUAL", "source": "",
                                  "note": "checked"})
    assert response.status_code == 302
    row.refresh_from_db()
    assert (row.email, row.note) == ("kept@agency.test", "checked")
