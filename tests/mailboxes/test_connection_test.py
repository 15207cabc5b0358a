"""Testing a mailbox's connection against real servers on loopback: aiosmtpd with a login, and Dovecot."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from cam.mailboxes.connection_test import mailbox_connection_test
from cam.models import Mailbox
from tests.factories import MailboxFactory
from tests.servers.smtp import SmtpTestServer

pytestmark = pytest.mark.django_db

SMTP_ENV, IMAP_ENV = "CAM_SECRET_TEST_SMTP_PASSWORD", "CAM_SECRET_TEST_IMAP_PASSWORD"


@pytest.fixture
def smtp_with_login(monkeypatch):
    monkeypatch.setenv(SMTP_ENV, "s3cret-smtp")
    with SmtpTestServer(auth=("sales", "s3cret-smtp")) as server:
        yield server


def mailbox_on(smtp, imap, user: str, **fields) -> Mailbox:
    values = {"name": "Sales", "provider": Mailbox.Provider.SMTP, "smtp_host": smtp.host, "smtp_port": smtp.port,
              "smtp_security": "none", "smtp_username": "sales", "smtp_password_env": SMTP_ENV,
              "imap_host": imap.host, "imap_port": imap.port, "imap_security": "none", "imap_username": user,
              "imap_password_env": IMAP_ENV, **fields}
    return MailboxFactory(**values)


def test_it_logs_in_to_both_servers_and_lists_the_folders_step_by_step(smtp_with_login, imap_server, monkeypatch):
    monkeypatch.setenv(IMAP_ENV, imap_server.password)
    user = imap_server.new_user()
    imap_server.append(user, b"Subject: hi\r\n\r\nhello\r\n", folder="Archive")
    report = mailbox_connection_test(mailbox_on(smtp_with_login, imap_server, user))

    assert report.ok
    assert [(step.server, step.name) for step in report.steps] == [
        ("SMTP", "connect"), ("SMTP", "EHLO"), ("SMTP", "login"),
        ("IMAP", "connect"), ("IMAP", "login"), ("IMAP", "list folders")]
    words = "\n".join(report.lines())
    assert f"logged in as 'sales' (password from {SMTP_ENV})" in words
    assert "the server offers" in words and "auth" in words
    assert "2 folder(s): Archive, INBOX" in words
    assert all(step.seconds >= 0 for step in report.steps)
    assert smtp_with_login.logins == ["sales"] and smtp_with_login.messages == []
    assert "s3cret" not in words and imap_server.password not in words


def test_a_refused_imap_login_says_which_variable_to_check_and_never_the_password(
        smtp_with_login, imap_server, monkeypatch):
    monkeypatch.setenv(IMAP_ENV, "wrong-password")
    report = mailbox_connection_test(mailbox_on(smtp_with_login, imap_server, imap_server.new_user()))

    assert not report.ok
    failed = report.steps[-1]
    assert (failed.server, failed.name, failed.ok) == ("IMAP", "login", False)
    assert failed.words.startswith("IMAP login refused: ")
    assert "AUTHENTICATIONFAILED" in failed.words and failed.words.endswith(f"the password variable {IMAP_ENV}")
    assert "wrong-password" not in "\n".join(report.lines())
    assert [step.ok for step in report.steps[:3]] == [True, True, True]  # SMTP went through


def test_a_refused_smtp_login_and_a_missing_variable_say_what_to_check(smtp_with_login, imap_server, monkeypatch):
    monkeypatch.setenv(SMTP_ENV, "not-it")
    monkeypatch.delenv(IMAP_ENV, raising=False)
    report = mailbox_connection_test(mailbox_on(smtp_with_login, imap_server, imap_server.new_user()))
    by_step = {(step.server, step.name): step for step in report.steps}
    assert by_step["SMTP", "login"].words.startswith("SMTP login refused: 535")
    assert by_step["SMTP", "login"].words.endswith(f"the password variable {SMTP_ENV}")
    assert IMAP_ENV in by_step["IMAP", "login"].words and not by_step["IMAP", "login"].ok
    assert "not-it" not in "\n".join(report.lines())


def test_a_server_that_cannot_be_reached_fails_at_connect(imap_server):
    mailbox = MailboxFactory(provider=Mailbox.Provider.SMTP, smtp_host="127.0.0.1", smtp_port=9, smtp_security="none")
    report = mailbox_connection_test(mailbox)
    assert [(step.server, step.name, step.ok) for step in report.steps] == [
        ("SMTP", "connect", False), ("IMAP", "skipped", True)]
    assert report.steps[0].words.startswith("SMTP connect failed: ConnectionRefusedError")


def test_the_command_prints_each_step_and_fails_with_a_non_zero_exit(smtp_with_login, imap_server, monkeypatch,
                                                                      capsys):
    monkeypatch.setenv(IMAP_ENV, imap_server.password)
    mailbox_on(smtp_with_login, imap_server, imap_server.new_user())
    call_command("cam_mailbox_test", "Sales")
    out = capsys.readouterr().out
    assert "✓ IMAP list folders" in out and "Mailbox 'Sales' can log in." in out

    monkeypatch.setenv(IMAP_ENV, "wrong")
    with pytest.raises(CommandError, match="The connection test of mailbox 'Sales' failed"):
        call_command("cam_mailbox_test", "Sales")
    assert "✗ IMAP login" in capsys.readouterr().out
    with pytest.raises(CommandError, match="No mailbox is named 'Nobody'"):
        call_command("cam_mailbox_test", "Nobody")
