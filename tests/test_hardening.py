"""The back office resists password guessing (django-axes), and secrets stay out of logs and pages."""

from __future__ import annotations

import logging
import sys
from urllib.parse import urlencode

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command
from django.test import Client
from django.views.debug import ExceptionReporter

from tests.factories import CamAPIKeyFactory, SuperuserFactory, UserFactory

pytestmark = pytest.mark.django_db
PASSWORD = "the-right-password-42"
LOGIN = "/admin/login/?next=/admin/"


def log_in(client: Client, username: str, password: str, *, address: str = "10.0.0.7"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


def lock_out(client: Client, username: str, *, address: str = "10.0.0.7", times: int = 5) -> None:
    """``times`` wrong passwords: the form again each time, and the lockout answer at the fifth."""
    for n in range(1, times + 1):
        assert log_in(client, username, "wrong", address=address).status_code == (429 if n == 5 else 200)


def test_it_locks_a_username_and_address_out_after_the_failure_limit_even_with_the_right_password(settings):
    assert settings.AXES_FAILURE_LIMIT == 5
    SuperuserFactory(username="boss", password=PASSWORD)
    client = Client()
    lock_out(client, "boss", times=4)
    response = log_in(client, "boss", "wrong")
    assert response.status_code == 429
    assert AccessAttempt.objects.get(username="boss").failures_since_start == 5
    assert "Account locked: too many login attempts" in response.content.decode()
    refused = log_in(client, "boss", PASSWORD)
    assert refused.status_code == 429
    assert "_auth_user_id" not in client.session
    # Locked by username and address together: the same user from elsewhere, or another user, still logs in.
    assert log_in(Client(), "boss", PASSWORD, address="10.0.0.8").status_code == 302


def test_a_success_before_the_limit_clears_the_count():
    SuperuserFactory(username="boss", password=PASSWORD)
    lock_out(Client(), "boss", times=4)
    assert log_in(Client(), "boss", PASSWORD).status_code == 302
    lock_out(Client(), "boss", times=4)
    assert log_in(Client(), "boss", PASSWORD).status_code == 302


def test_staff_lift_a_lockout_in_the_admin():
    SuperuserFactory(username="boss", password=PASSWORD)
    lock_out(Client(), "boss")
    assert log_in(Client(), "boss", PASSWORD).status_code == 429
    staff = Client()
    staff.force_login(SuperuserFactory(username="ops"))
    changelist = staff.get("/admin/axes/accessattempt/")
    assert changelist.status_code == 200 and "boss" in changelist.content.decode()
    attempt = AccessAttempt.objects.get(username="boss")
    response = staff.post("/admin/axes/accessattempt/", {"action": "delete_selected", "_selected_action": [attempt.pk],
                                                         "post": "yes"})
    assert response.status_code == 302
    assert log_in(Client(), "boss", PASSWORD).status_code == 302


def test_staff_lift_a_lockout_with_the_axes_reset_command():
    SuperuserFactory(username="boss", password=PASSWORD)
    lock_out(Client(), "boss")
    assert log_in(Client(), "boss", PASSWORD).status_code == 429
    call_command("axes_reset_username", "boss", stdout=sys.stdout)
    assert log_in(Client(), "boss", PASSWORD).status_code == 302
    lock_out(Client(), "boss")
    call_command("axes_reset", stdout=sys.stdout)
    assert log_in(Client(), "boss", PASSWORD).status_code == 302


def test_the_client_address_is_remote_addr_unless_proxies_are_declared(settings):
    SuperuserFactory(username="boss", password=PASSWORD)
    # A forged X-Forwarded-For changes nothing: each guess still counts against the real address.
    for n in range(5):
        Client().post(LOGIN, {"username": "boss", "password": "wrong"}, REMOTE_ADDR="10.0.0.7",
                      HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
    assert log_in(Client(), "boss", PASSWORD).status_code == 429
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"10.0.0.7"}


def test_api_keys_and_sessions_are_never_counted_or_locked(client):
    user = SuperuserFactory(username="boss", password=PASSWORD)
    lock_out(Client(), "boss", address="127.0.0.1")
    api_key = CamAPIKeyFactory()
    # Failed keys are CAM's own to count (cam.api.key_guesses, per address): from another address here, so
    # the valid key below is answered whatever that count says; django-axes counts none of them.
    for _ in range(10):
        response = Client().get("/api/schema/", HTTP_AUTHORIZATION="Api-Key nope.nothing", REMOTE_ADDR="198.51.100.20")
        assert response.status_code == 401
    assert Client().get("/api/schema/", HTTP_AUTHORIZATION=f"Api-Key {api_key.key}").status_code == 200
    client.force_login(user)  # an existing session keeps working through a lockout of new logins
    assert client.get("/admin/").status_code == 200
    assert AccessAttempt.objects.get().failures_since_start == 5


def test_the_api_key_never_reaches_the_logs(caplog):
    api_key = CamAPIKeyFactory(read_only=True)
    secret = api_key.key.split(".", 1)[1]
    caplog.set_level(logging.DEBUG)
    client = Client(HTTP_AUTHORIZATION=f"Api-Key {api_key.key}")
    client.get("/api/schema/")
    client.get("/api/cam/no-such-thing/")  # 404, logged by django.request
    client.post("/api/schema/", {}, content_type="application/json")  # 403/405, logged
    Client(HTTP_AUTHORIZATION=f"Api-Key {api_key.prefix}.wrong").get("/api/schema/")  # 401, logged
    assert "django.request" in {record.name for record in caplog.records}
    assert secret not in caplog.text
    assert api_key.key not in caplog.text


def test_an_error_report_hides_the_authorization_header(rf):
    api_key = CamAPIKeyFactory()
    request = rf.get("/api/cam/leads/", HTTP_AUTHORIZATION=f"Api-Key {api_key.key}")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        report = ExceptionReporter(request, *sys.exc_info()).get_traceback_text()
    assert "HTTP_AUTHORIZATION" in report
    assert api_key.key not in report


def test_a_non_staff_user_cannot_open_the_back_office():
    client = Client()
    client.force_login(UserFactory(is_staff=False))
    assert client.get("/admin/").status_code == 302


# A NUL character reaches PostgreSQL as an error (a 500) wherever a value is looked up or stored; these
# run on SQLite and PostgreSQL alike, and answer 400 on both.
NUL_MESSAGE = "The request holds a NUL character (%00), which nothing on this site accepts."


@pytest.mark.parametrize("url", [
    "/admin/cam/lead/?q=%00",
    "/admin/cam/lead/?email=%00",
    "/admin/cam/lead/?email=a%00b&status=NEW",
    "/admin/cam/inboundemail/?q=x%00",
    "/admin/cam/camapikey/%00/change/",  # a key's id is text: the NUL would be looked up
    "/u/%00/",
])
def test_a_nul_in_an_admin_filter_or_a_path_is_a_plain_400(admin_client, url):
    CamAPIKeyFactory()
    response = admin_client.get(url)
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode() == NUL_MESSAGE


@pytest.mark.parametrize("encoding", ["multipart", "urlencoded"])
def test_a_nul_in_a_form_field_is_a_400_before_anything_stores_it(client, encoding):
    form = {"username": "bo\x00ss", "password": PASSWORD}
    if encoding == "urlencoded":
        response = client.post(LOGIN, urlencode(form), content_type="application/x-www-form-urlencoded",
                               REMOTE_ADDR="10.0.0.7")
    else:
        response = client.post(LOGIN, form, REMOTE_ADDR="10.0.0.7")
    assert (response.status_code, response.content.decode()) == (400, NUL_MESSAGE)
    assert not AccessAttempt.objects.exists()


def test_a_nul_in_the_session_cookie_is_a_400_rather_than_a_session_lookup(client):
    client.cookies["sessionid"] = "abcdefgh\x00ijklmnop"
    response = client.get("/admin/login/")
    assert (response.status_code, response.content.decode()) == (400, NUL_MESSAGE)


def test_a_nul_in_an_api_query_is_a_json_400(settings):
    client = Client()
    api_key = CamAPIKeyFactory()
    response = client.get("/api/cam/leads/?email=%00", HTTP_AUTHORIZATION=f"Api-Key {api_key.key}")
    assert response.status_code == 400
    assert response.json() == {"detail": NUL_MESSAGE}


def test_an_encoded_percent_sign_is_not_a_nul(admin_client):
    assert admin_client.get("/admin/cam/lead/?q=%2500").status_code == 200
