"""One-click unsubscribe: the signed link, the RFC 8058 POST, the page behind GET, and what they change."""

from urllib.parse import quote, unquote, urlsplit

import pytest
from django.core import signing
from django.test import Client
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from cam.leads import lead_unsubscribe
from cam.models import Lead, Mailbox, OutboundEmail, Suppression
from cam.outreach.unsubscribe import (
    InvalidUnsubscribeToken,
    lead_from_token,
    list_unsubscribe_headers,
    unsubscribe_mailto,
    unsubscribe_token,
    unsubscribe_url,
)
from tests.factories import CampaignFactory, LeadFactory, MailboxFactory, OutboundEmailFactory

pytestmark = pytest.mark.django_db

Status = Lead.Status
Email = OutboundEmail.Status
ONE_CLICK_BODY = "List-Unsubscribe=One-Click"


@pytest.fixture
def lead():
    return LeadFactory(email="jane.doe@acme.test", status=Status.IN_SEQUENCE, current_step=1,
                       next_send_at=timezone.now())


@given(pk=st.integers(min_value=1, max_value=2**63 - 1),
       secret_key=st.sampled_from(["django-insecure-test-key", "ünïcode secret with spaces", "x" * 80]))
def test_the_token_is_what_djangos_signer_makes_of_the_leads_id(pk, secret_key):
    from django.test import override_settings

    with override_settings(SECRET_KEY=secret_key):
        token = unsubscribe_token(Lead(pk=pk))
        assert token == signing.Signer(salt="cam.unsubscribe").sign_object(pk)
        assert signing.Signer(salt="cam.unsubscribe").unsign_object(token) == pk
        # The mailto subject is the token as quoting leaves it (written out, not quoted, when it is made).
        mailto = unsubscribe_mailto(Lead(pk=pk), Mailbox(from_email="sales@acme.test"))
        assert mailto == f"mailto:sales@acme.test?subject={quote(f'unsubscribe {token}', safe=':')}"


def path_of(lead) -> str:
    return urlsplit(unsubscribe_url(lead)).path


def one_click(lead, client=None):
    # What Gmail, Yahoo and the rest send: form data, no cookies, no CSRF token.
    client = client or Client(enforce_csrf_checks=True)
    return client.post(path_of(lead), data=ONE_CLICK_BODY, content_type="application/x-www-form-urlencoded")


def test_it_unsubscribes_on_a_one_click_post_without_a_csrf_token(lead):
    sent = OutboundEmailFactory(lead=lead, status=Email.SENT)
    pending = OutboundEmailFactory(lead=lead, status=Email.PENDING)
    retry = OutboundEmailFactory(lead=lead, status=Email.RETRY)

    response = one_click(lead)

    assert response.status_code == 200
    assert "You are unsubscribed" in response.content.decode()
    lead.refresh_from_db()
    assert lead.status == Status.UNSUBSCRIBED
    assert lead.status_reason == "The address unsubscribed (one-click unsubscribe from the mail client)."
    assert lead.status_changed_at is not None
    assert lead.next_send_at is None
    suppression = Suppression.objects.get()
    assert (suppression.email, suppression.reason) == ("jane.doe@acme.test", Suppression.Reason.UNSUBSCRIBED)
    assert suppression.source == "one-click unsubscribe from the mail client"
    statuses = dict(OutboundEmail.objects.values_list("pk", "status"))
    assert statuses == {sent.pk: Email.SENT, pending.pk: Email.CANCELLED, retry.pk: Email.CANCELLED}
    pending.refresh_from_db()
    assert pending.last_error == ("Cancelled before sending: the address unsubscribed "
                                  "(one-click unsubscribe from the mail client).")


def test_it_stops_the_same_address_in_every_other_campaign(lead):
    waiting = LeadFactory(email=lead.email, campaign=CampaignFactory(name="Spring"), status=Status.QUALIFIED)
    mailing = LeadFactory(email=lead.email, status=Status.IN_SEQUENCE, next_send_at=timezone.now())
    its_email = OutboundEmailFactory(lead=mailing, status=Email.PENDING)
    replied = LeadFactory(email=lead.email, status=Status.INTERESTED)
    stranger = LeadFactory(email="someone.else@acme.test", status=Status.IN_SEQUENCE)
    strangers_email = OutboundEmailFactory(lead=stranger, status=Email.PENDING)

    assert one_click(lead).status_code == 200

    statuses = dict(Lead.objects.values_list("pk", "status"))
    assert statuses == {lead.pk: Status.UNSUBSCRIBED, waiting.pk: Status.UNSUBSCRIBED,
                        mailing.pk: Status.UNSUBSCRIBED, replied.pk: Status.INTERESTED,
                        stranger.pk: Status.IN_SEQUENCE}
    waiting.refresh_from_db()
    assert waiting.status_reason == (f"The address unsubscribed (campaign “{lead.campaign.name}”, "
                                     "one-click unsubscribe from the mail client).")
    assert OutboundEmail.objects.get(pk=its_email.pk).status == Email.CANCELLED
    assert OutboundEmail.objects.get(pk=strangers_email.pk).status == Email.PENDING
    assert Suppression.objects.count() == 1


def test_it_shows_a_page_with_a_button_on_get_and_changes_nothing(lead):
    pending = OutboundEmailFactory(lead=lead, status=Email.PENDING)

    response = Client(enforce_csrf_checks=True).get(path_of(lead))

    assert response.status_code == 200
    body = response.content.decode()
    assert f'<form method="post" action="{path_of(lead)}">' in body
    assert '<button type="submit">Unsubscribe</button>' in body
    assert "j***@acme.test" in body
    assert "jane.doe" not in body
    lead.refresh_from_db()
    assert lead.status == Status.IN_SEQUENCE
    assert not Suppression.objects.exists()
    assert OutboundEmail.objects.get(pk=pending.pk).status == Email.PENDING


def test_it_unsubscribes_when_the_pages_button_is_pressed(lead):
    response = Client(enforce_csrf_checks=True).post(path_of(lead))

    assert response.status_code == 200
    lead.refresh_from_db()
    assert lead.status == Status.UNSUBSCRIBED
    assert Suppression.objects.get().source == "unsubscribe page"


def test_it_says_so_on_get_once_unsubscribed(lead):
    one_click(lead)

    body = Client().get(path_of(lead)).content.decode()

    assert "already off our list" in body
    assert "<form" not in body


@pytest.mark.parametrize("method", ["get", "post"])
def test_it_answers_a_tampered_or_made_up_token_with_a_400_page_that_says_what_to_do(lead, method):
    token = unsubscribe_token(lead)
    other_salt = signing.Signer(salt="cam.something-else").sign_object(lead.pk)
    deleted = LeadFactory()
    deleted_token = unsubscribe_token(deleted)
    deleted.delete()
    client = Client(enforce_csrf_checks=True)

    for bad in (token[:-1] + ("A" if token[-1] != "A" else "B"), "garbage", "NDI", other_salt, deleted_token,
                signing.Signer(salt="cam.unsubscribe").sign_object("42")):
        response = (client.get(f"/u/{bad}/") if method == "get" else
                    client.post(f"/u/{bad}/", data=ONE_CLICK_BODY, content_type="application/x-www-form-urlencoded"))
        assert response.status_code == 400, bad
        body = response.content.decode()
        assert "This unsubscribe link does not work" in body
        assert "reply to our email with the word “unsubscribe”" in body

    lead.refresh_from_db()
    assert lead.status == Status.IN_SEQUENCE
    assert not Suppression.objects.exists()


def test_it_answers_200_to_a_second_post_and_keeps_one_suppression(lead):
    first = one_click(lead)
    lead.refresh_from_db()
    changed_at = lead.status_changed_at

    second = one_click(lead)

    assert (first.status_code, second.status_code) == (200, 200)
    assert Suppression.objects.count() == 1
    lead.refresh_from_db()
    assert lead.status == Status.UNSUBSCRIBED
    assert lead.status_changed_at == changed_at


def test_it_reports_whether_the_service_changed_anything(lead):
    assert lead_unsubscribe(lead=lead, source="test") is True
    assert lead.status == Status.UNSUBSCRIBED
    assert lead_unsubscribe(lead=lead, source="test") is False


def test_it_keeps_pages_out_of_search_engines_and_referrers(lead):
    for response in (Client().get(path_of(lead)), one_click(lead), Client().get("/u/garbage/")):
        assert response["X-Robots-Tag"] == "noindex, nofollow"
        assert response["Referrer-Policy"] == "no-referrer"
        assert "no-store" in response["Cache-Control"]
        assert "default-src 'none'" in response["Content-Security-Policy"]


def test_it_refuses_other_methods(lead):
    assert Client().put(path_of(lead)).status_code == 405
    lead.refresh_from_db()
    assert lead.status == Status.IN_SEQUENCE


def test_it_builds_list_unsubscribe_headers_in_the_rfc_format(lead, settings):
    settings.AICMO_CAM_PUBLIC_URL = "https://cam.example.com"
    token = unsubscribe_token(lead)

    with_reply_to = list_unsubscribe_headers(lead, MailboxFactory(from_email="alex@outreach.test",
                                                                  reply_to="replies@outreach.test"))
    without = list_unsubscribe_headers(lead, MailboxFactory(from_email="sam@outreach.test"))

    assert with_reply_to == {
        "List-Unsubscribe": (f"<https://cam.example.com/u/{token}/>, "
                             f"<mailto:replies@outreach.test?subject=unsubscribe%20{token}>"),
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert without["List-Unsubscribe"] == (f"<https://cam.example.com/u/{token}/>, "
                                           f"<mailto:sam@outreach.test?subject=unsubscribe%20{token}>")


def test_it_builds_the_url_reverse_would_build_under_any_script_prefix(lead, settings):
    from django.urls import reverse, set_script_prefix

    settings.AICMO_CAM_PUBLIC_URL = "https://cam.example.com"
    for prefix in ("/", "/cam/"):
        set_script_prefix(prefix)
        try:
            expected = "https://cam.example.com" + reverse("cam:unsubscribe", kwargs={"token": unsubscribe_token(lead)})
            assert unsubscribe_url(lead) == expected
        finally:
            set_script_prefix("/")
    assert unsubscribe_url(lead).startswith("https://cam.example.com/u/")


def test_it_reads_the_lead_back_from_the_url_and_the_mailto_subject(lead):
    other = LeadFactory()
    mailto = unsubscribe_mailto(lead, MailboxFactory())
    subject_token = unquote(mailto.partition("?subject=")[2]).removeprefix("unsubscribe ")

    assert lead_from_token(path_of(lead).split("/")[2]) == lead
    assert lead_from_token(subject_token) == lead
    assert unsubscribe_token(other) != unsubscribe_token(lead)
    with pytest.raises(InvalidUnsubscribeToken):
        lead_from_token(unsubscribe_token(lead).replace(":", ":x", 1))
