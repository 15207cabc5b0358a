"""Connecting an OAuth2 mailbox in a real browser: Connect on the mailbox page, the provider (a stand-in on
loopback, tests.servers.oauth) sends the browser back, and the page shows the connected account."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from cam.models import Mailbox
from tests.browser.test_admin_browser import PASSWORD, log_in
from tests.factories import MailboxFactory, SuperuserFactory
from tests.servers.oauth import CLIENT_ID, CLIENT_SECRET, OAuthServer

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-results" / "screenshots"


def test_staff_connect_a_mailbox_through_the_provider_and_see_the_account(page, live_server, settings,
                                                                           transactional_db):
    with OAuthServer(user="alice@example.com") as provider:
        settings.AICMO_CAM_PUBLIC_URL = live_server.url
        settings.AICMO_CAM_OAUTH_GENERIC_CLIENT_ID = CLIENT_ID
        settings.AICMO_CAM_OAUTH_GENERIC_CLIENT_SECRET = CLIENT_SECRET
        settings.AICMO_CAM_OAUTH_GENERIC_AUTHORIZE_URL = provider.url("/authorize")
        settings.AICMO_CAM_OAUTH_GENERIC_TOKEN_URL = provider.url("/token")
        settings.AICMO_CAM_OAUTH_GENERIC_SCOPES = "mail offline_access openid email"
        mailbox = MailboxFactory(name="Sales", from_email="alice@example.com", provider=Mailbox.Provider.SMTP,
                                 smtp_host="smtp.example.com", auth=Mailbox.Auth.OAUTH2,
                                 oauth_provider=Mailbox.OAuthProvider.GENERIC)
        SuperuserFactory(username="oauth-admin", password=PASSWORD)
        log_in(page, live_server, "oauth-admin")

        page.goto(f"{live_server.url}/admin/cam/mailbox/{mailbox.pk}/change/")
        expect(page.locator("[data-oauth-state]")).to_have_text("Not connected yet.")
        page.locator("[data-oauth-connect]").click()

        expect(page).to_have_url(f"{live_server.url}/admin/cam/mailbox/{mailbox.pk}/change/")
        expect(page.locator("body")).to_contain_text("Mailbox Sales is connected as alice@example.com.")
        expect(page.locator("[data-oauth-state]")).to_contain_text("Connected as alice@example.com")
        expect(page.locator("[data-oauth-state]")).to_contain_text("token last refreshed")
        expect(page.locator("[data-oauth-connect]")).to_have_text("Reconnect →")
        page.locator("[data-oauth-state]").scroll_into_view_if_needed()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "mailbox-oauth-connected.png"))

    [asked] = provider.authorize_requests
    assert asked.param("code_challenge_method") == "S256"
    assert asked.param("redirect_uri") == f"{live_server.url}/admin/cam/mailbox/oauth/callback/"
    refresh = Mailbox.objects.get(pk=mailbox.pk).oauth_refresh_token.reveal()
    assert provider.grants[refresh].user == "alice@example.com"
    assert refresh not in page.content()
    assert page.csp_violations == []
