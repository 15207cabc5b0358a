"""The mailbox page's folders: staff choose how many past days a new folder's first poll reads."""

from __future__ import annotations

import html

import pytest
from django.urls import reverse

from cam.models import MailboxFolder
from tests.factories import MailboxFactory, MailboxFolderFactory
from tests.test_secret_settings import form_data

pytestmark = pytest.mark.django_db


def change_url(mailbox) -> str:
    return reverse("admin:cam_mailbox_change", args=[mailbox.pk])


def posted_with_folder(admin_client, mailbox, folder, **values) -> dict:
    data = form_data(admin_client, change_url(mailbox))
    data.update({"folders-TOTAL_FORMS": "1", "folders-INITIAL_FORMS": "1", "folders-MIN_NUM_FORMS": "0",
                 "folders-MAX_NUM_FORMS": "1000", "folders-0-id": str(folder.pk),
                 "folders-0-mailbox": str(mailbox.pk), "folders-0-name": folder.name,
                 **{f"folders-0-{name}": value for name, value in values.items()}})
    return data


def test_the_folders_show_the_backfill_with_what_it_does(admin_client):
    mailbox = MailboxFactory(imap_host="imap.example.com")
    MailboxFolderFactory(mailbox=mailbox, name="INBOX")

    page = html.unescape(admin_client.get(change_url(mailbox)).content.decode())

    assert "Read the last N days" in page
    assert "The first poll of this folder reads only what arrives from then on." in page
    assert 'name="folders-0-backfill_days"' in page


def test_staff_set_a_folders_backfill_on_the_mailbox_page(admin_client):
    mailbox = MailboxFactory(imap_host="imap.example.com")
    folder = MailboxFolderFactory(mailbox=mailbox, name="INBOX")

    response = admin_client.post(change_url(mailbox), posted_with_folder(admin_client, mailbox, folder,
                                                                          backfill_days="14"))

    assert response.status_code == 302
    assert MailboxFolder.objects.get(pk=folder.pk).backfill_days == 14


@pytest.mark.parametrize(("value", "problem"), [
    ("400", "Ensure this value is less than or equal to 365."),
    ("-3", "Ensure this value is greater than or equal to 0."),
    ("a week", "Enter a whole number."),
])
def test_a_backfill_out_of_range_is_refused_with_the_reason(admin_client, value, problem):
    mailbox = MailboxFactory(imap_host="imap.example.com")
    folder = MailboxFolderFactory(mailbox=mailbox, name="INBOX")

    response = admin_client.post(change_url(mailbox), posted_with_folder(admin_client, mailbox, folder,
                                                                          backfill_days=value))

    assert response.status_code == 200
    assert problem in str(response.context["inline_admin_formsets"][0].formset.errors)
    assert MailboxFolder.objects.get(pk=folder.pk).backfill_days == 0
