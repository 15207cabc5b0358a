"""Polling against a real Dovecot on loopback: what is stored, what the server keeps, what is recorded."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cam.inbox import imap
from cam.inbox.polling import fetch_chunks, inbox_poll, inboxes_poll
from cam.locks import lease_acquire
from cam.models import InboundEmail, Mailbox, MailboxFolder
from tests.factories import MailboxFactory, MailboxFolderFactory
from tests.servers.smtp import free_port

pytestmark = pytest.mark.django_db

PASSWORD_ENV = "CAM_SECRET_TEST_IMAP_PASSWORD"


@pytest.fixture(autouse=True)
def imap_password(monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, "secret")


def mailbox_on(server, user: str, *, folders: tuple[str, ...] = ("INBOX",), backfill_days: int = 1,
               **fields) -> Mailbox:
    """A mailbox reading ``folders`` of ``user``'s mail on ``server``. A folder's first poll reads only
    what arrives after it, and what arrived in its last ``backfill_days`` days: by default one, so the
    messages a test appended before the first poll are read too."""
    fields = {"imap_host": server.host, "imap_port": server.port, "imap_security": "none", "imap_username": user,
              "imap_password_env": PASSWORD_ENV, **fields}
    mailbox = MailboxFactory(**fields)
    for name in folders:
        MailboxFolderFactory(mailbox=mailbox, name=name, backfill_days=backfill_days)
    return mailbox


def message(n: int, *, message_id: str | None = "", subject: str | None = None, body: str = "",
            date: datetime | None = None) -> bytes:
    """A reply as a lead's mail program writes it; ``message_id=None`` leaves the header out."""
    headers = [
        f"From: Lead {n} <lead{n}@company.test>",
        "To: sender@outreach.test",
        f"Subject: {subject if subject is not None else f'Re: Quick question {n}'}",
        f"Date: {format_datetime(date or datetime(2025, 3, 3, 9, n % 60, tzinfo=UTC))}",
    ]
    if message_id is not None:
        headers.append(f"Message-ID: {message_id or f'<reply.{n}@company.test>'}")
    headers += ["In-Reply-To: <cam.1@outreach.test>", "MIME-Version: 1.0",
                "Content-Type: text/plain; charset=utf-8"]
    return ("\r\n".join(headers) + "\r\n\r\n" + (body or f"Reply number {n}.") + "\r\n").encode()


def rows(mailbox: Mailbox) -> list[InboundEmail]:
    return list(InboundEmail.objects.filter(mailbox=mailbox).order_by("folder", "uidvalidity", "uid"))


def watermark(mailbox: Mailbox, name: str = "INBOX") -> tuple[int | None, int]:
    folder = MailboxFolder.objects.get(mailbox=mailbox, name=name)
    return folder.uidvalidity, folder.last_uid


def test_it_stores_new_mail_once(imap_server):
    user = imap_server.new_user()
    first = [message(1), message(2)]
    uids = [imap_server.append(user, raw) for raw in first]
    mailbox = mailbox_on(imap_server, user)

    assert inbox_poll(mailbox=mailbox) == {"mailboxes": 1, "fetched": 2, "stored": 2, "skipped_duplicates": 0,
                                           "failed": 0}
    assert inbox_poll(mailbox=mailbox) == {"mailboxes": 1, "fetched": 0, "stored": 0, "skipped_duplicates": 0,
                                           "failed": 0}
    uids.append(imap_server.append(user, message(3)))
    assert inbox_poll(mailbox=mailbox)["stored"] == 1

    stored = rows(mailbox)
    uidvalidity = imap_server.uidvalidity(user)
    assert [(row.folder, row.uidvalidity, row.uid) for row in stored] == [("INBOX", uidvalidity, uid) for uid in uids]
    assert [row.message_id for row in stored] == ["<reply.1@company.test>", "<reply.2@company.test>",
                                                  "<reply.3@company.test>"]
    row = stored[0]
    assert (row.from_email, row.from_name, row.subject, row.in_reply_to) == (
        "lead1@company.test", "Lead 1", "Re: Quick question 1", "<cam.1@outreach.test>")
    assert row.received_at == datetime(2025, 3, 3, 9, 1, tzinfo=UTC)
    assert row.new_text == "Reply number 1."
    assert (bytes(row.raw_message), row.raw_truncated) == (first[0], False)
    # Classification and threading come later.
    assert (row.category, row.lead, row.outbound_email, row.processed_at) == ("", None, None, None)
    assert watermark(mailbox) == (uidvalidity, uids[-1])
    mailbox.refresh_from_db()
    assert mailbox.last_poll_error == ""
    assert mailbox.last_polled_at is not None
    assert MailboxFolder.objects.get(mailbox=mailbox).last_polled_at is not None


def test_it_leaves_every_message_unread_and_in_place(imap_server):
    user = imap_server.new_user()
    plain = imap_server.append(user, message(1))
    flagged = imap_server.append(user, message(2), flags=(b"\\Flagged",))
    archived = imap_server.append(user, message(3), folder="Archive")
    mailbox = mailbox_on(imap_server, user, folders=("INBOX", "Archive"))

    assert inbox_poll(mailbox=mailbox)["stored"] == 3

    assert imap_server.flags(user) == {plain: set(), flagged: {b"\\Flagged"}}
    assert imap_server.flags(user, "Archive") == {archived: set()}


def test_it_resyncs_after_a_new_uidvalidity_without_storing_twice(imap_server):
    user = imap_server.new_user()
    for raw in (message(1), message(2), message(3, message_id=None)):
        imap_server.append(user, raw)
    mailbox = mailbox_on(imap_server, user)
    assert inbox_poll(mailbox=mailbox)["stored"] == 3
    old_uidvalidity = imap_server.uidvalidity(user)

    new_uidvalidity = imap_server.reset_uidvalidity(user)
    new_uid = imap_server.append(user, message(4))
    counts = inbox_poll(mailbox=mailbox)

    assert counts == {"mailboxes": 1, "fetched": 4, "stored": 1, "skipped_duplicates": 3, "failed": 0}
    assert [(row.uidvalidity, row.message_id) for row in rows(mailbox)] == [
        (old_uidvalidity, "<reply.1@company.test>"), (old_uidvalidity, "<reply.2@company.test>"),
        (old_uidvalidity, ""), (new_uidvalidity, "<reply.4@company.test>")]
    assert watermark(mailbox) == (new_uidvalidity, new_uid)
    assert inbox_poll(mailbox=mailbox)["fetched"] == 0


def test_it_records_a_server_that_refuses_connections_and_polls_the_others(imap_server):
    closed_port = free_port()
    down = MailboxFactory(imap_host="127.0.0.1", imap_port=closed_port, imap_security="none",
                          imap_username="nobody", imap_password_env=PASSWORD_ENV)
    user = imap_server.new_user()
    imap_server.append(user, message(1))
    up = mailbox_on(imap_server, user)
    MailboxFactory(imap_host="")  # no IMAP: not polled
    MailboxFactory(imap_host="127.0.0.1", imap_port=closed_port, is_active=False)  # inactive: not polled

    counts = inboxes_poll()

    down.refresh_from_db()
    assert counts == {"mailboxes": 2, "fetched": 1, "stored": 1, "skipped_duplicates": 0, "failed": 1,
                      "problems": [f"mailbox {down.name}: {down.last_poll_error}"]}
    assert down.last_poll_error.startswith(f"Could not reach the IMAP server 127.0.0.1:{closed_port} while "
                                           f"connecting: ConnectionRefusedError")
    assert down.last_polled_at is not None
    assert watermark(down) == (None, 0)
    up.refresh_from_db()
    assert up.last_poll_error == ""
    assert len(rows(up)) == 1


def test_it_records_a_wrong_password(imap_server, monkeypatch):
    user = imap_server.new_user()
    imap_server.append(user, message(1))
    monkeypatch.setenv("CAM_SECRET_TEST_WRONG_PASSWORD", "not-the-password")
    mailbox = mailbox_on(imap_server, user, imap_password_env="CAM_SECRET_TEST_WRONG_PASSWORD")

    assert inbox_poll(mailbox=mailbox)["failed"] == 1

    mailbox.refresh_from_db()
    assert mailbox.last_poll_error == (
        f"The IMAP server {imap_server.host}:{imap_server.port} refused the login as {user!r}: "
        f"[AUTHENTICATIONFAILED] Authentication failed (check the password in CAM_SECRET_TEST_WRONG_PASSWORD).")
    assert rows(mailbox) == []


def test_it_records_a_password_variable_that_is_not_set(imap_server):
    mailbox = mailbox_on(imap_server, imap_server.new_user(), imap_password_env="CAM_SECRET_UNSET_PASSWORD")

    assert inbox_poll(mailbox=mailbox)["failed"] == 1

    mailbox.refresh_from_db()
    assert mailbox.last_poll_error == (f"The environment variable CAM_SECRET_UNSET_PASSWORD for the IMAP password of "
                                       f"mailbox {mailbox.name!r} is not set.")


def test_it_clears_the_last_error_after_a_successful_poll(imap_server):
    mailbox = mailbox_on(imap_server, imap_server.new_user(), last_poll_error="Connection refused")

    assert inbox_poll(mailbox=mailbox)["failed"] == 0

    mailbox.refresh_from_db()
    assert mailbox.last_poll_error == ""


def test_it_cuts_a_raw_message_at_the_size_cap(imap_server, settings):
    settings.AICMO_CAM_RAW_MESSAGE_MAX_BYTES = 2048
    user = imap_server.new_user()
    large = message(1, subject="Big attachment", body="x" * 10_000)
    small = message(2)
    imap_server.append(user, large)
    imap_server.append(user, small)
    mailbox = mailbox_on(imap_server, user)

    assert inbox_poll(mailbox=mailbox)["stored"] == 2

    cut, whole = rows(mailbox)
    assert (bytes(cut.raw_message), cut.raw_truncated) == (large[:2048], True)
    assert (cut.subject, cut.message_id) == ("Big attachment", "<reply.1@company.test>")
    assert (bytes(whole.raw_message), whole.raw_truncated) == (small, False)


def test_it_polls_several_folders(imap_server):
    user = imap_server.new_user()
    inbox_uid = imap_server.append(user, message(1))
    replies_uids = [imap_server.append(user, message(n), folder="Replies") for n in (2, 3)]
    mailbox = mailbox_on(imap_server, user, folders=("INBOX", "Replies"))

    assert inbox_poll(mailbox=mailbox)["stored"] == 3

    assert [(row.folder, row.uid, row.message_id) for row in rows(mailbox)] == [
        ("INBOX", inbox_uid, "<reply.1@company.test>"),
        ("Replies", replies_uids[0], "<reply.2@company.test>"),
        ("Replies", replies_uids[1], "<reply.3@company.test>")]
    assert watermark(mailbox, "INBOX") == (imap_server.uidvalidity(user, "INBOX"), inbox_uid)
    assert watermark(mailbox, "Replies") == (imap_server.uidvalidity(user, "Replies"), replies_uids[1])


def test_it_stores_a_message_found_in_two_folders_once(imap_server):
    user = imap_server.new_user()
    imap_server.append(user, message(1))
    imap_server.append(user, message(1), folder="Copies")
    mailbox = mailbox_on(imap_server, user, folders=("INBOX", "Copies"))

    assert inbox_poll(mailbox=mailbox) == {"mailboxes": 1, "fetched": 2, "stored": 1, "skipped_duplicates": 1,
                                           "failed": 0}
    assert watermark(mailbox, "Copies")[1] == 1


def test_it_records_a_missing_folder_and_reads_the_others(imap_server):
    user = imap_server.new_user()
    imap_server.append(user, message(1))
    mailbox = mailbox_on(imap_server, user, folders=("INBOX", "Does-Not-Exist"))

    counts = inbox_poll(mailbox=mailbox)

    assert (counts["stored"], counts["failed"]) == (1, 1)
    mailbox.refresh_from_db()
    assert mailbox.last_poll_error.startswith(f"The IMAP server {imap_server.host}:{imap_server.port} refused "
                                              f"opening folder 'Does-Not-Exist':")


def test_it_polls_the_inbox_when_the_mailbox_lists_no_folder(imap_server):
    user = imap_server.new_user()
    mailbox = mailbox_on(imap_server, user, folders=())

    inbox_poll(mailbox=mailbox)
    imap_server.append(user, message(1))
    inbox_poll(mailbox=mailbox)

    assert list(mailbox.folders.values_list("name", flat=True)) == ["INBOX"]
    assert len(rows(mailbox)) == 1


def test_it_stores_a_message_that_cannot_be_parsed(imap_server):
    user = imap_server.new_user()
    broken = (b'From: "Unclosed <\r\nSubject: =?x-bogus?q?caf=E9?=\r\nDate: the day before yesterday\r\n'
              b"Content-Type: multipart/mixed\r\n\r\nno boundary \xff\xfe at all\r\n")
    imap_server.append(user, broken)
    mailbox = mailbox_on(imap_server, user)

    assert inbox_poll(mailbox=mailbox)["stored"] == 1

    (row,) = rows(mailbox)
    assert bytes(row.raw_message) == broken
    assert (row.message_id, row.from_email) == ("", "")
    # Without a readable Date the server's arrival time stands in.
    assert row.received_at is not None
    assert abs((datetime.now(UTC) - row.received_at).total_seconds()) < 120


def test_it_stores_a_message_whose_headers_decode_to_text_no_database_takes(imap_server):
    user = imap_server.new_user()
    hostile = (b"From: =?unicode_escape?q?\\ud800Lead?= <lead@company.test>\r\n"
               b"Subject: =?unicode_escape?q?\\ud800Hi?=\r\nDate: Fri, 31 Dec 9999 23:00:00 -0500\r\n"
               b"Content-Type: text/plain; charset=unicode_escape\r\n\r\n\\ud800Yes\\x00 please.\r\n")
    imap_server.append(user, hostile)
    mailbox = mailbox_on(imap_server, user)

    assert inbox_poll(mailbox=mailbox)["stored"] == 1

    (row,) = rows(mailbox)
    assert (row.from_name, row.subject, row.new_text) == ("?Lead", "?Hi", "?Yes please.")
    assert bytes(row.raw_message) == hostile


def test_it_stores_a_message_without_message_id_once_per_content(imap_server):
    user = imap_server.new_user()
    twin = message(1, message_id=None)
    imap_server.append(user, twin)
    imap_server.append(user, twin)
    imap_server.append(user, message(2, message_id=None))
    mailbox = mailbox_on(imap_server, user)

    assert inbox_poll(mailbox=mailbox) == {"mailboxes": 1, "fetched": 3, "stored": 2, "skipped_duplicates": 1,
                                           "failed": 0}


def test_it_fetches_in_chunks(imap_server, settings):
    settings.AICMO_CAM_IMAP_FETCH_CHUNK = 2
    user = imap_server.new_user()
    uids = [imap_server.append(user, message(n)) for n in range(1, 6)]
    mailbox = mailbox_on(imap_server, user)

    assert inbox_poll(mailbox=mailbox)["stored"] == 5

    assert [row.uid for row in rows(mailbox)] == uids
    assert watermark(mailbox)[1] == uids[-1]


def test_chunks_are_cut_by_count_and_by_bytes():
    uids = [1, 2, 3, 4, 5, 6]
    sizes = {1: 400, 2: 400, 3: 5_000, 4: 100, 5: 100}  # 6 is gone: counted at the most read of one

    assert fetch_chunks(uids, None, count=4, budget=10_000, each=1_000) == [([1, 2, 3, 4], 4_000), ([5, 6], 2_000)]
    assert fetch_chunks(uids, sizes, count=4, budget=1_000, each=1_000) == [
        ([1, 2], 800), ([3], 1_000), ([4, 5], 200), ([6], 1_000)]  # 3 counts up to what is read of it
    assert fetch_chunks(uids, sizes, count=100, budget=10, each=1_000) == [([uid], min(sizes.get(uid, 1_000), 1_000))
                                                                          for uid in uids]  # one each, at least
    assert fetch_chunks([], {}, count=4, budget=10, each=1) == []


def test_it_fetches_small_messages_in_big_chunks_and_big_ones_in_small_chunks(imap_server, settings, monkeypatch):
    settings.AICMO_CAM_RAW_MESSAGE_MAX_BYTES = 20_000
    settings.AICMO_CAM_IMAP_FETCH_CHUNK = 50
    settings.AICMO_CAM_IMAP_FETCH_CHUNK_BYTES = 30_000  # a chunk of 50 could bring 50 × 20,000: sizes are read
    user = imap_server.new_user()
    small = [imap_server.append(user, message(n)) for n in range(1, 7)]
    big = [imap_server.append(user, message(n, body="x" * 12_000)) for n in range(7, 10)]
    mailbox = mailbox_on(imap_server, user)
    real_fetch, chunks = imap.ImapInbox.fetch, []

    def fetch(inbox, chunk, **options):
        chunks.append(chunk)
        return real_fetch(inbox, chunk, **options)

    monkeypatch.setattr(imap.ImapInbox, "fetch", fetch)
    assert inbox_poll(mailbox=mailbox)["stored"] == 9

    assert chunks == [[*small, big[0], big[1]], [big[2]]]
    assert [row.uid for row in rows(mailbox)] == small + big
    assert watermark(mailbox)[1] == big[-1]


def test_it_keeps_each_stored_chunk_when_the_connection_breaks(imap_server, settings, monkeypatch):
    settings.AICMO_CAM_IMAP_FETCH_CHUNK = 2
    user = imap_server.new_user()
    mailbox = mailbox_on(imap_server, user, backfill_days=0)
    assert inbox_poll(mailbox=mailbox)["fetched"] == 0  # the folder starts here
    uids = [imap_server.append(user, message(n)) for n in range(1, 6)]
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
    assert watermark(mailbox)[1] == uids[1]

    monkeypatch.setattr(imap.ImapInbox, "fetch", real_fetch)
    assert inbox_poll(mailbox=mailbox) == {"mailboxes": 1, "fetched": 3, "stored": 3, "skipped_duplicates": 0,
                                           "failed": 0}
    assert [row.uid for row in rows(mailbox)] == uids


def test_it_leaves_a_folder_to_a_worker_that_advanced_it_meanwhile(imap_server, monkeypatch):
    user = imap_server.new_user()
    uids = [imap_server.append(user, message(n)) for n in (1, 2)]
    mailbox = mailbox_on(imap_server, user)
    folder = mailbox.folders.get()
    real_fetch = imap.ImapInbox.fetch

    def fetch_while_another_worker_stores(inbox, chunk, **options):
        MailboxFolder.objects.filter(pk=folder.pk).update(uidvalidity=imap_server.uidvalidity(user),
                                                          last_uid=uids[-1])
        return real_fetch(inbox, chunk, **options)

    monkeypatch.setattr(imap.ImapInbox, "fetch", fetch_while_another_worker_stores)
    counts = inbox_poll(mailbox=mailbox)

    assert (counts["stored"], counts["failed"]) == (0, 0)
    assert rows(mailbox) == []
    assert watermark(mailbox)[1] == uids[-1]


def test_it_skips_a_mailbox_another_worker_is_polling(imap_server):
    user = imap_server.new_user()
    imap_server.append(user, message(1))
    mailbox = mailbox_on(imap_server, user)
    assert lease_acquire(name=f"poll:mailbox:{mailbox.pk}", holder="another-worker")

    assert inbox_poll(mailbox=mailbox) == {"mailboxes": 0, "fetched": 0, "stored": 0, "skipped_duplicates": 0,
                                           "failed": 0, "busy": 1}
    assert rows(mailbox) == []


def _queries_to_poll(server, count: int) -> int:
    user = server.new_user()
    for n in range(1, count + 1):
        server.append(user, message(n))
    mailbox = mailbox_on(server, user)
    with CaptureQueriesContext(connection) as queries:
        assert inbox_poll(mailbox=mailbox)["stored"] == count
    return len(queries.captured_queries)


def test_it_costs_the_same_queries_for_3_and_30_messages(imap_server, settings):
    settings.AICMO_CAM_IMAP_FETCH_CHUNK = 30

    assert _queries_to_poll(imap_server, 3) == _queries_to_poll(imap_server, 30)


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_it_never_falls_back_to_plain_text_when_the_mailbox_asks_for_tls(imap_server, security):
    # The test server offers neither STARTTLS nor implicit TLS: the poll must fail, not log in in clear.
    user = imap_server.new_user()
    imap_server.append(user, message(1))
    mailbox = mailbox_on(imap_server, user, imap_security=security)

    assert inbox_poll(mailbox=mailbox)["failed"] == 1

    mailbox.refresh_from_db()
    assert f"IMAP server {imap_server.host}:{imap_server.port}" in mailbox.last_poll_error
    assert rows(mailbox) == []
