"""OAuth2 mailboxes against real servers on loopback: a stand-in authorization server (tests.servers.oauth),
aiosmtpd taking SASL XOAUTH2, and Dovecot with its oauth2 passdb asking the stand-in to introspect tokens.

Connected through the admin (PKCE, state), a mailbox sends a sequence email over SMTP and reads a reply over
IMAP with XOAUTH2; an access token that stops working mid-run is refreshed once; a revoked grant marks the
mailbox, holds its leads and alerts a person once, and nothing tries the provider again."""

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.db import connection
from django.utils import timezone

from cam.inbox.polling import inbox_poll
from cam.mail_oauth import access_token, authorization_start
from cam.mailboxes.connection_test import mailbox_connection_test
from cam.models import HumanAlertLog, InboundEmail, Lead, Mailbox, OutboundEmail
from cam.outreach.planning import outreach_plan
from cam.outreach.sending import outreach_send
from tests.factories import CampaignFactory, LeadFactory, MailboxFactory, SequenceStepFactory
from tests.servers.imap import DovecotServer
from tests.servers.oauth import CLIENT_ID, CLIENT_SECRET, OAuthServer
from tests.servers.smtp import SmtpTestServer

USER = "alice@example.com"


@pytest.fixture(scope="module")
def oauth_server():
    with OAuthServer(user=USER) as server:
        yield server


@pytest.fixture(scope="module")
def oauth_imap(oauth_server):
    with DovecotServer(introspection_url=oauth_server.url("/introspect")) as server:
        yield server


@pytest.fixture
def xoauth2_smtp(oauth_server):
    with SmtpTestServer(xoauth2=oauth_server.valid) as server:
        yield server


@pytest.fixture(autouse=True)
def generic_provider(settings, oauth_server):
    settings.AICMO_CAM_OAUTH_GENERIC_CLIENT_ID = CLIENT_ID
    settings.AICMO_CAM_OAUTH_GENERIC_CLIENT_SECRET = CLIENT_SECRET
    settings.AICMO_CAM_OAUTH_GENERIC_AUTHORIZE_URL = oauth_server.url("/authorize")
    settings.AICMO_CAM_OAUTH_GENERIC_TOKEN_URL = oauth_server.url("/token")
    settings.AICMO_CAM_OAUTH_GENERIC_SCOPES = "mail offline_access openid email"
    settings.AICMO_CAM_PUBLIC_URL = "http://testserver"
    settings.AICMO_CAM_ALERT_EMAILS = ["ops@example.com"]


def oauth_mailbox(*, smtp=None, imap=None, refresh_token="", **fields) -> Mailbox:
    values = {"provider": Mailbox.Provider.SMTP, "auth": Mailbox.Auth.OAUTH2,
              "oauth_provider": Mailbox.OAuthProvider.GENERIC, "from_email": USER, "daily_cap": 1000,
              "min_gap_seconds": 0, "oauth_refresh_token": refresh_token,
              "oauth_account": USER if refresh_token else ""}
    if smtp is not None:
        values |= {"smtp_host": smtp.host, "smtp_port": smtp.port, "smtp_security": "none"}
    if imap is not None:
        values |= {"imap_host": imap.host, "imap_port": imap.port, "imap_security": "none"}
    return MailboxFactory(**(values | fields))


def campaign_with_due_leads(mailbox: Mailbox, count: int):
    owner = CampaignFactory(send_days=[1, 2, 3, 4, 5, 6, 7], send_start_hour=0, send_end_hour=24, daily_cap=10_000)
    owner.mailboxes.set([mailbox])
    SequenceStepFactory(campaign=owner, position=1, subject_template="Hello {{ company }}", body_template="Hi.")
    SequenceStepFactory(campaign=owner, position=2, subject_template="", body_template="Bump.", delay_days=2)
    leads = [LeadFactory(campaign=owner, status=Lead.Status.IN_SEQUENCE,
                         next_send_at=timezone.now() - timedelta(minutes=1)) for _ in range(count)]
    return owner, leads


def send_now():
    outreach_plan()
    return outreach_send(inline=True)


def mailbox_alerts():
    return list(HumanAlertLog.objects.filter(alert_type=HumanAlertLog.AlertType.MAILBOX_DISCONNECTED))


@pytest.mark.django_db
def test_connect_in_the_admin_runs_the_code_flow_with_pkce_and_stores_the_refresh_token_encrypted(
        admin_client, oauth_server):
    mailbox = oauth_mailbox()

    start = admin_client.get(f"/admin/cam/mailbox/{mailbox.pk}/oauth/connect/")
    assert start.status_code == 302 and start["Location"].startswith(oauth_server.url("/authorize"))
    asked = parse_qs(urlsplit(start["Location"]).query)
    assert asked["code_challenge_method"] == ["S256"] and asked["code_challenge"][0]
    assert asked["redirect_uri"] == ["http://testserver/admin/cam/mailbox/oauth/callback/"]
    assert asked["scope"] == ["mail offline_access openid email"]
    # The browser at the provider: the person consents, and is sent back with a code and the state.
    back = requests.get(start["Location"], allow_redirects=False, timeout=10)
    callback = urlsplit(back.headers["Location"])
    done = admin_client.get(callback.path + "?" + callback.query)

    assert done.status_code == 302 and done["Location"] == f"/admin/cam/mailbox/{mailbox.pk}/change/"
    mailbox.refresh_from_db()
    refresh = next(iter(grant for grant in oauth_server.grants if oauth_server.grants[grant].user == USER
                        and mailbox.oauth_refresh_token.reveal() == grant))
    assert mailbox.oauth_account == USER and mailbox.oauth_refreshed_at is not None and not mailbox.needs_reconnect
    with connection.cursor() as cursor:
        cursor.execute("SELECT oauth_refresh_token, oauth_access_token FROM cam_mailbox WHERE id = %s", [mailbox.pk])
        stored = cursor.fetchone()
    assert refresh not in stored[0] and stored[0].startswith("gAAAAA") and stored[1].startswith("gAAAAA")
    page = admin_client.get(f"/admin/cam/mailbox/{mailbox.pk}/change/").content.decode()
    assert f"Connected as {USER}" in page and "token last refreshed" in page
    assert refresh not in page and stored[0] not in page


@pytest.mark.django_db
def test_a_callback_whose_state_this_session_did_not_start_is_refused(admin_client, client, superuser, oauth_server):
    mailbox = oauth_mailbox()
    start = admin_client.get(f"/admin/cam/mailbox/{mailbox.pk}/oauth/connect/")
    back = urlsplit(requests.get(start["Location"], allow_redirects=False, timeout=10).headers["Location"])
    other = type(client)()
    other.force_login(superuser)  # the same person in another browser: a session that started nothing

    refused = other.get(back.path + "?" + back.query, follow=True)

    assert "was not started from this browser session" in refused.content.decode()
    mailbox.refresh_from_db()
    assert not mailbox.oauth_refresh_token


@pytest.mark.django_db
def test_the_callback_is_for_staff_only(client, oauth_server):
    answer = client.get("/admin/cam/mailbox/oauth/callback/?state=x&code=y")

    assert answer.status_code == 302 and "/login/" in answer["Location"]


@pytest.mark.django_db
def test_it_sends_a_sequence_email_over_smtp_with_xoauth2(oauth_server, xoauth2_smtp):
    mailbox = oauth_mailbox(smtp=xoauth2_smtp, refresh_token=oauth_server.grant())
    campaign_with_due_leads(mailbox, 1)

    assert send_now()["sent"] == 1

    assert xoauth2_smtp.logins == [USER]
    [received] = xoauth2_smtp.messages
    assert received.parsed["Subject"].startswith("Hello ")
    assert OutboundEmail.objects.get().status == OutboundEmail.Status.SENT


@pytest.mark.django_db
def test_an_access_token_that_stops_working_mid_run_is_refreshed_once(oauth_server, xoauth2_smtp):
    mailbox = oauth_mailbox(smtp=xoauth2_smtp, refresh_token=oauth_server.grant())
    _, leads = campaign_with_due_leads(mailbox, 2)
    assert send_now()["sent"] == 2
    refreshes = oauth_server.refreshes
    cached = Mailbox.objects.get(pk=mailbox.pk).oauth_access_token.reveal()

    oauth_server.expire_access_tokens()  # the server forgets it long before the expiry it announced
    Lead.objects.filter(pk__in=[lead.pk for lead in leads]).update(next_send_at=timezone.now() - timedelta(minutes=1))
    assert send_now()["sent"] == 2

    assert oauth_server.refreshes == refreshes + 1
    fresh = Mailbox.objects.get(pk=mailbox.pk).oauth_access_token.reveal()
    assert fresh != cached and oauth_server.valid(USER, fresh)
    assert len(xoauth2_smtp.messages) == 4


@pytest.mark.django_db
def test_a_token_about_to_expire_is_refreshed_before_it_is_used(oauth_server):
    mailbox = oauth_mailbox(refresh_token=oauth_server.grant())
    first = access_token(mailbox)
    assert access_token(mailbox) == first  # cached
    refreshes = oauth_server.refreshes

    later = timezone.now() + timedelta(seconds=3600) - timedelta(minutes=4)  # within the margin
    assert access_token(mailbox, now=later) != first
    assert oauth_server.refreshes == refreshes + 1


@pytest.mark.django_db
def test_a_revoked_grant_marks_the_mailbox_holds_its_leads_and_alerts_once(oauth_server, xoauth2_smtp):
    refresh = oauth_server.grant()
    mailbox = oauth_mailbox(smtp=xoauth2_smtp, refresh_token=refresh)
    owner, _ = campaign_with_due_leads(mailbox, 3)
    oauth_server.revoke(refresh)

    outcome = send_now()

    assert outcome.get("sent", 0) == 0
    mailbox.refresh_from_db()
    assert mailbox.needs_reconnect
    assert "no longer accepts the grant" in mailbox.last_send_error and refresh not in mailbox.last_send_error
    [alert] = mailbox_alerts()
    assert alert.title == f"Mailbox {mailbox.name} must be reconnected" and "invalid_grant" in alert.body
    refreshes = oauth_server.refreshes

    # Later cycles: nothing asks the provider again, no second alert, and the leads are held.
    Lead.objects.filter(campaign=owner).update(next_send_at=timezone.now() - timedelta(minutes=1))
    for _ in range(3):
        send_now()
    assert oauth_server.refreshes == refreshes
    assert len(mailbox_alerts()) == 1
    assert xoauth2_smtp.messages == []
    waiting = Lead.objects.filter(campaign=owner).exclude(outbound_emails__isnull=False)
    assert {lead.blocked_reason for lead in waiting} <= {Lead.BlockedReason.MAILBOX_DISCONNECTED}


@pytest.mark.django_db
def test_the_mailbox_list_and_page_say_a_disconnected_mailbox_must_be_reconnected(admin_client):
    mailbox = oauth_mailbox(refresh_token="refresh-x", needs_reconnect=True)

    listing = admin_client.get("/admin/cam/mailbox/").content.decode()
    page = admin_client.get(f"/admin/cam/mailbox/{mailbox.pk}/change/").content.decode()

    assert "Must be reconnected" in listing
    assert "Must be reconnected: the provider no longer accepts its grant." in page and "Reconnect →" in page


@pytest.mark.django_db
def test_it_reads_a_reply_over_imap_with_xoauth2(oauth_server, oauth_imap):
    user = oauth_imap.new_user("oauth")
    oauth_server_user = oauth_server.grant(user)
    mailbox = oauth_mailbox(imap=oauth_imap, refresh_token=oauth_server_user, imap_username=user,
                            from_email=f"{user}@example.com")
    oauth_imap.append(user, b"From: Anna <anna@brightlane.example.com>\r\nTo: alice@example.com\r\n"
                            b"Subject: Re: Hello\r\nMessage-ID: <reply-1@brightlane.example.com>\r\n\r\n"
                            b"Yes, tell me more.\r\n",
                      received_at=timezone.now())
    mailbox.folders.create(name="INBOX", backfill_days=1)

    counts = inbox_poll(mailbox=mailbox)

    mailbox.refresh_from_db()
    assert mailbox.last_poll_error == ""
    assert counts["failed"] == 0
    assert InboundEmail.objects.filter(mailbox=mailbox, message_id="<reply-1@brightlane.example.com>").exists()


@pytest.mark.django_db
def test_imap_refreshes_a_refused_token_once_and_a_revoked_grant_stops_polling(oauth_server, oauth_imap):
    user = oauth_imap.new_user("oauth")
    refresh = oauth_server.grant(user)
    mailbox = oauth_mailbox(imap=oauth_imap, refresh_token=refresh, imap_username=user,
                            from_email=f"{user}@example.com")
    inbox_poll(mailbox=mailbox)
    refreshes = oauth_server.refreshes
    oauth_server.expire_access_tokens()

    inbox_poll(mailbox=Mailbox.objects.get(pk=mailbox.pk))
    assert Mailbox.objects.get(pk=mailbox.pk).last_poll_error == ""
    assert oauth_server.refreshes == refreshes + 1

    oauth_server.revoke(refresh)
    inbox_poll(mailbox=Mailbox.objects.get(pk=mailbox.pk))
    mailbox.refresh_from_db()
    assert mailbox.needs_reconnect and len(mailbox_alerts()) == 1
    assert "no longer accepts the grant" in mailbox.last_poll_error and refresh not in mailbox.last_poll_error
    refreshes = oauth_server.refreshes

    inbox_poll(mailbox=Mailbox.objects.get(pk=mailbox.pk))  # never loops on the dead grant
    assert oauth_server.refreshes == refreshes and len(mailbox_alerts()) == 1


@pytest.mark.django_db
@pytest.mark.parametrize(("provider", "host", "scope", "extra"), [
    (Mailbox.OAuthProvider.MICROSOFT365, "login.microsoftonline.com",
     "https://outlook.office.com/SMTP.Send https://outlook.office.com/IMAP.AccessAsUser.All "
     "offline_access openid email",
     {"prompt": ["select_account"]}),
    (Mailbox.OAuthProvider.GOOGLE, "accounts.google.com", "https://mail.google.com/ openid email",
     {"access_type": ["offline"], "prompt": ["consent"]}),
])
def test_the_presets_ask_each_provider_for_its_scopes_with_pkce(settings, provider, host, scope, extra):
    prefix = f"AICMO_CAM_OAUTH_{provider.upper()}"
    setattr(settings, f"{prefix}_CLIENT_ID", "client-id")
    setattr(settings, f"{prefix}_CLIENT_SECRET", "client-secret")
    session: dict = {}

    url = authorization_start(oauth_mailbox(oauth_provider=provider), session)

    parts = urlsplit(url)
    asked = parse_qs(parts.query)
    assert parts.scheme == "https" and parts.netloc == host
    assert asked["scope"] == [scope] and asked["client_id"] == ["client-id"]
    assert asked["code_challenge_method"] == ["S256"] and asked["response_type"] == ["code"]
    assert all(asked[name] == value for name, value in extra.items())
    [flow] = session["cam_mailbox_oauth"].values()
    assert flow["verifier"] and flow["verifier"] not in url


@pytest.mark.django_db
def test_connect_without_the_apps_client_id_says_which_variables_to_set(admin_client):
    mailbox = oauth_mailbox(oauth_provider=Mailbox.OAuthProvider.GOOGLE)

    page = admin_client.get(f"/admin/cam/mailbox/{mailbox.pk}/oauth/connect/", follow=True).content.decode()

    assert "set AICMO_CAM_OAUTH_GOOGLE_CLIENT_ID and AICMO_CAM_OAUTH_GOOGLE_CLIENT_SECRET" in page


@pytest.mark.django_db
def test_a_person_who_declines_at_the_provider_is_told_so(admin_client, oauth_server):
    mailbox = oauth_mailbox()
    start = admin_client.get(f"/admin/cam/mailbox/{mailbox.pk}/oauth/connect/")
    state = parse_qs(urlsplit(start["Location"]).query)["state"][0]

    page = admin_client.get(f"/admin/cam/mailbox/oauth/callback/?state={state}&error=access_denied"
                            f"&error_description=The+user+declined", follow=True).content.decode()

    assert "did not connect mailbox" in page and "access_denied (The user declined)." in page
    mailbox.refresh_from_db()
    assert not mailbox.oauth_refresh_token


@pytest.mark.django_db
def test_the_connection_test_logs_an_oauth2_mailbox_in_to_smtp_and_imap_and_says_what_a_revoked_grant_needs(
        oauth_server, oauth_imap, xoauth2_smtp):
    user = oauth_imap.new_user("tested")
    refresh = oauth_server.grant(user)
    mailbox = oauth_mailbox(smtp=xoauth2_smtp, imap=oauth_imap, refresh_token=refresh, imap_username=user,
                            smtp_username=user, from_email=f"{user}@example.com")

    report = mailbox_connection_test(mailbox)

    assert report.ok, report.lines()
    assert sum("with OAuth2 (XOAUTH2)" in line for line in report.lines()) == 2
    assert any("INBOX" in line for line in report.lines())

    oauth_server.revoke(refresh)
    mailbox = Mailbox.objects.get(pk=mailbox.pk)
    mailbox.oauth_access_token, mailbox.oauth_access_expires_at = "", None  # nothing cached to fall back on
    mailbox.save()
    report = mailbox_connection_test(mailbox)

    assert not report.ok
    assert any("OAuth2 login failed" in line and "Reconnect" in line for line in report.lines())
    assert all(refresh not in line for line in report.lines())
