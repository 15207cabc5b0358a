"""Secrets CAM stores itself (OAuth2 refresh tokens) are encrypted at rest (cam.crypto, EncryptedTextField):
unreadable in the table and in a dump, never shown, re-encrypted under a rotated-in key, and a key that
cannot open them is named as the problem."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.checks import run_checks
from django.core.management import call_command
from django.db import connection

from aicmo_site.env import StrictEnv
from cam import crypto
from cam.models import Mailbox
from tests.factories import MailboxFactory

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "1//0refresh-token-from-the-provider"


@pytest.fixture
def key_one(settings):
    key = Fernet.generate_key().decode()
    settings.AICMO_CAM_ENCRYPTION_KEYS = [key]
    return key


def raw_column(mailbox: Mailbox) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT oauth_refresh_token FROM cam_mailbox WHERE id = %s", [mailbox.pk])
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_a_stored_token_is_ciphertext_in_the_table_and_opens_with_the_key(key_one):
    mailbox = MailboxFactory(oauth_refresh_token=TOKEN)

    stored = raw_column(mailbox)
    assert TOKEN not in stored and stored.startswith("gAAAAA")
    assert Fernet(key_one).decrypt(stored.encode()).decode() == TOKEN
    assert Mailbox.objects.get(pk=mailbox.pk).oauth_refresh_token.reveal() == TOKEN


@pytest.mark.django_db
def test_no_token_is_stored_as_empty_not_as_an_encrypted_empty_string(key_one):
    mailbox = MailboxFactory()

    assert raw_column(mailbox) == ""
    assert not Mailbox.objects.get(pk=mailbox.pk).oauth_refresh_token


@pytest.mark.django_db
def test_str_and_repr_never_show_the_token_nor_its_ciphertext(key_one):
    mailbox = Mailbox.objects.get(pk=MailboxFactory(oauth_refresh_token=TOKEN).pk)
    sealed = mailbox.oauth_refresh_token

    for shown in (str(sealed), repr(sealed), f"{sealed}", repr(mailbox.__dict__)):
        assert TOKEN not in shown
        assert sealed.ciphertext not in shown


@pytest.mark.django_db
def test_a_dump_carries_only_ciphertext_and_loads_back(key_one, tmp_path):
    mailbox = MailboxFactory(oauth_refresh_token=TOKEN)
    out = io.StringIO()
    call_command("dumpdata", "cam.mailbox", stdout=out)
    dump = out.getvalue()
    assert TOKEN not in dump
    [record] = json.loads(dump)
    assert record["fields"]["oauth_refresh_token"] == raw_column(mailbox)

    Mailbox.objects.all().delete()
    fixture = tmp_path / "mailboxes.json"
    fixture.write_text(dump)
    call_command("loaddata", str(fixture), verbosity=0)

    assert Mailbox.objects.get().oauth_refresh_token.reveal() == TOKEN


@pytest.mark.django_db
def test_the_admin_page_of_a_connected_mailbox_shows_no_token(key_one, admin_client):
    mailbox = MailboxFactory(oauth_refresh_token=TOKEN)
    ciphertext = raw_column(mailbox)

    page = admin_client.get(f"/admin/cam/mailbox/{mailbox.pk}/change/").content.decode()

    assert TOKEN not in page and ciphertext not in page


@pytest.mark.django_db
def test_rotation_reencrypts_every_token_under_the_newest_key(settings, key_one):
    mailboxes = [MailboxFactory(oauth_refresh_token=f"{TOKEN}-{n}") for n in range(5)]
    MailboxFactory()  # no token: nothing to re-encrypt
    before = {m.pk: raw_column(m) for m in mailboxes}
    key_two = Fernet.generate_key().decode()
    settings.AICMO_CAM_ENCRYPTION_KEYS = [key_two, key_one]
    out = io.StringIO()

    call_command("cam_reencrypt", "--batch-size", "2", stdout=out)

    assert "mailbox.oauth_refresh_token: 5 value(s) re-encrypted" in out.getvalue()
    settings.AICMO_CAM_ENCRYPTION_KEYS = [key_two]  # the old key dropped
    for n, mailbox in enumerate(mailboxes):
        after = raw_column(mailbox)
        assert after != before[mailbox.pk]
        assert Fernet(key_two).decrypt(after.encode()).decode() == f"{TOKEN}-{n}"
        assert Mailbox.objects.get(pk=mailbox.pk).oauth_refresh_token.reveal() == f"{TOKEN}-{n}"


@pytest.mark.django_db
def test_a_wrong_key_is_named_as_the_problem_when_a_token_is_read_and_when_the_database_is_checked(settings, key_one):
    mailbox = MailboxFactory(oauth_refresh_token=TOKEN)
    settings.AICMO_CAM_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # replaced, not rotated

    loaded = Mailbox.objects.get(pk=mailbox.pk)  # loading still works: only reading the token fails
    with pytest.raises(crypto.EncryptionKeyError, match="None of the 1 key\\(s\\) in AICMO_CAM_ENCRYPTION_KEYS "
                                                        "decrypts mailbox's OAuth2 refresh token"):
        loaded.oauth_refresh_token.reveal()

    [error] = [m for m in run_checks(databases=["default"]) if m.id == "cam.E005"]
    assert "AICMO_CAM_ENCRYPTION_KEYS" in error.msg and "replaced or dropped" in error.msg
    assert "cam_reencrypt" in error.hint
    settings.AICMO_CAM_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), key_one]
    assert [m for m in run_checks(databases=["default"]) if m.id == "cam.E005"] == []


@pytest.mark.django_db
def test_reencrypting_with_a_wrong_key_stops_with_the_message(settings, key_one):
    MailboxFactory(oauth_refresh_token=TOKEN)
    settings.AICMO_CAM_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]

    with pytest.raises(Exception, match="None of the 1 key\\(s\\) in AICMO_CAM_ENCRYPTION_KEYS decrypts mailbox"):
        call_command("cam_reencrypt", stdout=io.StringIO())


def test_storing_a_token_without_any_key_says_which_variable_to_set(settings):
    settings.AICMO_CAM_ENCRYPTION_KEYS = []

    with pytest.raises(crypto.EncryptionKeyError, match="AICMO_CAM_ENCRYPTION_KEYS is not set"):
        crypto.encrypt(TOKEN)


@pytest.mark.parametrize("value", ["not-a-key", Fernet.generate_key().decode()[:-4], "a" * 44])
def test_a_malformed_key_is_refused_by_position_without_echoing_it(value):
    good = Fernet.generate_key().decode()
    env = StrictEnv({"AICMO_CAM_ENCRYPTION_KEYS": f"{good},{value}"})

    with pytest.raises(Exception, match="key 2 of 2 is not a Fernet key") as caught:
        env.fernet_keys("AICMO_CAM_ENCRYPTION_KEYS")
    assert value not in str(caught.value) and good not in str(caught.value)


def test_a_malformed_key_stops_start_up_with_a_clear_message(tmp_path):
    environment = {**os.environ, "AICMO_CAM_ENCRYPTION_KEYS": "s3cret-but-not-a-key",
                   "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}

    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=environment,
                            capture_output=True, text=True, timeout=120)

    assert result.returncode != 0
    assert "AICMO_CAM_ENCRYPTION_KEYS is not valid: key 1 of 1 is not a Fernet key" in result.stderr
    assert "s3cret-but-not-a-key" not in result.stderr


def test_new_key_prints_a_key_the_settings_accept():
    out = io.StringIO()
    call_command("cam_reencrypt", "--new-key", stdout=out)

    key = out.getvalue().strip()
    assert StrictEnv({"AICMO_CAM_ENCRYPTION_KEYS": key}).fernet_keys("AICMO_CAM_ENCRYPTION_KEYS") == [key]
