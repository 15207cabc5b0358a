"""Creating an API key in the admin: the key is on the answer to "Save" and nowhere else, ever."""

import pytest
from rest_framework.test import APIClient

from cam.models import CamAPIKey

pytestmark = pytest.mark.django_db


def test_the_new_key_is_shown_once_on_the_page_that_answers_save(admin_client):
    response = admin_client.post("/admin/cam/camapikey/add/", {"name": "from the admin", "read_only": "on"})

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    api_key = CamAPIKey.objects.get(name="from the admin")
    html = response.content.decode()
    start = html.index('id="cam-api-key-value"')
    key = html[html.index(">", start) + 1:html.index("</code>", start)]
    assert key.startswith(f"{api_key.prefix}.") and api_key.read_only
    assert "shown on this page only" in html

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert client.get("/api/cam/campaigns/").status_code == 200
    secret = key.split(".", 1)[1]
    # Not in a cookie (Django's messages live in one until the next page) nor on any later page.
    assert all(secret not in morsel.value for morsel in response.cookies.values())
    for page in ("/admin/cam/camapikey/", f"/admin/cam/camapikey/{api_key.pk}/change/", "/admin/"):
        later = admin_client.get(page)
        assert secret not in later.content.decode()
        assert all(secret not in morsel.value for morsel in later.cookies.values())


def test_editing_a_key_keeps_the_usual_redirect(admin_client):
    _, key = CamAPIKey.objects.create_key(name="old name")
    api_key = CamAPIKey.objects.get()
    response = admin_client.post(f"/admin/cam/camapikey/{api_key.pk}/change/",
                                 {"name": "new name", "expiry_date_0": "", "expiry_date_1": ""})
    assert response.status_code == 302
    api_key.refresh_from_db()
    assert api_key.name == "new name" and CamAPIKey.objects.is_valid(key)


def test_it_refuses_a_name_another_key_has(admin_client):
    CamAPIKey.objects.create_key(name="Reporting")

    page = admin_client.post("/admin/cam/camapikey/add/", {"name": "reporting "})

    assert page.status_code == 200
    assert "An API key named &#x27;reporting&#x27; exists already" in page.content.decode()
    assert CamAPIKey.objects.count() == 1
