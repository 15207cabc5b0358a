"""Who may call the API, and what a client's malformed request gets back.

The mechanism is tested on a tiny view of its own (``urlpatterns`` below), with the project's default
authentication, permission, throttle, parser and exception handler, so it does not depend on any
resource module.
"""

from __future__ import annotations

import io
import json
import re
from datetime import date, timedelta

import pytest
from django.contrib import admin
from django.core.exceptions import TooManyFieldsSent, ValidationError
from django.core.management import CommandError, call_command
from django.http import HttpResponse
from django.test import Client
from django.urls import include, path
from django.utils import timezone
from django.views.decorators.csrf import ensure_csrf_cookie
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.test import APIClient
from rest_framework.views import APIView
from rest_framework_api_key.models import APIKey

from cam.api.auth import actor_of
from cam.api.serializers import StrictSerializer
from cam.api_keys import api_key_change
from cam.models import CamAPIKey
from tests.factories import CamAPIKeyFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]


class EchoInput(StrictSerializer):
    name = serializers.CharField(max_length=50)
    count = serializers.IntegerField(min_value=0, required=False)


class Echo(APIView):
    def get(self, request):
        return Response({"items": ["secret data"]})

    def post(self, request):
        serializer = EchoInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(serializer.validated_data, status=201)


class Actor(APIView):
    def get(self, request):
        return Response({"actor": actor_of(request)})


@ensure_csrf_cookie
def page_with_form(request):
    return HttpResponse("<form>")


class Suspicious(APIView):
    def get(self, request):
        raise TooManyFieldsSent("The number of GET/POST parameters exceeded settings.DATA_UPLOAD_MAX_NUMBER_FIELDS.")


def crash(request):
    raise RuntimeError("boom")


def slow_down(request):
    response = HttpResponse("Slow down", status=429, content_type="text/plain")
    response["Retry-After"] = "42"
    response.set_cookie("seen", "1")
    return response


urlpatterns = [path("echo/", Echo.as_view()), path("actor/", Actor.as_view()), path("form/", page_with_form),
               path("api/test/suspicious/", Suspicious.as_view()), path("api/test/crash/", crash),
               path("api/test/slow-down/", slow_down), path("", include("aicmo_site.urls"))]
URL = "/echo/"


def with_key(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


def test_it_answers_401_with_the_api_key_challenge_and_no_data_without_credentials(anon_api):
    response = anon_api.get(URL)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Api-Key"
    assert "secret data" not in response.content.decode()
    assert anon_api.post(URL, {"name": "x"}, format="json").status_code == 401


def test_the_actor_is_the_key_by_name_or_else_prefix_or_the_staff_user(client):
    _, named = CamAPIKey.objects.create_key(name="crm sync")
    assert with_key(named).get("/actor/").json() == {"actor": "api-key:crm sync"}
    unnamed, key = CamAPIKey.objects.create_key(name="")
    assert with_key(key).get("/actor/").json() == {"actor": f"api-key:{unnamed.prefix}"}
    staff = UserFactory(is_staff=True)
    client.force_login(staff)
    assert client.get("/actor/").json() == {"actor": f"staff:{staff.username}"}


@pytest.mark.parametrize("header", ["Api-Key nope.nothing", "Api-Key ", "Api-Key abc", "Api-Key a.b.c"])
def test_it_refuses_an_unknown_or_malformed_key_with_401(header):
    CamAPIKeyFactory()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get(URL)
    assert response.status_code == 401
    assert "secret data" not in response.content.decode()


def test_it_refuses_a_right_prefix_with_a_wrong_secret():
    key = CamAPIKeyFactory().key
    prefix = key.split(".")[0]
    assert with_key(f"{prefix}.{'x' * 32}").get(URL).status_code == 401


def test_it_refuses_a_revoked_key_with_401():
    api_key = CamAPIKeyFactory()
    assert with_key(api_key.key).get(URL).status_code == 200
    api_key.revoked = True
    api_key.save()
    response = with_key(api_key.key).get(URL)
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid, revoked or expired API key."}


def test_it_refuses_an_expired_key_with_401():
    api_key = CamAPIKeyFactory(expiry_date=timezone.now() - timedelta(seconds=1))
    assert with_key(api_key.key).get(URL).status_code == 401


def test_it_accepts_a_key_that_has_not_expired_yet():
    api_key = CamAPIKeyFactory(expiry_date=timezone.now() + timedelta(days=1))
    assert with_key(api_key.key).get(URL).status_code == 200


def test_a_read_only_key_reads_but_cannot_write(read_api):
    assert read_api.get(URL).json() == {"items": ["secret data"]}
    response = read_api.post(URL, {"name": "x"}, format="json")
    assert response.status_code == 403
    assert response.json() == {"detail": "This API key is read-only: it cannot change anything or run jobs."}


def test_a_full_key_reads_and_writes(api):
    assert api.get(URL).status_code == 200
    response = api.post(URL, {"name": "x", "count": 2}, format="json")
    assert response.status_code == 201
    assert response.json() == {"name": "x", "count": 2}


def test_a_staff_session_reads_and_writes_with_its_csrf_token():
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(UserFactory(is_staff=True))
    assert client.get(URL).status_code == 200
    # A session write without the CSRF token is refused: a session alone cannot be ridden by another site.
    refused = client.post(URL, {"name": "x"}, format="json")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    client.get("/form/")
    token = client.cookies["csrftoken"].value
    response = client.post(URL, {"name": "x"}, format="json", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 201


def test_a_non_staff_session_is_refused_with_403_and_no_data():
    client = APIClient()
    client.force_login(UserFactory(is_staff=False))
    response = client.get(URL)
    assert response.status_code == 403
    assert response.json() == {"detail": "Only staff users may use the API with a session."}


def test_an_inactive_staff_session_is_not_accepted():
    user = UserFactory(is_staff=True)
    client = APIClient()
    client.force_login(user)
    user.is_active = False
    user.save()
    assert client.get(URL).status_code in (401, 403)


def test_a_bad_key_is_refused_even_with_a_staff_session():
    # A wrong key is an error to report, not something to paper over with the session.
    client = APIClient()
    client.force_login(UserFactory(is_staff=True))
    client.credentials(HTTP_AUTHORIZATION="Api-Key nope.nothing")
    assert client.get(URL).status_code == 401


def test_it_refuses_a_body_over_the_cap_with_400_naming_the_limit(api, settings):
    settings.AICMO_CAM_API_MAX_BODY_BYTES = 2048
    body = json.dumps({"name": "x" * 4000})
    response = api.post(URL, body, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"detail": "The request body is larger than 2048 bytes."}


def test_it_refuses_a_body_over_the_cap_even_when_content_length_understates_it(api, settings):
    settings.AICMO_CAM_API_MAX_BODY_BYTES = 2048
    body = json.dumps({"name": "x" * 4000}).encode()
    response = api.generic("POST", URL, body, content_type="application/json", CONTENT_LENGTH="10")
    assert response.status_code == 400


def test_it_names_each_unknown_field_with_400(api):
    response = api.post(URL, {"name": "x", "max_lead": 3, "colour": "red"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"colour": ["Unknown field."], "max_lead": ["Unknown field."]}


def test_it_names_the_field_with_a_wrong_type(api):
    response = api.post(URL, {"name": "x", "count": "many"}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["count"]


@pytest.mark.parametrize("body", ['{"name": ', "not json", '{"name": "x",}', "\xff"])
def test_it_refuses_malformed_json_with_400(api, body):
    response = api.post(URL, body, content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


def test_it_refuses_a_json_body_that_is_not_an_object_with_400(api):
    response = api.post(URL, "[1, 2]", content_type="application/json")
    assert response.status_code == 400


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                                          "text/plain", "application/xml"])
def test_it_refuses_other_content_types_with_415(api, content_type):
    response = api.post(URL, "name=x", content_type=content_type)
    assert response.status_code == 415
    assert "Unsupported media type" in response.json()["detail"]


def test_it_refuses_a_deeply_nested_body_with_400_naming_the_problem(api):
    response = api.post(URL, "[" * 1000 + "]" * 1000, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"detail": "The JSON body is nested more than 32 levels deep."}


def test_it_accepts_nesting_up_to_the_limit_and_refuses_one_level_more(api):
    def nested(levels: int) -> str:
        return "[" * levels + "]" * levels

    at_the_limit = api.post(URL, nested(32), content_type="application/json")
    assert at_the_limit.status_code == 400
    assert list(at_the_limit.json()) == ["non_field_errors"]  # parsed: refused only for not being an object
    assert "nested" in api.post(URL, nested(33), content_type="application/json").json()["detail"]


# --- Errors under /api/ are JSON, whatever answers them ---------------------------------------------


def assert_json_error(response, status: int) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"detail"}
    return body


TOO_MANY_PARAMS = "&".join(f"x{n}=1" for n in range(1001))


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
@pytest.mark.parametrize("url", ["/api/cam/replies/", "/api/cam/health/", "/api/cam/nowhere/"])
def test_too_many_query_parameters_are_a_json_400(api, settings, debug, url):
    settings.DEBUG = debug
    body = assert_json_error(api.get(f"{url}?{TOO_MANY_PARAMS}"), 400)
    assert body["detail"] == "Too many query parameters: at most 1000 are accepted."


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
@pytest.mark.parametrize("url", ["/api/cam/replies/", "/api/cam/health/", "/api/schema/"])
def test_a_host_that_is_not_allowed_is_a_json_400(api, settings, debug, url):
    settings.DEBUG = debug
    body = assert_json_error(api.get(url, HTTP_HOST="evil.example"), 400)
    assert body["detail"] == "The Host header is not one this site serves."


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
def test_a_view_reading_too_many_parameters_itself_gets_a_json_400(api, settings, debug):
    settings.DEBUG = debug
    assert_json_error(api.get("/api/test/suspicious/"), 400)


def test_outside_the_api_django_answers_as_usual(settings):
    response = Client().get("/admin/login/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")


def test_the_schema_without_credentials_is_a_json_401_with_the_challenge(anon_api):
    response = anon_api.get("/api/schema/")
    body = assert_json_error(response, 401)
    assert body["detail"] == "Send an API key (Authorization: Api-Key <key>) or log in as staff."
    assert response["WWW-Authenticate"] == "Api-Key"


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
def test_a_server_error_under_the_api_is_a_json_500(settings, debug):
    settings.DEBUG = debug
    body = assert_json_error(Client(raise_request_exception=False).get("/api/test/crash/"), 500)
    assert body["detail"] == "A server error occurred."


def test_an_error_page_keeps_its_status_and_headers_but_becomes_json(api):
    response = api.get("/api/test/slow-down/")
    assert_json_error(response, 429)
    assert response["Retry-After"] == "42"
    assert response.cookies["seen"].value == "1"


def test_an_unknown_url_under_the_api_is_a_json_404(api):
    assert assert_json_error(api.get("/api/cam/no/such/thing/"), 404) == {"detail": "Not found."}


# --- Keys: `manage.py cam_api_key` and the admin ----------------------------------------------------


def run_key_command(*args: str) -> str:
    out = io.StringIO()
    call_command("cam_api_key", *args, stdout=out)
    return out.getvalue()


def test_the_command_creates_a_full_key_printed_once_that_works():
    output = run_key_command("create", "reporting")
    api_key = CamAPIKey.objects.get(name="reporting")
    key = next(line for line in output.splitlines() if line.startswith(f"{api_key.prefix}."))
    assert "will not be shown again" in output
    assert api_key.read_only is False and api_key.expiry_date is None
    assert key not in api_key.hashed_key  # only a hash is stored
    assert with_key(key).post(URL, {"name": "x"}, format="json").status_code == 201


def test_the_command_creates_a_read_only_key_with_an_expiry_date():
    output = run_key_command("create", "dashboards", "--read-only", "--expires", "2099-12-31")
    api_key = CamAPIKey.objects.get(name="dashboards")
    key = next(line for line in output.splitlines() if line.startswith(f"{api_key.prefix}."))
    assert api_key.read_only is True
    assert timezone.localtime(api_key.expiry_date).date() == date(2099, 12, 31)
    assert with_key(key).get(URL).status_code == 200
    assert with_key(key).post(URL, {"name": "x"}, format="json").status_code == 403


@pytest.mark.parametrize(("args", "message"), [
    (["--expires", "31/12/2099"], "--expires '31/12/2099' is not a date"),
    (["--expires", "2099-02-30"], "--expires '2099-02-30' is not a date"),
    (["--expires", "2001-01-01"], "--expires '2001-01-01' is in the past"),
])
def test_the_command_refuses_a_bad_expiry_date(args, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        run_key_command("create", "reporting", *args)
    assert not CamAPIKey.objects.exists()


def test_the_command_refuses_a_duplicate_or_empty_or_long_name():
    run_key_command("create", "reporting")
    with pytest.raises(CommandError, match="An API key named 'reporting' exists already"):
        run_key_command("create", "reporting")
    with pytest.raises(CommandError, match="needs a name"):
        run_key_command("create", "  ")
    with pytest.raises(CommandError, match="at most 50 are allowed"):
        run_key_command("create", "x" * 51)
    assert CamAPIKey.objects.count() == 1


def test_the_command_lists_keys_without_ever_printing_one():
    full = CamAPIKeyFactory(name="crm sync")
    read = CamAPIKeyFactory(name="dashboards", read_only=True, revoked=True)
    output = run_key_command("list")
    assert full.key not in output and read.key not in output
    rows = {line.split()[0]: line.split() for line in output.splitlines()[1:]}
    assert output.splitlines()[0].split() == ["NAME", "PREFIX", "RIGHTS", "STATE", "CREATED", "EXPIRES"]
    assert rows["crm"][2:5] == [full.prefix, "full", "active"]
    assert rows["dashboards"][1:4] == [read.prefix, "read-only", "revoked"]


def test_the_command_lists_nothing_helpfully():
    assert "No API keys" in run_key_command("list")


@pytest.mark.parametrize("by", ["name", "prefix"])
def test_the_command_revokes_a_key_by_name_or_prefix_and_it_stops_working(by):
    api_key = CamAPIKeyFactory(name="crm sync")
    output = run_key_command("revoke", api_key.name if by == "name" else api_key.prefix)
    assert f"Revoked API key 'crm sync' (prefix {api_key.prefix})" in output
    api_key.refresh_from_db()
    assert api_key.revoked is True
    assert with_key(api_key.key).get(URL).status_code == 401
    assert "already revoked" in run_key_command("revoke", api_key.prefix)


def test_the_command_refuses_to_revoke_an_unknown_or_ambiguous_key():
    with pytest.raises(CommandError, match="No API key has the prefix or name 'nope'"):
        run_key_command("revoke", "nope")
    first, second = CamAPIKeyFactory(name="twin"), CamAPIKeyFactory(name="twin")  # the admin allows twins
    with pytest.raises(CommandError, match="2 API keys are named 'twin'"):
        run_key_command("revoke", "twin")
    assert not CamAPIKey.objects.filter(revoked=True).exists()
    run_key_command("revoke", second.prefix)
    assert list(CamAPIKey.objects.filter(revoked=True)) == [second]
    assert first.prefix


def test_the_admin_revokes_keys_with_an_action_and_lists_their_rights(admin_client):
    keep, drop = CamAPIKeyFactory(name="keep"), CamAPIKeyFactory(name="drop", read_only=True)
    changelist = admin_client.get("/admin/cam/camapikey/").content.decode()
    assert "read_only" in changelist or "Read only" in changelist
    response = admin_client.post("/admin/cam/camapikey/", {"action": "revoke", "_selected_action": [drop.pk]},
                                 follow=True)
    assert "1 API key(s) revoked" in response.content.decode()
    keep.refresh_from_db()
    drop.refresh_from_db()
    assert (keep.revoked, drop.revoked) == (False, True)
    assert with_key(drop.key).get(URL).status_code == 401
    assert with_key(keep.key).get(URL).status_code == 200


@pytest.mark.parametrize("change", [{"read_only": False}, {"expiry_date": None},
                                    {"expiry_date": timezone.now() + timedelta(days=3650)}])
def test_no_door_changes_a_keys_rights_or_expiry_once_it_is_created(change):
    api_key = CamAPIKeyFactory(name="dashboards", read_only=True, expiry_date=timezone.now() + timedelta(days=30))
    stored = CamAPIKey.objects.values_list("read_only", "expiry_date").get()

    with pytest.raises(ValidationError, match="Fixed when the key was created"):
        api_key_change(api_key=api_key, **change)
    loaded = CamAPIKey.objects.get()
    for name, value in change.items():
        setattr(loaded, name, value)
    with pytest.raises(ValidationError, match="Fixed when the key was created"):
        loaded.save()

    assert CamAPIKey.objects.values_list("read_only", "expiry_date").get() == stored
    assert with_key(api_key.key).post(URL, {"name": "x"}, format="json").status_code == 403


def test_a_key_is_renamed_and_revoked_through_the_service():
    api_key = CamAPIKeyFactory(name="old name", read_only=True)
    CamAPIKeyFactory(name="taken")
    with pytest.raises(ValidationError, match="exists already"):
        api_key_change(api_key=api_key, name="TAKEN")
    api_key_change(api_key=api_key, name=" new name ", revoked=True)
    api_key.refresh_from_db()
    assert (api_key.name, api_key.revoked, api_key.read_only) == ("new name", True, True)
    with pytest.raises(ValidationError, match="cannot be undone"):
        api_key_change(api_key=api_key, revoked=False)


def test_the_admin_shows_one_kind_of_key():
    assert admin.site.is_registered(CamAPIKey)
    assert not admin.site.is_registered(APIKey)
