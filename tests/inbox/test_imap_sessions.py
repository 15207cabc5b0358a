"""IMAP sessions kept between polls, against a real Dovecot: logins counted in the server's own log."""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from cam.inbox import imap
from cam.inbox.polling import inbox_poll, inboxes_poll
from cam.models import InboundEmail
from tests.inbox.test_polling import PASSWORD_ENV, imap_password, mailbox_on, message  # noqa: F401

pytestmark = pytest.mark.django_db


def logins(server, user: str) -> int:
    """Successful logins of ``user``, as Dovecot logged them (its log is written a moment after)."""
    time.sleep(0.2)
    return len(re.findall(rf"Login: user=<{re.escape(user)}>", server.log))


def poll_logins(server, mailbox) -> tuple[dict, int]:
    """What a poll of ``mailbox`` counted, and how many times it logged in (the test's appends log in too)."""
    user = mailbox.imap_username
    before = logins(server, user)
    counts = inbox_poll(mailbox=mailbox)
    return counts, logins(server, user) - before


def test_two_polls_log_in_once(imap_server):
    user = imap_server.new_user()
    imap_server.append(user, message(1))
    mailbox = mailbox_on(imap_server, user)

    counts, first = poll_logins(imap_server, mailbox)
    assert (counts["stored"], first) == (1, 1)
    imap_server.append(user, message(2))
    counts, second = poll_logins(imap_server, mailbox)
    assert (counts["stored"], second) == (1, 0)

    assert InboundEmail.objects.filter(mailbox=mailbox).count() == 2
    assert imap.imap_sessions_close() == 1


def test_a_session_the_server_dropped_is_replaced_by_a_new_login(imap_server):
    user = imap_server.new_user()
    mailbox = mailbox_on(imap_server, user)
    inbox_poll(mailbox=mailbox)
    # The server ends every session of the user, as one restarting or cutting idle sessions does.
    subprocess.run(["doveadm", "-c", str(imap_server.config), "kick", user], check=True, capture_output=True)
    imap_server.append(user, message(1))

    counts, again = poll_logins(imap_server, mailbox)

    mailbox.refresh_from_db()
    assert (counts["stored"], counts["failed"], mailbox.last_poll_error, again) == (1, 0, "", 1)


def test_a_changed_password_or_an_old_session_logs_in_again(imap_server, monkeypatch):
    user = imap_server.new_user()
    mailbox = mailbox_on(imap_server, user)
    inbox_poll(mailbox=mailbox)
    monkeypatch.setattr(imap, "KEEP_IDLE_SECONDS", 0.0)
    assert poll_logins(imap_server, mailbox)[1] == 1
    monkeypatch.setattr(imap, "KEEP_IDLE_SECONDS", 300.0)

    monkeypatch.setenv(PASSWORD_ENV, "not-the-password")
    assert inbox_poll(mailbox=mailbox)["failed"] == 1  # not let in on the session the old password opened
    mailbox.refresh_from_db()
    assert "refused the login" in mailbox.last_poll_error
    assert imap.imap_sessions_close() == 0  # a failed session is not kept


def test_a_session_no_poll_takes_is_ended_by_a_later_poll_step(imap_server, monkeypatch):
    user = imap_server.new_user()
    mailbox = mailbox_on(imap_server, user)
    inbox_poll(mailbox=mailbox)
    mailbox.is_active = False  # no longer polled: its session is not taken again
    mailbox.save(update_fields=["is_active"])
    monkeypatch.setattr(imap, "KEEP_IDLE_SECONDS", 0.0)

    assert inboxes_poll()["mailboxes"] == 0
    assert imap.imap_sessions_close() == 0


def test_a_worker_run_once_logs_its_kept_sessions_out_when_it_ends(imap_server, settings):
    from django.core.management import call_command

    settings.AICMO_CAM_WORKER_ID = "worker-imap-sessions"
    user = imap_server.new_user()
    imap_server.append(user, message(1))
    mailbox_on(imap_server, user)

    def logouts() -> int:
        time.sleep(0.2)  # Dovecot writes its log a moment after
        return len(re.findall(rf"imap\({re.escape(user)}\).*Logged out", imap_server.log))

    before = logouts()
    call_command("cam_worker", "--once")

    assert InboundEmail.objects.filter(mailbox__imap_username=user).count() == 1  # it polled
    assert imap.imap_sessions_close() == 0  # and kept nothing past its end
    assert logouts() == before + 1  # its one session said goodbye
