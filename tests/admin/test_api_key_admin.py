"""Creating an API key in the admin: the key is on the answer to "Save" and nowhere else, ever."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone
from rest_framework.test import APIClient

from cam.models import CamAPIKey
from tests.factories import CamAPIKeyFactory, UserFactory

pytestmark = pytest.mark.django_db


def with_key(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


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


def staff_with(client, *codenames):
    user = UserFactory(is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="cam", codename__in=codenames))
    client.force_login(user)
    return client


@pytest.mark.parametrize("who", ["staff who may change keys", "a superuser"])
def test_a_keys_rights_and_expiry_are_fixed_once_it_is_created(client, admin_client, who):
    editor = staff_with(client, "view_camapikey", "change_camapikey") if who.startswith("staff") else admin_client
    api_key = CamAPIKeyFactory(name="dashboards", read_only=True, expiry_date=timezone.now() + timedelta(days=30))
    expiry = api_key.expiry_date
    url = f"/admin/cam/camapikey/{api_key.pk}/change/"

    page = editor.get(url).content.decode()
    assert 'name="read_only"' not in page and 'name="expiry_date_0"' not in page
    response = editor.post(url, {"name": "dashboards", "read_only": "", "expiry_date_0": "", "expiry_date_1": ""})

    assert response.status_code == 302
    api_key.refresh_from_db()
    assert (api_key.read_only, api_key.expiry_date) == (True, expiry)
    assert with_key(api_key.key).post("/api/cam/campaigns/", {"name": "x"}, format="json").status_code == 403


def test_creating_a_key_needs_its_own_permission(client):
    may_change = staff_with(client, "view_camapikey", "change_camapikey")
    assert may_change.get("/admin/cam/camapikey/add/").status_code == 403
    assert may_change.post("/admin/cam/camapikey/add/", {"name": "sneaky"}).status_code == 403
    assert 'href="/admin/cam/camapikey/add/"' not in may_change.get("/admin/cam/camapikey/").content.decode()

    may_create = staff_with(client, "view_camapikey", "create_api_key")
    assert may_create.post("/admin/cam/camapikey/add/", {"name": "allowed"}).status_code == 200
    assert list(CamAPIKey.objects.values_list("name", flat=True)) == ["allowed"]
