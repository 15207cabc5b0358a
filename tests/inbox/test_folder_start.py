"""Where a folder's reading starts, against a real Dovecot: from its next message, plus the last N days
staff asked for; and again from its next message after the server renumbered it, without losing what
arrived since the last poll."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from imapclient import IMAPClient

from cam.inbox import imap
from cam.inbox.polling import inbox_poll
from cam.models import MailboxFolder
from tests.inbox.test_polling import PASSWORD_ENV, mailbox_on, message, rows, watermark

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def imap_password(monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, "secret")


def days_ago(days: float):
    return timezone.now() - timedelta(days=days)


def message_ids(mailbox) -> list[str]:
    return [row.message_id for row in rows(mailbox)]


def test_it_reads_nothing_that_was_in_a_new_folder_before_its_first_poll(imap_server):
    user = imap_server.new_user()
    old_uids = [imap_server.append(user, message(n)) for n in (1, 2)]
    mailbox = mailbox_on(imap_server, user, backfill_days=0)

    assert inbox_poll(mailbox=mailbox) == {"mailboxes": 1, "fetched": 0, "stored": 0, "skipped_duplicates": 0,
                                           "failed": 0}
    assert watermark(mailbox) == (imap_server.uidvalidity(user), old_uids[-1])

    new_uid = imap_server.append(user, message(3))
    assert inbox_poll(mailbox=mailbox)["stored"] == 1

    assert [(row.uid, row.message_id) for row in rows(mailbox)] == [(new_uid, "<reply.3@company.test>")]
    assert inbox_poll(mailbox=mailbox)["fetched"] == 0
    # Nothing on the server was touched, read or not.
    assert imap_server.flags(user) == {uid: set() for uid in [*old_uids, new_uid]}


def test_a_new_empty_folder_reads_its_first_message(imap_server):
    user = imap_server.new_user()
    mailbox = mailbox_on(imap_server, user, backfill_days=0)

    assert inbox_poll(mailbox=mailbox)["fetched"] == 0
    assert watermark(mailbox) == (imap_server.uidvalidity(user), 0)
    imap_server.append(user, message(1))

    assert inbox_poll(mailbox=mailbox)["stored"] == 1


def test_a_backfill_reads_the_last_days_and_nothing_older(imap_server):
    user = imap_server.new_user()
    imap_server.append(user, message(1), received_at=days_ago(30))
    imap_server.append(user, message(2), received_at=days_ago(10))
    recent = [imap_server.append(user, message(n), received_at=days_ago(age)) for n, age in ((3, 4), (4, 0.01))]
    mailbox = mailbox_on(imap_server, user, backfill_days=7)

    assert inbox_poll(mailbox=mailbox) == {"mailboxes": 1, "fetched": 2, "stored": 2, "skipped_duplicates": 0,
                                           "failed": 0}
    assert [row.uid for row in rows(mailbox)] == recent
    assert watermark(mailbox) == (imap_server.uidvalidity(user), recent[-1])

    # Then it goes on by UID: whatever arrives next is read, whatever its date says.
    late = imap_server.append(user, message(5), received_at=days_ago(60))
    assert inbox_poll(mailbox=mailbox)["stored"] == 1
    assert [row.uid for row in rows(mailbox)] == [*recent, late]


def test_a_backfill_counts_only_before_the_first_poll(imap_server):
    user = imap_server.new_user()
    mailbox = mailbox_on(imap_server, user, backfill_days=0)
    inbox_poll(mailbox=mailbox)
    imap_server.append(user, message(1), received_at=days_ago(1))
    MailboxFolder.objects.filter(mailbox=mailbox).update(backfill_days=30)

    # Appended after the first poll: read by UID, with or without a backfill.
    assert inbox_poll(mailbox=mailbox)["stored"] == 1
    assert inbox_poll(mailbox=mailbox)["fetched"] == 0


def test_a_backfill_cut_off_midway_is_read_again_without_storing_twice(imap_server, settings, monkeypatch):
    settings.AICMO_CAM_IMAP_FETCH_CHUNK = 2
    user = imap_server.new_user()
    imap_server.append(user, message(1), received_at=days_ago(20))
    uids = [imap_server.append(user, message(n), received_at=days_ago(1)) for n in range(2, 7)]
    mailbox = mailbox_on(imap_server, user, backfill_days=3)
    real_fetch = imap.ImapInbox.fetch
    calls = []

    def fetch_then_break(inbox, chunk, **options):
        calls.append(chunk)
        if len(calls) == 2:
            raise imap.ImapError("The IMAP server broke off the connection.")
        return real_fetch(inbox, chunk, **options)

    monkeypatch.setattr(imap.ImapInbox, "fetch", fetch_then_break)
    assert inbox_poll(mailbox=mailbox)["failed"] == 1
    assert [row.uid for row in rows(mailbox)] == uids[:2]
    # The folder is not started until its backlog is stored: the next poll reads the backlog again.
    assert watermark(mailbox) == (None, 0)

    monkeypatch.setattr(imap.ImapInbox, "fetch", real_fetch)
    assert inbox_poll(mailbox=mailbox) == {"mailboxes": 1, "fetched": 5, "stored": 3, "skipped_duplicates": 2,
                                           "failed": 0}
    assert [row.uid for row in rows(mailbox)] == uids
    assert watermark(mailbox) == (imap_server.uidvalidity(user), uids[-1])


def test_a_renumbered_folder_starts_again_from_its_next_message_keeping_what_arrived_since_the_last_poll(
        imap_server):
    user = imap_server.new_user()
    imap_server.append(user, message(1), received_at=days_ago(20))
    mailbox = mailbox_on(imap_server, user, backfill_days=30)
    assert inbox_poll(mailbox=mailbox)["stored"] == 1
    imap_server.append(user, message(2))  # arrives, then the folder is rebuilt before the next poll

    new_uidvalidity = imap_server.reset_uidvalidity(user)
    MailboxFolder.objects.filter(mailbox=mailbox).update(backfill_days=0)
    counts = inbox_poll(mailbox=mailbox)

    # The 20-day-old message is not fetched again; the one that arrived since the last poll is kept.
    assert counts == {"mailboxes": 1, "fetched": 1, "stored": 1, "skipped_duplicates": 0, "failed": 0}
    assert message_ids(mailbox) == ["<reply.1@company.test>", "<reply.2@company.test>"]
    assert rows(mailbox)[1].uidvalidity == new_uidvalidity
    assert watermark(mailbox) == (new_uidvalidity, max(imap_server.flags(user)))
    imap_server.append(user, message(3))
    assert inbox_poll(mailbox=mailbox)["stored"] == 1


def test_a_renumbered_folder_with_a_backfill_reads_back_that_far_and_skips_what_it_has(imap_server):
    user = imap_server.new_user()
    imap_server.append(user, message(1), received_at=days_ago(20))
    imap_server.append(user, message(2), received_at=days_ago(40))
    mailbox = mailbox_on(imap_server, user, backfill_days=30)
    assert inbox_poll(mailbox=mailbox)["stored"] == 1

    imap_server.reset_uidvalidity(user)

    assert inbox_poll(mailbox=mailbox) == {"mailboxes": 1, "fetched": 1, "stored": 0, "skipped_duplicates": 1,
                                           "failed": 0}
    assert message_ids(mailbox) == ["<reply.1@company.test>"]


def test_it_starts_after_the_highest_uid_when_the_server_does_not_say_uidnext(imap_server, monkeypatch):
    user = imap_server.new_user()
    uids = [imap_server.append(user, message(n)) for n in (1, 2)]
    real_select = IMAPClient.select_folder

    def select_without_uidnext(client, folder, readonly=False):
        status = real_select(client, folder, readonly=readonly)
        return {key: value for key, value in status.items() if key != b"UIDNEXT"}

    monkeypatch.setattr(IMAPClient, "select_folder", select_without_uidnext)
    mailbox = mailbox_on(imap_server, user, backfill_days=0)

    assert inbox_poll(mailbox=mailbox)["fetched"] == 0
    assert watermark(mailbox) == (imap_server.uidvalidity(user), uids[-1])
    assert message_ids(mailbox) == []
    imap_server.append(user, message(3))
    assert inbox_poll(mailbox=mailbox)["stored"] == 1
