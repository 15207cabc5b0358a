"""The reply desk over the API: a reply marked handled or assigned, through the same services as the back
office; who may do it; bad input named."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from rest_framework.test import APIClient

from cam.models import InboundEmail
from tests import factories
from tests.inbox.test_desk import staff_who_may_work

pytestmark = pytest.mark.django_db
REPLIES = reverse("cam-api:reply-list")


def handled_url(pk) -> str:
    return reverse("cam-api:reply-handled", args=[pk])


def assign_url(pk) -> str:
    return reverse("cam-api:reply-assign", args=[pk])


@pytest.fixture
def reply():
    return factories.InboundEmailFactory(lead=factories.LeadFactory(), category="POSITIVE")


def session_of(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def test_a_key_marks_a_reply_handled_with_nobody_named_and_puts_it_back(api, reply):
    response = api.post(handled_url(reply.pk), format="json")

    assert response.status_code == 200
    body = response.json()
    assert body["handled_at"] is not None and body["handled_by"] is None
    assert InboundEmail.objects.get(pk=reply.pk).handled_at is not None

    response = api.post(handled_url(reply.pk), {"handled": False}, format="json")
    assert (response.status_code, response.json()["handled_at"]) == (200, None)


def test_a_staff_session_marks_a_reply_handled_in_its_own_name(reply):
    user = staff_who_may_work(username="anna")

    response = session_of(user).post(handled_url(reply.pk), {"handled": True}, format="json")

    assert response.status_code == 200
    assert response.json()["handled_by"] == user.pk
    assert InboundEmail.objects.get(pk=reply.pk).handled_by == user


def test_a_reply_handled_already_keeps_who_handled_it(api, reply):
    first = staff_who_may_work(username="anna")
    session_of(first).post(handled_url(reply.pk), format="json")
    handled_at = InboundEmail.objects.get(pk=reply.pk).handled_at

    response = api.post(handled_url(reply.pk), format="json")

    assert response.status_code == 200
    assert response.json()["handled_by"] == first.pk
    assert InboundEmail.objects.get(pk=reply.pk).handled_at == handled_at


def test_it_assigns_a_reply_and_takes_it_back(api, reply):
    anna = staff_who_may_work(username="anna")

    response = api.post(assign_url(reply.pk), {"assigned_to": anna.pk}, format="json")
    assert (response.status_code, response.json()["assigned_to"]) == (200, anna.pk)

    response = api.post(assign_url(reply.pk), {"assigned_to": None}, format="json")
    assert (response.status_code, response.json()["assigned_to"]) == (200, None)
    assert InboundEmail.objects.get(pk=reply.pk).assigned_to is None


@pytest.mark.parametrize(("body", "message"), [
    ({"assigned_to": 999999}, "No user has the id 999999."),
    ({"assigned_to": "anna"}, "Incorrect type. Expected an id (a whole number), received str."),
    ({}, "This field is required."),
    ({"assigned_to": "viewer"}, "viewer cannot be given replies: only active staff members who may change replies"),
])
def test_it_refuses_to_assign_a_reply_to_someone_who_cannot_take_it_and_says_why(api, reply, body, message):
    viewer = factories.UserFactory(username="viewer")
    viewer.user_permissions.add(Permission.objects.get(codename="view_inboundemail"))
    if body.get("assigned_to") == "viewer":
        body = {"assigned_to": viewer.pk}

    response = api.post(assign_url(reply.pk), body, format="json")

    assert response.status_code == 400
    [said] = response.json()["assigned_to"]
    assert said.startswith(message)
    assert InboundEmail.objects.get(pk=reply.pk).assigned_to is None


@pytest.mark.parametrize(("body", "field"), [({"handled": "maybe"}, "handled"), ({"note": "x"}, "note")])
def test_it_refuses_a_bad_handled_body_by_field(api, reply, body, field):
    response = api.post(handled_url(reply.pk), body, format="json")
    assert (response.status_code, list(response.json())) == (400, [field])


def test_a_read_only_key_or_none_changes_nothing(read_api, anon_api, reply):
    for client, status in ((read_api, 403), (anon_api, 401)):
        assert client.post(handled_url(reply.pk), format="json").status_code == status
        assert client.post(assign_url(reply.pk), {"assigned_to": None}, format="json").status_code == status
    assert InboundEmail.objects.get(pk=reply.pk).handled_at is None


def test_the_replies_list_by_handled_and_by_assignee(api, reply):
    anna = staff_who_may_work(username="anna")
    handled = factories.InboundEmailFactory(category="NEGATIVE", subject="handled")
    api.post(handled_url(handled.pk), format="json")
    api.post(assign_url(reply.pk), {"assigned_to": anna.pk}, format="json")

    def ids(params):
        response = api.get(REPLIES, params)
        assert response.status_code == 200, response.json()
        return [row["id"] for row in response.json()["results"]]

    assert ids({"handled": "true"}) == [handled.pk]
    assert ids({"handled": "false"}) == [reply.pk]
    assert ids({"assigned_to": anna.pk}) == [reply.pk]
    assert api.get(REPLIES, {"handled": "perhaps"}).status_code == 400
