"""CSV import and export of leads, through the real admin views as a logged-in superuser."""

from __future__ import annotations

import csv
import html
import io

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from cam.models import Lead
from tests.factories import CampaignFactory, LeadFactory, SuppressionFactory

pytestmark = pytest.mark.django_db

IMPORT_URL = "admin:cam_lead_import"
CONFIRM_URL = "admin:cam_lead_process_import"


def text_of(response) -> str:
    return html.unescape(response.content.decode())


def preview(client, campaign, content: bytes, name: str = "leads.csv"):
    return client.post(reverse(IMPORT_URL), {
        "campaign": campaign.pk if campaign else "",
        "resource": "0",
        "format": "0",
        "import_file": SimpleUploadedFile(name, content, content_type="text/csv"),
    })


def confirm(client, preview_response):
    form = preview_response.context["confirm_form"]
    data = {name: form[name].value() for name in form.fields}
    return client.post(reverse(CONFIRM_URL), data, follow=True)


def import_file(client, campaign, content: bytes):
    response = preview(client, campaign, content)
    assert response.status_code == 200
    return confirm(client, response)


def emails_in(campaign) -> set[str]:
    return set(Lead.objects.filter(campaign=campaign).values_list("email", flat=True))


# Every kind of bad line, between good ones. Line numbers are the file's physical lines.
MIXED_FILE = (
    b"email,First Name,last_name,company,company_size,timezone\n"           # 1
    b"anna@acme-gmbh.de,Anna,Schmidt,ACME GmbH,120,Europe/Berlin\n"           # 2 good
    b"not-an-email,Bob,Stone,,,\n"                                           # 3 invalid email
    b"jose@acme-gmbh.de,Jos\xc3\xa9,Garc\xc3\xada,ACME GmbH,15,\n"          # 4 good (UTF-8)
    b" ANNA@Acme-GmbH.de ,Anna,Again,,,\n"                                   # 5 duplicate in the file
    b"known@acme-gmbh.de,Known,Lead,,,\n"                                    # 6 already a lead
    b"size@acme-gmbh.de,Size,Bad,,lots,\n"                                   # 7 bad company_size
    b"tz@acme-gmbh.de,Tz,Bad,,,Mars/Olympus\n"                               # 8 unknown timezone
    b"bytes@acme-gmbh.de,Br\xffken,Bytes,,,\n"                               # 9 not UTF-8
    b'multi@acme-gmbh.de,Multi,"Two\nLines",,,\n'                            # 10-11 good, one record
    b"\n"                                                                    # 12 blank: ignored
    b"minus@acme-gmbh.de,Minus,Size,,-5,\n"                                  # 13 negative company_size
)
MIXED_REJECTIONS = {
    3: "invalid email",
    5: "duplicate: anna@acme-gmbh.de is already on line 2",
    6: "duplicate: known@acme-gmbh.de is already a lead in this campaign",
    7: "company_size 'lots' is not a whole number",
    8: "timezone 'Mars/Olympus' is not a known time zone",
    9: "not valid UTF-8 (byte 0xFF at position 22)",
    13: "company_size '-5' is not a whole number",
}


def known_lead(campaign):
    """Line 6 of MIXED_FILE's lead, as the file has it: the import leaves it unchanged."""
    return LeadFactory(campaign=campaign, email="known@acme-gmbh.de", first_name="Known", last_name="Lead")


def test_it_previews_good_rows_and_lists_each_bad_line_with_its_reason(admin_client):
    campaign = CampaignFactory(name="Spring outreach")
    known_lead(campaign)

    response = preview(admin_client, campaign, MIXED_FILE)

    text = text_of(response)
    assert response.context["confirm_form"] is not None
    for line, reason in MIXED_REJECTIONS.items():
        assert f"Line {line}: {reason}" in text
    assert ("Into “Spring outreach”: 3 new leads will be added and 0 updated; 2 unchanged (duplicate), "
            "0 suppressed and 5 rejected lines will be skipped.") in text
    assert "jose@acme-gmbh.de" in text
    assert emails_in(campaign) == {"known@acme-gmbh.de"}, "the preview writes nothing"


def test_it_imports_the_good_rows_and_reports_the_skipped_lines_after_confirming(admin_client):
    campaign = CampaignFactory(name="Spring outreach")
    known_lead(campaign)
    LeadFactory(email="anna@acme-gmbh.de")  # the same address in another campaign is no duplicate

    response = import_file(admin_client, campaign, MIXED_FILE)

    assert response.redirect_chain[-1][0] == reverse("admin:cam_lead_changelist")
    text = text_of(response)
    assert ("Imported into “Spring outreach”: 3 created, 0 updated, 2 unchanged (duplicate), 0 suppressed, "
            "5 rejected.") in text
    for line, reason in MIXED_REJECTIONS.items():
        assert f"Line {line}: {reason}" in text
    assert emails_in(campaign) == {"known@acme-gmbh.de", "anna@acme-gmbh.de", "jose@acme-gmbh.de",
                                   "multi@acme-gmbh.de"}
    anna = Lead.objects.get(campaign=campaign, email="anna@acme-gmbh.de")
    assert (anna.first_name, anna.last_name, anna.company, anna.company_size, anna.timezone) == (
        "Anna", "Schmidt", "ACME GmbH", 120, "Europe/Berlin")
    assert anna.email_domain == "acme-gmbh.de"
    assert anna.status == Lead.Status.NEW
    assert anna.raw_data["first_name"] == "Anna"
    assert Lead.objects.get(campaign=campaign, email="jose@acme-gmbh.de").last_name == "García"
    assert Lead.objects.get(campaign=campaign, email="multi@acme-gmbh.de").last_name == "Two Lines"


def test_it_lists_only_the_first_lines_in_the_message_when_many_are_skipped(admin_client):
    campaign = CampaignFactory()
    rows = b"".join(b"broken-%d,x\n" % n for n in range(25))

    response = import_file(admin_client, campaign, b"email,first_name\nok@acme-gmbh.de,Ok\n" + rows)

    text = text_of(response)
    assert "1 created, 0 updated, 0 unchanged (duplicate), 0 suppressed, 25 rejected." in text
    assert "Line 22: invalid email" in text, "lines 3 to 22 are listed"
    assert "Line 23: invalid email" not in text
    assert "… and 5 more." in text


def test_it_checks_again_at_confirmation_for_leads_added_since_the_preview(admin_client):
    campaign = CampaignFactory()
    response = preview(admin_client, campaign, b"email\nanna@acme-gmbh.de\nben@acme-gmbh.de\n")
    LeadFactory(campaign=campaign, email="ben@acme-gmbh.de", first_name="Meanwhile")

    response = confirm(admin_client, response)

    text = text_of(response)
    assert "1 created, 0 updated, 1 unchanged (duplicate)" in text
    assert "Line 3: duplicate: ben@acme-gmbh.de is already a lead in this campaign" in text
    assert Lead.objects.get(campaign=campaign, email="ben@acme-gmbh.de").first_name == "Meanwhile"


def test_it_imports_nothing_when_the_campaign_is_deleted_before_confirmation(admin_client):
    campaign = CampaignFactory()
    response = preview(admin_client, campaign, b"email\nanna@acme-gmbh.de\n")
    campaign.delete()

    response = confirm(admin_client, response)

    assert "campaign" in response.context["confirm_form"].errors
    assert not Lead.objects.exists()


def test_it_refuses_a_file_without_an_email_column_and_imports_nothing(admin_client):
    campaign = CampaignFactory()

    response = preview(admin_client, campaign, b"Name,Company\nAnna,ACME\n")

    text = text_of(response)
    assert "The file was not imported" in text
    assert "The file has no 'email' column; its columns are: name, company." in text
    assert response.context.get("confirm_form") is None
    assert not Lead.objects.exists()


def test_it_requires_a_campaign(admin_client):
    response = preview(admin_client, None, b"email\nanna@acme-gmbh.de\n")

    assert response.context["form"].errors["campaign"] == ["This field is required."]
    assert response.context.get("confirm_form") is None


def test_it_imports_a_utf8_file_with_a_byte_order_mark(admin_client):
    campaign = CampaignFactory()
    content = "\ufeffEmail , First Name,Last Name\nanna@acme-gmbh.de,Anna,Weiß\n".encode()

    response = import_file(admin_client, campaign, content)

    lead = Lead.objects.get(campaign=campaign)
    assert (lead.email, lead.first_name, lead.last_name) == ("anna@acme-gmbh.de", "Anna", "Weiß")
    assert "Windows-1252" not in text_of(response)


def test_it_imports_a_latin1_file_and_says_how_it_was_read(admin_client):
    campaign = CampaignFactory()
    content = "email,first_name,last_name,company\nhans@mueller.de,Jürgen,Müller,Bäckerei Müller\n".encode("latin-1")

    response = preview(admin_client, campaign, content)
    assert "read as Windows-1252" in text_of(response)
    response = confirm(admin_client, response)

    lead = Lead.objects.get(campaign=campaign)
    assert (lead.first_name, lead.last_name, lead.company) == ("Jürgen", "Müller", "Bäckerei Müller")
    assert "read as Windows-1252" in text_of(response)


def test_it_skips_suppressed_addresses_and_domains(admin_client):
    campaign = CampaignFactory()
    SuppressionFactory(email="gone@acme-gmbh.de")
    SuppressionFactory(email="", domain="blocked.de")

    response = import_file(admin_client, campaign,
                           b"email\ngone@acme-gmbh.de\nanyone@blocked.de\nstays@acme-gmbh.de\n")

    text = text_of(response)
    assert "Line 2: gone@acme-gmbh.de is on the suppression list" in text
    assert "Line 3: the domain blocked.de is on the suppression list" in text
    assert emails_in(campaign) == {"stays@acme-gmbh.de"}


def test_an_id_column_reaches_no_lead_of_another_campaign(admin_client):
    other = LeadFactory(email="someone@else.de", first_name="Kept")
    campaign = CampaignFactory()

    import_file(admin_client, campaign, b"id,email,first_name\n%d,new@acme-gmbh.de,Changed\n" % other.pk)

    other.refresh_from_db()
    assert (other.email, other.first_name) == ("someone@else.de", "Kept")
    assert emails_in(campaign) == {"new@acme-gmbh.de"}


def test_it_shows_import_and_export_buttons_on_the_lead_list(admin_client):
    response = admin_client.get(reverse("admin:cam_lead_changelist"))

    text = text_of(response)
    assert reverse(IMPORT_URL) in text
    assert reverse("admin:cam_lead_export") in text


def test_it_exports_the_filtered_leads_as_csv(admin_client):
    spring, autumn = CampaignFactory(name="Spring"), CampaignFactory(name="Autumn")
    LeadFactory(campaign=spring, email="anna@acme-gmbh.de", first_name="Anna", last_name="Müller",
                company_size=40, timezone="Europe/Berlin", website="https://acme-gmbh.de")
    LeadFactory(campaign=spring, email="ben@acme-gmbh.de", status=Lead.Status.QUALIFIED, score=80)
    LeadFactory(campaign=autumn, email="carl@other.de")

    response = admin_client.get(reverse("admin:cam_lead_export"), {"campaign__id__exact": spring.pk})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert list(rows[0]) == ["email", "first_name", "last_name", "company", "title", "industry", "country",
                             "company_size", "website", "timezone", "campaign", "status", "score"]
    by_email = {row["email"]: row for row in rows}
    assert set(by_email) == {"anna@acme-gmbh.de", "ben@acme-gmbh.de"}
    anna, ben = by_email["anna@acme-gmbh.de"], by_email["ben@acme-gmbh.de"]
    assert (anna["last_name"], anna["company_size"], anna["timezone"], anna["website"], anna["campaign"],
            anna["status"], anna["score"]) == ("Müller", "40", "Europe/Berlin", "https://acme-gmbh.de", "Spring",
                                               "NEW", "")
    assert (ben["status"], ben["score"]) == ("QUALIFIED", "80")


def test_it_reimports_its_own_export(admin_client):
    source, target = CampaignFactory(), CampaignFactory()
    LeadFactory(campaign=source, email="anna@acme-gmbh.de", last_name="Müller", company_size=12)
    exported = admin_client.get(reverse("admin:cam_lead_export"), {"campaign__id__exact": source.pk}).content

    import_file(admin_client, target, exported)

    lead = Lead.objects.get(campaign=target)
    assert (lead.email, lead.last_name, lead.company_size) == ("anna@acme-gmbh.de", "Müller", 12)


def leads_csv(count: int) -> bytes:
    rows = "".join(f"lead{n}@acme-gmbh.de,First{n},Last{n},ACME,{n},Europe/Berlin\n" for n in range(count))
    return ("email,first_name,last_name,company,company_size,timezone\n" + rows).encode()


def queries_to_import(client, count: int) -> tuple[int, int]:
    campaign = CampaignFactory()
    content = leads_csv(count) + b"not-an-email,Bad,Row,,,\n"
    # The admin log looks the content type up once per process; both runs should pay for it.
    ContentType.objects.clear_cache()
    with CaptureQueriesContext(connection) as previewing:
        response = preview(client, campaign, content)
    with CaptureQueriesContext(connection) as confirming:
        confirm(client, response)
    assert Lead.objects.filter(campaign=campaign).count() == count
    return len(previewing), len(confirming)


def test_it_imports_in_a_constant_number_of_queries(admin_client):
    assert queries_to_import(admin_client, 3) == queries_to_import(admin_client, 50)


def test_it_exports_in_a_constant_number_of_queries(admin_client):
    def queries_to_export(count: int) -> int:
        campaign = CampaignFactory()
        LeadFactory.create_batch(count, campaign=campaign)
        with CaptureQueriesContext(connection) as exporting:
            response = admin_client.get(reverse("admin:cam_lead_export"), {"campaign__id__exact": campaign.pk})
        assert response.content.decode("utf-8-sig").count("\n") == count + 1
        return len(exporting)

    assert queries_to_export(1) == queries_to_export(3)
