"""``manage.py cam_import_leads FILE --campaign ID``: a CSV file into a campaign, with a report of bad lines."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from cam.models import HarvestRejection, Lead, LeadSource
from cam.pipeline import intake
from cam.pipeline.harvest import harvest_campaign
from tests.factories import CampaignFactory, LeadFactory, SuppressionFactory

pytestmark = pytest.mark.django_db


def import_leads(*args: str) -> list[str]:
    out = io.StringIO()
    call_command("cam_import_leads", *args, stdout=out)
    return out.getvalue().splitlines()


def write(tmp_path, content: str, name: str = "fair.csv", encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_bytes(content.encode(encoding))
    return path


def test_it_imports_a_file_and_reports_every_outcome_and_the_rejected_lines(tmp_path):
    campaign = CampaignFactory(name="DACH CTOs")
    LeadFactory(campaign=campaign, email="known@acme-gmbh.de", title="Developer")
    SuppressionFactory(email="blocked@acme-gmbh.de")
    path = write(tmp_path, "email,first_name,title,company_size\n"
                           "anna@acme-gmbh.de,Anna,CTO,51-200\n"
                           "known@acme-gmbh.de,,CTO,\n"
                           "ANNA@acme-gmbh.de,Annette,,\n"
                           "blocked@acme-gmbh.de,,,\n"
                           "not-an-address,Ben,,\n"
                           "cem@acme-gmbh.de,Cem,,lots\n")

    lines = import_leads(str(path), "--campaign", str(campaign.pk))

    assert lines == [
        f"6 rows read from {path} (utf-8) into “DACH CTOs”: 1 created, 1 updated, 1 duplicate, 1 suppressed, "
        f"2 rejected.",
        "Rejected lines:",
        "  line 6: invalid email 'not-an-address': An email address must have an @-sign.",
        "  line 7: company_size 'lots' is not a whole number",
    ]
    assert sorted(Lead.objects.filter(campaign=campaign).values_list("email", "title")) == [
        ("anna@acme-gmbh.de", "CTO"), ("known@acme-gmbh.de", "CTO")]
    source = LeadSource.objects.get(campaign=campaign)
    assert (source.name, source.kind, source.config["path"]) == ("CSV import: fair.csv", "csv", str(path))
    assert source.last_harvest_counts == {"read": 6, "created": 1, "updated": 1, "duplicate": 1, "suppressed": 1,
                                          "rejected": 2}
    assert Lead.objects.get(email="anna@acme-gmbh.de").source == source


def test_it_keeps_the_imported_file_out_of_the_daily_harvest(tmp_path):
    campaign = CampaignFactory()
    path = write(tmp_path, "email,title\nanna@acme-gmbh.de,CTO\n")
    import_leads(str(path), "--campaign", str(campaign.pk))
    Lead.objects.filter(campaign=campaign).update(title="Chief Technology Officer")  # corrected by staff

    assert harvest_campaign(campaign=campaign)["sources"] == 0
    assert Lead.objects.get(campaign=campaign).title == "Chief Technology Officer"
    assert LeadSource.objects.get(campaign=campaign).enabled is False


def test_it_leaves_a_source_staff_enabled_enabled_when_the_file_is_imported_again(tmp_path):
    campaign = CampaignFactory()
    path = write(tmp_path, "email\nanna@acme-gmbh.de\n")
    import_leads(str(path), "--campaign", str(campaign.pk))
    LeadSource.objects.filter(campaign=campaign).update(enabled=True)

    lines = import_leads(str(path), "--campaign", str(campaign.pk))

    assert lines[0].endswith(": 0 created, 0 updated, 1 duplicate, 0 suppressed, 0 rejected.")
    assert LeadSource.objects.get(campaign=campaign).enabled is True


def test_it_lists_only_the_first_rejected_lines_and_says_how_many_more(tmp_path):
    campaign = CampaignFactory()
    path = write(tmp_path, "email\n" + "".join(f"bad{n}\n" for n in range(5)))

    lines = import_leads(str(path), "--campaign", str(campaign.pk), "--show-rejected", "2")

    assert lines[1:] == [
        "Rejected lines (first 2):",
        "  line 2: invalid email 'bad0': An email address must have an @-sign.",
        "  line 3: invalid email 'bad1': An email address must have an @-sign.",
        "  … and 3 more, listed under Harvest rejections in the admin.",
    ]
    assert HarvestRejection.objects.filter(campaign=campaign).count() == 5


def test_it_reads_a_differently_named_column(tmp_path):
    campaign = CampaignFactory()
    path = write(tmp_path, "E-Mail,Firma\nanna@acme-gmbh.de,ACME\n")

    lines = import_leads(str(path), "--campaign", str(campaign.pk), "--column", "email=E-Mail",
                         "--column", "company = Firma")

    assert lines[0].endswith(": 1 created, 0 updated, 0 duplicate, 0 suppressed, 0 rejected.")
    assert list(Lead.objects.filter(campaign=campaign).values_list("email", "company")) == [
        ("anna@acme-gmbh.de", "ACME")]


def test_it_says_which_encoding_it_read_a_latin_1_file_in(tmp_path):
    campaign = CampaignFactory()
    path = write(tmp_path, "email,last_name\nanna@acme-gmbh.de,Müller\n", encoding="latin-1")

    lines = import_leads(str(path), "--campaign", str(campaign.pk))

    assert f"from {path} (cp1252) into" in lines[0]
    assert Lead.objects.get(campaign=campaign).last_name == "Müller"


def test_it_creates_no_more_than_max_leads(tmp_path):
    campaign = CampaignFactory()
    path = write(tmp_path, "email\n" + "".join(f"lead{n}@acme-gmbh.de\n" for n in range(5)))

    lines = import_leads(str(path), "--campaign", str(campaign.pk), "--max-leads", "3")

    assert lines == [f"3 rows read from {path} (utf-8) into “{campaign.name}”: 3 created, 0 updated, "
                     f"0 duplicate, 0 suppressed, 0 rejected."]
    assert Lead.objects.filter(campaign=campaign).count() == 3


def test_it_refuses_an_unknown_campaign(tmp_path):
    path = write(tmp_path, "email\nanna@acme-gmbh.de\n")

    with pytest.raises(CommandError, match=r"^No campaign with id 999999\.$"):
        import_leads(str(path), "--campaign", "999999")


def test_it_refuses_a_missing_file_and_leaves_no_source_behind(tmp_path):
    campaign = CampaignFactory()
    path = tmp_path / "typo.csv"

    with pytest.raises(CommandError) as caught:
        import_leads(str(path), "--campaign", str(campaign.pk))

    assert str(caught.value) == f"No file at {path}."
    assert not LeadSource.objects.filter(campaign=campaign).exists()


def test_it_refuses_a_file_without_an_email_column(tmp_path):
    campaign = CampaignFactory()
    path = write(tmp_path, "Name,Mail\nAnna,anna@acme-gmbh.de\n")

    with pytest.raises(CommandError) as caught:
        import_leads(str(path), "--campaign", str(campaign.pk))

    assert str(caught.value) == "The file has no 'email' column; its columns are: name, mail."
    assert not Lead.objects.filter(campaign=campaign).exists()


@pytest.mark.parametrize(("option", "message"), [
    ("email", "--column 'email' should look like email=E-Mail."),
    ("=E-Mail", "--column '=E-Mail' should look like email=E-Mail."),
    ("mail=E-Mail", "Unknown lead field(s): mail. Known: email, first_name, last_name, company, title, industry, "
                    "country, company_size, website, timezone."),
])
def test_it_refuses_a_bad_column_mapping(tmp_path, option, message):
    campaign = CampaignFactory()
    path = write(tmp_path, "E-Mail\nanna@acme-gmbh.de\n")

    with pytest.raises(CommandError) as caught:
        import_leads(str(path), "--campaign", str(campaign.pk), "--column", option)

    assert str(caught.value) == message
    assert not LeadSource.objects.filter(campaign=campaign).exists()


def test_it_draws_a_progress_bar_when_asked(tmp_path):
    campaign = CampaignFactory()
    path = tmp_path / "leads.csv"
    path.write_bytes(b"email\n" + b"".join(f"p{n}@acme-gmbh.de\n".encode() for n in range(30)))
    out = io.StringIO()
    call_command("cam_import_leads", str(path), "--campaign", str(campaign.pk), "--progress", stdout=out)
    assert "\r[##############################] 100%  30 rows  30 created  0 rejected" in out.getvalue()


def test_a_file_read_in_many_batches_ends_as_one_read_in_one(tmp_path, monkeypatch):
    # The command checks each batch while the one before is written: suppressions, existing leads and
    # repeats are still judged against everything before them, in file order.
    outcomes = batches_against_one(tmp_path, monkeypatch)

    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] == "37 created, 1 updated, 4 duplicate, 1 suppressed, 1 rejected."


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_two_writers_end_a_file_as_one_batch_does(tmp_path, monkeypatch):
    """On PostgreSQL, outside a transaction, two threads write the batches on connections of their own while
    the next is judged: the report, the leads and the rejections are those of one batch all the same."""
    import threading

    from django.db import connection

    writers = set()
    real_write_own = intake._write_own

    def write_own(run, judged):
        writers.add(threading.get_ident())
        return real_write_own(run, judged)

    monkeypatch.setattr(intake, "_write_own", write_own)
    outcomes = batches_against_one(tmp_path, monkeypatch)

    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] == "37 created, 1 updated, 4 duplicate, 1 suppressed, 1 rejected."
    assert len(writers) == (2 if connection.vendor == "postgresql" else 0)


def batches_against_one(tmp_path, monkeypatch) -> list:
    """The same file imported in one batch and in batches of three: what each import reported and left."""
    rows = ["email,title"]
    for n in range(40):
        rows.append(f"lead{n}@acme-gmbh.de,CTO" if n % 7 else f"lead{n // 2}@acme-gmbh.de,CTO")
    rows += ["known@acme-gmbh.de,CTO", "x@blocked-gmbh.de,", "bad,", "known@acme-gmbh.de,CEO"]
    path = write(tmp_path, "\n".join(rows) + "\n")
    SuppressionFactory(email="", domain="blocked-gmbh.de")
    outcomes = []
    for batch_size in (1000, 3):
        monkeypatch.setattr(intake, "BATCH_SIZE", batch_size)
        campaign = CampaignFactory()
        LeadFactory(campaign=campaign, email="known@acme-gmbh.de", title="Developer")
        lines = import_leads(str(path), "--campaign", str(campaign.pk))
        stored = sorted(Lead.objects.filter(campaign=campaign).values_list("email", "title"))
        rejected = list(HarvestRejection.objects.filter(campaign=campaign).values_list("line", "reason"))
        outcomes.append((lines[0].partition("”: ")[2], stored, rejected))
    return outcomes
