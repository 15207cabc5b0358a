"""Secrets by name: only CAM_SECRET_ variables can be named, only with a dedicated permission may anyone
say which or where they go, and every such change is recorded."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.core.checks import run_checks
from django.core.exceptions import ValidationError
from django.test import RequestFactory

from cam.admin.campaigns import LeadSourceInline
from cam.models import AlertChannel, LeadSource, Mailbox, SecretSettingChange
from cam.outreach.providers.smtp import SmtpProvider
from cam.pipeline.harvest import harvest_source
from cam.secrets import MissingSecret, secret_from_env
from cam.sources import SourceError
from tests.factories import AlertChannelFactory, CampaignFactory, LeadSourceFactory, MailboxFactory, UserFactory
from tests.outreach.test_providers import outreach_message
from tests.servers.http import Reply
from tests.servers.smtp import SmtpTestServer

pytestmark = pytest.mark.django_db

CAM_SETTINGS_READ = ["SECRET_KEY", "DATABASE_URL", "AICMO_RESEND_WEBHOOK_SECRET", "EMAIL_HOST_PASSWORD",
                     "AICMO_RESEND_API_KEY", "REDIS_URL"]


def staff_with(client, *codenames):
    user = UserFactory(is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    client.user = user
    return client


def form_data(client, url: str) -> dict:
    """What the admin's change (or add) form would post back unchanged."""
    form = client.get(url).context["adminform"].form
    data = {}
    for name in form.fields:
        value = form[name].value()
        if value is True:
            data[name] = "on"
        elif value not in (None, False):
            data[name] = json.dumps(value) if isinstance(value, dict) else value
    return data


def errors_of(response) -> str:
    return " ".join(str(e) for e in response.context["adminform"].form.errors.values()) if response.context else ""


@pytest.mark.parametrize("name", CAM_SETTINGS_READ)
def test_no_setting_cam_reads_can_be_read_as_a_secret(name, monkeypatch):
    monkeypatch.setenv(name, "the-value")

    with pytest.raises(MissingSecret, match="start with CAM_SECRET_"):
        secret_from_env(name, purpose="a test")


def test_cam_settings_never_read_a_cam_secret_variable():
    settings_code = "".join(path.read_text() for path in Path("aicmo_site").glob("*.py"))
    # Every variable the settings read is named by a string literal.
    assert re.findall(r"""["'](CAM_SECRET_\w*)""", settings_code) == []
    assert re.findall(r"""["'](AICMO_\w+)["']""", settings_code)  # the scan does see the names read


def test_a_harvest_never_sends_a_setting_to_the_sources_host(http_server, monkeypatch, settings):
    monkeypatch.setenv("SECRET_KEY", settings.SECRET_KEY)
    http_server.reply("/contacts", Reply(200, []))
    # Written past the form, as a script or an old row would be: the read refuses it too.
    source = LeadSourceFactory(name="CRM", kind=LeadSource.Kind.HTTP_JSON,
                               config={"url": http_server.url("/contacts"), "auth_env": "SECRET_KEY"})

    with pytest.raises(SourceError, match="CAM_SECRET_"):
        harvest_source(source=source)

    assert http_server.requests == []
    source.refresh_from_db()
    assert "CAM_SECRET_" in source.last_error and settings.SECRET_KEY not in source.last_error


def test_an_smtp_login_never_uses_a_setting_as_its_password(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://cam:hunter2@db/cam")
    with SmtpTestServer(auth=("sales", "hunter2")) as server:
        mailbox = MailboxFactory(provider=Mailbox.Provider.SMTP, smtp_host=server.host, smtp_port=server.port,
                                 smtp_security="none", smtp_username="sales", smtp_password_env="DATABASE_URL")
        with SmtpProvider(mailbox) as provider:
            result = provider.send(outreach_message(), idempotency_key="1")

        assert "start with CAM_SECRET_" in result.error
        assert server.logins == [] and server.sessions == []


@pytest.mark.parametrize(("model", "field"), [
    (Mailbox, "smtp_password_env"), (Mailbox, "imap_password_env"), (Mailbox, "resend_api_key_env"),
    (AlertChannel, "url_env"), (AlertChannel, "secret_env")])
@pytest.mark.parametrize("name", ["SECRET_KEY", "DATABASE_URL", "CAM_SECRET_", "CAM_SECRET_A-B"])
def test_a_record_refuses_a_name_without_the_prefix(model, field, name):
    record = MailboxFactory.build() if model is Mailbox else AlertChannelFactory.build(kind="webhook")
    setattr(record, field, name)

    with pytest.raises(ValidationError) as caught:
        record.full_clean()

    assert field in caught.value.message_dict


def test_a_lead_source_refuses_a_token_variable_without_the_prefix():
    source = LeadSourceFactory.build(campaign=CampaignFactory(), kind=LeadSource.Kind.HTTP_JSON,
                                     config={"url": "https://crm.example.com/api", "auth_env": "SECRET_KEY"})

    with pytest.raises(ValidationError) as caught:
        source.full_clean()

    assert "auth_env" in " ".join(caught.value.message_dict["config"])


def test_the_mailbox_form_keeps_secret_names_read_only_without_the_permission(client):
    mailbox = MailboxFactory(smtp_password_env="CAM_SECRET_SMTP_SALES")
    staff = staff_with(client, "view_mailbox", "change_mailbox")
    url = f"/admin/cam/mailbox/{mailbox.pk}/change/"
    data = {**form_data(staff, url), "from_name": "Sales team", "smtp_password_env": "CAM_SECRET_OTHER"}

    response = staff.post(url, data)

    assert response.status_code == 302
    mailbox.refresh_from_db()
    assert (mailbox.from_name, mailbox.smtp_password_env) == ("Sales team", "CAM_SECRET_SMTP_SALES")
    assert not SecretSettingChange.objects.exists()


def test_the_host_a_password_goes_to_cannot_change_without_the_permission(client):
    mailbox = MailboxFactory(provider="smtp", smtp_host="smtp.example.com", smtp_username="sales",
                             smtp_password_env="CAM_SECRET_SMTP_SALES")
    staff = staff_with(client, "view_mailbox", "change_mailbox")
    url = f"/admin/cam/mailbox/{mailbox.pk}/change/"

    response = staff.post(url, {**form_data(staff, url), "smtp_host": "attacker.example"})

    assert response.status_code == 200
    assert "SMTP host" in errors_of(response) and "Ask a superuser" in errors_of(response)
    mailbox.refresh_from_db()
    assert mailbox.smtp_host == "smtp.example.com"


def test_a_host_without_a_password_is_free_to_change(client):
    mailbox = MailboxFactory(provider="smtp", smtp_host="smtp.example.com")
    staff = staff_with(client, "view_mailbox", "change_mailbox")
    url = f"/admin/cam/mailbox/{mailbox.pk}/change/"

    assert staff.post(url, {**form_data(staff, url), "smtp_host": "smtp2.example.com"}).status_code == 302

    change = SecretSettingChange.objects.get()
    assert (change.field, change.old_value, change.new_value) == ("smtp_host", "smtp.example.com",
                                                                  "smtp2.example.com")
    assert change.actor == f"staff:{staff.user.username}"


def test_a_permitted_user_changes_them_and_each_change_is_recorded(client):
    mailbox = MailboxFactory(provider="smtp", smtp_host="smtp.example.com", smtp_username="sales",
                             smtp_password_env="CAM_SECRET_SMTP_SALES")
    staff = staff_with(client, "view_mailbox", "change_mailbox", "change_secret_settings")
    url = f"/admin/cam/mailbox/{mailbox.pk}/change/"
    data = {**form_data(staff, url), "smtp_host": "smtp.new.example.com", "smtp_password_env": "CAM_SECRET_NEW"}

    assert staff.post(url, data).status_code == 302

    recorded = {(c.field, c.old_value, c.new_value, c.actor, c.object_id)
                for c in SecretSettingChange.objects.all()}
    actor = f"staff:{staff.user.username}"
    assert recorded == {("smtp_host", "smtp.example.com", "smtp.new.example.com", actor, mailbox.pk),
                        ("smtp_password_env", "CAM_SECRET_SMTP_SALES", "CAM_SECRET_NEW", actor, mailbox.pk)}
    # Staff find the record in the admin.
    page = staff_with(client, "view_secretsettingchange").get("/admin/cam/secretsettingchange/")
    assert page.status_code == 200 and "CAM_SECRET_NEW" in page.content.decode()


def test_a_new_mailbox_with_the_default_resend_key_needs_no_permission(client):
    staff = staff_with(client, "view_mailbox", "add_mailbox")
    data = {**form_data(staff, "/admin/cam/mailbox/add/"), "name": "Sales", "from_email": "sales@example.com",
            "daily_cap": "50", "min_gap_seconds": "120"}

    response = staff.post("/admin/cam/mailbox/add/", data)

    assert response.status_code == 302, errors_of(response)
    assert Mailbox.objects.get(name="Sales").resend_api_key_env == "CAM_SECRET_RESEND_API_KEY"


def test_a_lead_sources_token_and_url_need_the_permission(client):
    source = LeadSourceFactory(kind=LeadSource.Kind.HTTP_JSON,
                               config={"url": "https://crm.example.com/api", "auth_env": "CAM_SECRET_CRM"})
    staff = staff_with(client, "view_leadsource", "change_leadsource")
    url = f"/admin/cam/leadsource/{source.pk}/change/"
    data = form_data(staff, url)

    moved = staff.post(url, {**data, "config": json.dumps({**source.config, "url": "https://attacker.example"})})
    renamed = staff.post(url, {**data, "config": json.dumps({**source.config, "auth_env": "CAM_SECRET_OTHER"})})
    harmless = staff.post(url, {**data, "config": json.dumps({**source.config, "records_path": "data"})})

    assert "url (in the configuration)" in errors_of(moved)
    assert "auth_env (in the configuration)" in errors_of(renamed)
    assert harmless.status_code == 302
    source.refresh_from_db()
    assert source.config == {"url": "https://crm.example.com/api", "auth_env": "CAM_SECRET_CRM",
                             "records_path": "data"}


def test_a_bad_configuration_is_refused_when_the_source_is_saved(admin_client):
    source = LeadSourceFactory(kind=LeadSource.Kind.HTTP_JSON, config={"url": "https://crm.example.com/api"})
    url = f"/admin/cam/leadsource/{source.pk}/change/"

    response = admin_client.post(url, {**form_data(admin_client, url),
                                       "config": json.dumps({"url": "https://crm.example.com/api",
                                                             "auth_env": "SECRET_KEY"})})

    assert response.status_code == 200
    assert "auth_env" in errors_of(response) and "CAM_SECRET_" in errors_of(response)


def test_the_campaigns_source_inline_checks_and_records_the_same(client):
    campaign = CampaignFactory()
    source = LeadSourceFactory(campaign=campaign, kind=LeadSource.Kind.HTTP_JSON,
                               config={"url": "https://crm.example.com/api", "auth_env": "CAM_SECRET_CRM"})
    staff = staff_with(client, "view_campaign", "change_campaign", "change_leadsource")
    request = RequestFactory().post("/")
    request.user = staff.user
    from django.contrib import admin as django_admin

    inline = LeadSourceInline(type(campaign), django_admin.site)
    formset_class = inline.get_formset(request, campaign)
    prefix = formset_class.get_default_prefix()
    data = {f"{prefix}-TOTAL_FORMS": "1", f"{prefix}-INITIAL_FORMS": "1", f"{prefix}-0-id": str(source.pk),
            f"{prefix}-0-campaign": str(campaign.pk), f"{prefix}-0-name": source.name,
            f"{prefix}-0-kind": source.kind, f"{prefix}-0-enabled": "on",
            f"{prefix}-0-config": json.dumps({**source.config, "url": "https://attacker.example"})}

    formset = formset_class(data=data, instance=campaign, prefix=prefix)  # the theme's formsets take the request first

    assert not formset.is_valid()
    assert re.search(r"url \(in the configuration\).*Ask a superuser", str(formset.errors))


def test_start_up_warns_about_the_resend_key_under_its_old_name(monkeypatch):
    monkeypatch.setenv("AICMO_RESEND_API_KEY", "re_live_123")

    messages = [m for m in run_checks() if m.id == "cam.W001"]

    assert len(messages) == 1 and "CAM_SECRET_RESEND_API_KEY" in messages[0].hint
    assert "re_live_123" not in str(messages[0])


def test_the_hosts_an_oauth2_token_goes_to_cannot_change_without_the_permission(client):
    mailbox = MailboxFactory(provider="smtp", smtp_host="smtp.office365.com", imap_host="outlook.office365.com",
                             auth=Mailbox.Auth.OAUTH2, oauth_provider=Mailbox.OAuthProvider.MICROSOFT365)
    staff = staff_with(client, "view_mailbox", "change_mailbox")
    url = f"/admin/cam/mailbox/{mailbox.pk}/change/"

    response = staff.post(url, {**form_data(staff, url), "imap_host": "imap.attacker.example"})

    assert response.status_code == 200
    assert "decides where a secret goes" in response.content.decode()
    mailbox.refresh_from_db()
    assert mailbox.imap_host == "outlook.office365.com"
    assert not SecretSettingChange.objects.exists()
