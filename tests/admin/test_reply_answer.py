"""Answering a reply from its conversation's page: the composer sends through the real SMTP server, once per form,
and the answer then shows in the thread."""

from __future__ import annotations

import re

import pytest

from cam.models import AnswerSnippet, OutboundEmail
from tests.outreach.test_answers import a_warm_reply

pytestmark = pytest.mark.django_db


def thread_url(reply) -> str:
    return f"/admin/cam/reply/{reply.pk}/thread/"


def test_staff_answer_from_the_thread_once_and_see_the_answer_there(admin_client, smtp_server):
    reply = a_warm_reply(smtp_server)
    AnswerSnippet.objects.create(name="Meeting link", body="Pick a time, {{ first_name }}: https://cal.example.com/alex")
    page = admin_client.get(thread_url(reply)).content.decode()
    assert "Send answer" in page and "From <strong>alex@outreach.example.com</strong>" in page
    assert 'data-text="Pick a time, Anna: https://cal.example.com/alex"' in page  # rendered for this lead
    key = re.search(r'name="key" value="([0-9a-f]+)"', page).group(1)

    form = {"body": "Great, Tuesday 10:00 works.", "key": key}
    response = admin_client.post(f"/admin/cam/reply/{reply.pk}/answer/", form, follow=True)
    assert "Answer sent to anna@brightlane.test from alex@outreach.example.com." in response.content.decode()
    again = admin_client.post(f"/admin/cam/reply/{reply.pk}/answer/", form, follow=True)  # a double click
    assert "already sent" in again.content.decode()

    assert len(smtp_server.messages) == 2  # the first step, and the answer once
    answer = OutboundEmail.objects.get(kind=OutboundEmail.Kind.MANUAL)
    assert answer.author.username == response.wsgi_request.user.username
    assert "Great, Tuesday 10:00 works." in admin_client.get(thread_url(reply)).content.decode()


def test_an_answer_that_cannot_go_says_why_on_the_thread(admin_client, smtp_server):
    reply = a_warm_reply(smtp_server)
    response = admin_client.post(f"/admin/cam/reply/{reply.pk}/answer/", {"body": "", "key": "a" * 32}, follow=True)
    assert "Write the answer first" in response.content.decode()
    assert not OutboundEmail.objects.filter(kind=OutboundEmail.Kind.MANUAL).exists()


def test_who_may_not_work_replies_gets_no_composer_and_cannot_post(client, smtp_server):
    from django.contrib.auth.models import Permission

    from tests.factories import UserFactory

    reply = a_warm_reply(smtp_server)
    reader = UserFactory(is_staff=True)
    reader.user_permissions.set(Permission.objects.filter(codename="view_inboundemail"))
    client.force_login(reader)
    assert "Send answer" not in client.get(thread_url(reply)).content.decode()
    assert client.post(f"/admin/cam/reply/{reply.pk}/answer/", {"body": "Hi", "key": "b" * 32}).status_code == 403
    assert len(smtp_server.messages) == 1
