"""Harvest: every record a source gives ends as a created, updated, duplicate, suppressed or rejected lead."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from cam.jobs.runner import run_job
from cam.models import HarvestRejection, JobExecution, Lead, LeadSource
from cam.pipeline.harvest import harvest_campaign, harvest_source
from cam.pipeline.intake import leads_intake
from cam.sources import SourceError, SourceRecord
from cam.sources.base import LeadSourceBackend
from tests.factories import CampaignFactory, LeadFactory, LeadSourceFactory, SuppressionFactory
from tests.servers.http import Reply

pytestmark = pytest.mark.django_db

HEADER = "email,first_name,last_name,company,title,company_size,website,timezone,crm_id\n"


def csv_source(tmp_path, campaign, rows: str, *, name="trade-fair.csv", header=HEADER, enabled=True,
               **config) -> LeadSource:
    path = tmp_path / name
    path.write_text(header + rows, encoding="utf-8")
    return LeadSourceFactory(campaign=campaign, name=name, kind=LeadSource.Kind.CSV, enabled=enabled,
                             config={"path": str(path), **config})


def counts(**nonzero: int) -> dict[str, int]:
    return {"read": 0, "created": 0, "updated": 0, "duplicate": 0, "suppressed": 0, "rejected": 0, **nonzero}


def lead_emails(campaign) -> list[str]:
    return sorted(Lead.objects.filter(campaign=campaign).values_list("email", flat=True))


def map_as_is(data):
    return LeadSourceBackend({}).map_record(data)


def test_it_creates_leads_with_their_profile_and_provenance(tmp_path):
    campaign = CampaignFactory()
    source = csv_source(tmp_path, campaign, "Anna@ACME-GmbH.de,Anna,Schmidt,ACME GmbH,CTO,51-200,acme-gmbh.de,"
                                            "europe/berlin,C-1\ninfo@gmail.com,,,,,,,,C-2\n")
    before = timezone.now()

    result = harvest_source(source=source)

    assert result == counts(read=2, created=2)
    anna = Lead.objects.get(campaign=campaign, email="anna@acme-gmbh.de")
    assert (anna.first_name, anna.last_name, anna.company, anna.title, anna.company_size, anna.website,
            anna.timezone) == ("Anna", "Schmidt", "ACME GmbH", "CTO", 125, "https://acme-gmbh.de", "Europe/Berlin")
    assert (anna.status, anna.score, anna.is_role_account, anna.is_free_mail) == (Lead.Status.NEW, None, False, False)
    assert anna.source == source
    assert anna.harvested_at >= before
    assert anna.raw_data == {"email": "Anna@ACME-GmbH.de", "first_name": "Anna", "last_name": "Schmidt",
                             "company": "ACME GmbH", "title": "CTO", "company_size": "51-200",
                             "website": "acme-gmbh.de", "timezone": "europe/berlin", "crm_id": "C-1"}
    info = Lead.objects.get(campaign=campaign, email="info@gmail.com")
    assert (info.is_role_account, info.is_free_mail, info.company_size) == (True, True, None)
    source.refresh_from_db()
    assert (source.last_harvest_counts, source.last_error) == (result, "")
    assert source.last_harvest_at >= before


def test_it_updates_an_existing_lead_with_new_profile_data(tmp_path):
    campaign = CampaignFactory()
    old_source = LeadSourceFactory(campaign=campaign)
    LeadFactory(campaign=campaign, email="anna@acme-gmbh.de", first_name="Anna", last_name="Schmidt",
                company="ACME", title="Developer", company_size=None, source=old_source, raw_data={"old": True})
    source = csv_source(tmp_path, campaign, "anna@acme-gmbh.de,,,ACME,CTO,250,,,C-1\n")

    result = harvest_source(source=source)

    assert result == counts(read=1, updated=1)
    lead = Lead.objects.get(campaign=campaign)
    # New values replace old ones; a value the record leaves empty does not wipe what the lead has.
    assert (lead.first_name, lead.last_name, lead.company, lead.title, lead.company_size) == (
        "Anna", "Schmidt", "ACME", "CTO", 250)
    assert lead.source == source
    assert lead.raw_data["crm_id"] == "C-1"


def test_it_counts_an_address_repeated_in_the_same_file_as_a_duplicate(tmp_path):
    campaign = CampaignFactory()
    source = csv_source(tmp_path, campaign, "anna@acme-gmbh.de,Anna,,,,,,,\n ANNA@acme-gmbh.de ,Annette,,,,,,,\n"
                                            "ben@acme-gmbh.de,Ben,,,,,,,\n")

    assert harvest_source(source=source) == counts(read=3, created=2, duplicate=1)
    assert lead_emails(campaign) == ["anna@acme-gmbh.de", "ben@acme-gmbh.de"]
    assert Lead.objects.get(email="anna@acme-gmbh.de").first_name == "Anna"  # the first one wins


def test_it_dedupes_across_two_harvests_of_the_same_file(tmp_path):
    campaign = CampaignFactory()
    source = csv_source(tmp_path, campaign, "anna@acme-gmbh.de,Anna,Schmidt,ACME,CTO,1200,acme-gmbh.de,UTC,C-1\n"
                                            "ben@acme-gmbh.de,Ben,,,,,,,C-2\n")

    first = harvest_source(source=source)
    second = harvest_source(source=source)

    assert first == counts(read=2, created=2)
    assert second == counts(read=2, duplicate=2)
    assert lead_emails(campaign) == ["anna@acme-gmbh.de", "ben@acme-gmbh.de"]


def test_it_creates_a_lead_whose_address_is_already_a_lead_of_another_campaign(tmp_path):
    LeadFactory(email="anna@acme-gmbh.de")
    campaign = CampaignFactory()

    assert harvest_source(source=csv_source(tmp_path, campaign, "anna@acme-gmbh.de,,,,,,,,\n")) == counts(
        read=1, created=1)
    assert Lead.objects.filter(email="anna@acme-gmbh.de").count() == 2


def test_it_leaves_out_suppressed_addresses_and_domains(tmp_path):
    SuppressionFactory(email="anna@acme-gmbh.de")
    SuppressionFactory(email="", domain="blocked-corp.de")
    campaign = CampaignFactory()
    source = csv_source(tmp_path, campaign, "Anna@acme-gmbh.de,,,,,,,,\nceo@blocked-corp.de,,,,,,,,\n"
                                            "ben@acme-gmbh.de,,,,,,,,\n")

    assert harvest_source(source=source) == counts(read=3, created=1, suppressed=2)
    assert lead_emails(campaign) == ["ben@acme-gmbh.de"]


def test_it_keeps_rejected_records_with_line_reason_and_raw_data(tmp_path):
    campaign = CampaignFactory()
    source = csv_source(tmp_path, campaign, "anna@acme-gmbh.de,Anna,,,,,,,\n"
                                            "not-an-address,Ben,,,,,,,C-2\n"
                                            "cem@acme-gmbh.de,Cem,,,,12.5,,,C-3\n"
                                            "dora@acme-gmbh.de,Dora,,,,,,Mars/Olympus,C-4\n"
                                            "eva@acme-gmbh.de,Eva,Smith, Jones,,,,,,C-5\n")

    result = harvest_source(source=source)

    assert result == counts(read=5, created=1, rejected=4)
    rejections = HarvestRejection.objects.filter(campaign=campaign).order_by("line")
    assert [(r.line, r.email, r.reason) for r in rejections] == [
        (3, "not-an-address", "invalid email 'not-an-address': An email address must have an @-sign."),
        (4, "cem@acme-gmbh.de", "company_size '12.5' is not a whole number"),
        (5, "dora@acme-gmbh.de", "timezone 'Mars/Olympus' is not a known time zone"),
        (6, "eva@acme-gmbh.de", "has 10 values but the header has 9 columns (an unquoted comma?)"),
    ]
    assert rejections[0].raw_data == {"email": "not-an-address", "first_name": "Ben", "last_name": "",
                                      "company": "", "title": "", "company_size": "", "website": "",
                                      "timezone": "", "crm_id": "C-2"}
    assert {r.source for r in rejections} == {source}
    assert lead_emails(campaign) == ["anna@acme-gmbh.de"]


def test_it_keeps_the_address_of_a_rejected_record_read_through_a_column_mapping(tmp_path):
    campaign = CampaignFactory()
    source = csv_source(tmp_path, campaign, "anna(at)acme-gmbh.de,Anna\n", header="E-Mail,Vorname\n",
                        columns={"email": "E-Mail", "first_name": "Vorname"})

    assert harvest_source(source=source) == counts(read=1, rejected=1)
    rejection = HarvestRejection.objects.get(campaign=campaign)
    assert (rejection.line, rejection.email, rejection.raw_data) == (
        2, "anna(at)acme-gmbh.de", {"e_mail": "anna(at)acme-gmbh.de", "vorname": "Anna"})


def test_it_creates_no_more_than_max_leads_and_counts_only_what_it_read(tmp_path):
    campaign = CampaignFactory()
    LeadFactory(campaign=campaign, email="anna@acme-gmbh.de", title="CTO", company="ACME")
    records = [SourceRecord(line=n + 2, data={"email": email}) for n, email in enumerate(
        ["anna@acme-gmbh.de", "ben@acme-gmbh.de", "cem@acme-gmbh.de", "dora@acme-gmbh.de", "eva@acme-gmbh.de"])]

    result = leads_intake(campaign=campaign, records=records, map_record=map_as_is, max_leads=2).counts

    assert result == counts(read=3, created=2, duplicate=1)
    assert lead_emails(campaign) == ["anna@acme-gmbh.de", "ben@acme-gmbh.de", "cem@acme-gmbh.de"]


def test_it_stops_reading_the_source_once_max_leads_are_created():
    campaign = CampaignFactory()
    taken = []

    def records():
        for n in range(5000):
            taken.append(n)
            yield SourceRecord(line=n + 2, data={"email": f"lead{n}@acme-gmbh.de"})

    result = leads_intake(campaign=campaign, records=records(), map_record=map_as_is, max_leads=1500).counts

    assert (result["created"], result["read"]) == (1500, 1500)
    assert len(taken) == 2000  # two batches, not the whole source
    assert Lead.objects.filter(campaign=campaign).count() == 1500


def test_it_harvests_an_http_source_with_nested_fields(http_server, monkeypatch):
    monkeypatch.setenv("CAM_SECRET_CRM_TEST", "s3cret")
    http_server.reply("/api/contacts", Reply(200, {"data": [
        {"work_email": "anna@acme-gmbh.de", "title": "CTO", "organization": {"name": "ACME GmbH", "size": "51-200"}},
        {"work_email": "ben@acme-gmbh.de", "organization": {"name": "ACME GmbH", "size": "many"}},
    ]}))
    campaign = CampaignFactory()
    source = LeadSourceFactory(campaign=campaign, kind=LeadSource.Kind.HTTP_JSON, config={
        "url": http_server.url("/api/contacts"), "records_path": "data", "auth_env": "CAM_SECRET_CRM_TEST",
        "columns": {"email": "work_email", "company": "organization.name", "company_size": "organization.size"}})

    assert harvest_source(source=source) == counts(read=2, created=1, rejected=1)
    lead = Lead.objects.get(campaign=campaign)
    assert (lead.email, lead.title, lead.company, lead.company_size) == ("anna@acme-gmbh.de", "CTO", "ACME GmbH", 125)
    assert lead.raw_data["organization"] == {"name": "ACME GmbH", "size": "51-200"}
    rejection = HarvestRejection.objects.get(campaign=campaign)
    assert (rejection.line, rejection.email, rejection.reason) == (
        2, "ben@acme-gmbh.de", "company_size 'many' is not a whole number")
    assert http_server.requests[0].headers["authorization"] == "Bearer s3cret"


def test_it_records_a_failing_source_on_it_and_raises(tmp_path):
    source = LeadSourceFactory(name="Fair", config={"path": str(tmp_path / "gone.csv")})

    with pytest.raises(SourceError) as caught:
        harvest_source(source=source)

    message = f"Cannot open {tmp_path / 'gone.csv'}: No such file or directory."
    assert str(caught.value) == f"Fair: {message}"
    source.refresh_from_db()
    assert (source.last_error, source.last_harvest_at is not None) == (message, True)


def test_it_records_a_misconfigured_source_on_it(tmp_path):
    source = LeadSourceFactory(name="Fair", config={"path": "x.csv", "columns": {"mail": "E-Mail"}})

    with pytest.raises(SourceError, match=r"^Fair: Unknown lead field"):
        harvest_source(source=source)

    source.refresh_from_db()
    assert source.last_error.startswith("Unknown lead field(s): mail.")


def test_it_harvests_the_other_sources_of_a_campaign_when_one_fails(tmp_path, http_server):
    http_server.reply("/contacts", Reply(401, {"error": "bad token"}))
    campaign = CampaignFactory()
    failing = LeadSourceFactory(campaign=campaign, name="CRM", kind=LeadSource.Kind.HTTP_JSON,
                                config={"url": http_server.url("/contacts")})
    working = csv_source(tmp_path, campaign, "anna@acme-gmbh.de,,,,,,,,\nnot-an-address,,,,,,,,\n")
    csv_source(tmp_path, campaign, "ben@acme-gmbh.de,,,,,,,,\n", name="disabled.csv", enabled=False)

    result = harvest_campaign(campaign=campaign)

    problem = f'{http_server.url("/contacts")} refused the request (HTTP 401 Unauthorized).'
    assert result == {**counts(read=2, created=1, rejected=1), "sources": 2, "sources_failed": 1,
                      "errors": [f"CRM: {problem}"]}
    failing.refresh_from_db()
    working.refresh_from_db()
    assert (failing.last_error, working.last_error) == (problem, "")
    assert working.last_harvest_counts == counts(read=2, created=1, rejected=1)
    assert lead_emails(campaign) == ["anna@acme-gmbh.de"]


def test_it_shares_max_leads_across_the_sources_of_a_campaign(tmp_path):
    campaign = CampaignFactory()
    csv_source(tmp_path, campaign, "a1@acme-gmbh.de,,,,,,,,\na2@acme-gmbh.de,,,,,,,,\n", name="a.csv")
    csv_source(tmp_path, campaign, "b1@acme-gmbh.de,,,,,,,,\nb2@acme-gmbh.de,,,,,,,,\n", name="b.csv")
    csv_source(tmp_path, campaign, "c1@acme-gmbh.de,,,,,,,,\n", name="c.csv")

    result = harvest_campaign(campaign=campaign, max_leads=3)

    assert result == {**counts(read=3, created=3), "sources": 2, "sources_failed": 0}
    assert lead_emails(campaign) == ["a1@acme-gmbh.de", "a2@acme-gmbh.de", "b1@acme-gmbh.de"]


def queries_to_harvest(count: int) -> int:
    """Queries to harvest ``count`` records: one of each outcome, the rest new leads."""
    campaign = CampaignFactory()
    LeadFactory(campaign=campaign, email="known@acme-gmbh.de", title="Developer")
    SuppressionFactory(email=f"blocked{count}@acme-gmbh.de")
    records = [
        SourceRecord(line=2, data={"email": "known@acme-gmbh.de", "title": "CTO"}),
        SourceRecord(line=3, data={"email": f"blocked{count}@acme-gmbh.de"}),
        SourceRecord(line=4, data={"email": "not-an-address"}),
        SourceRecord(line=5, data={"email": "known@acme-gmbh.de"}),
        *(SourceRecord(line=n + 6, data={"email": f"lead{n}@acme-gmbh.de", "company_size": "10"})
          for n in range(count - 4)),
    ]
    with CaptureQueriesContext(connection) as harvesting:
        result = leads_intake(campaign=campaign, records=records, map_record=map_as_is).counts
    assert result == counts(read=count, created=count - 4, updated=1, duplicate=1, suppressed=1, rejected=1)
    return len(harvesting)


def test_it_harvests_in_the_same_number_of_queries_for_10_and_1000_records():
    few = queries_to_harvest(10)

    assert few == queries_to_harvest(1000)
    assert few <= 10


def test_it_runs_as_a_job_capped_by_max_leads(tmp_path):
    campaign = CampaignFactory()
    csv_source(tmp_path, campaign, "".join(f"lead{n}@acme-gmbh.de,,,,,,,,\n" for n in range(5)))

    result = run_job("harvest", campaign=campaign, params={"max_leads": 2},
                     scheduled_for=datetime(2026, 3, 2, 2, tzinfo=UTC))

    execution = JobExecution.objects.get(execution_id=result.execution_id)
    assert (execution.status, execution.params) == (JobExecution.Status.COMPLETED, {"max_leads": 2})
    assert execution.counts == {"campaigns": 1, **counts(read=2, created=2), "sources": 1, "sources_failed": 0}
    assert Lead.objects.filter(campaign=campaign).count() == 2


def test_it_completes_the_job_and_lists_the_errors_of_a_failing_source(tmp_path):
    campaign = CampaignFactory()
    LeadSourceFactory(campaign=campaign, name="Gone", config={"path": str(tmp_path / "gone.csv")})
    csv_source(tmp_path, campaign, "anna@acme-gmbh.de,,,,,,,,\n")

    result = run_job("harvest", campaign=campaign, scheduled_for=datetime(2026, 3, 2, 2, 5, tzinfo=UTC))

    assert result.status == JobExecution.Status.COMPLETED
    assert result.counts["errors"] == [f"Gone: Cannot open {tmp_path / 'gone.csv'}: No such file or directory."]
    assert (result.counts["created"], result.counts["sources_failed"]) == (1, 1)


# --- sources CAM must not reach, and error bodies (cam.egress) ----------------------------------------------


def test_it_records_on_the_source_that_a_loopback_url_is_refused(no_egress_allowed, http_server):
    http_server.reply("/contacts", Reply(200, [{"email": "anna@acme-gmbh.de"}]))
    source = LeadSourceFactory(kind=LeadSource.Kind.HTTP_JSON, name="CRM", config={"url": http_server.url("/contacts")})

    with pytest.raises(SourceError):
        harvest_source(source=source)

    source.refresh_from_db()
    assert source.last_error == (f'{http_server.url("/contacts")}: refused: 127.0.0.1 is a loopback address; '
                                 f'add 127.0.0.1 to AICMO_CAM_EGRESS_ALLOW if this internal destination is deliberate.')
    assert http_server.requests == []
    assert not Lead.objects.exists()


def test_it_records_on_the_source_that_its_host_resolves_to_a_private_address(no_egress_allowed, dns):
    dns["crm.example.test"] = ["192.168.0.20"]
    source = LeadSourceFactory(kind=LeadSource.Kind.HTTP_JSON, name="CRM",
                               config={"url": "http://crm.example.test/contacts", "retries": 0})

    result = harvest_campaign(campaign=source.campaign)

    problem = ("http://crm.example.test/contacts: refused: crm.example.test resolves to 192.168.0.20, a private "
               "address; add crm.example.test to AICMO_CAM_EGRESS_ALLOW if this internal destination is deliberate.")
    assert result["errors"] == [f"CRM: {problem}"]
    source.refresh_from_db()
    assert source.last_error == problem


def test_an_error_body_is_kept_nowhere_a_read_only_key_can_see(http_server):
    from tests.api.conftest import client_with_key

    secret = "sk_live_51HqLyjWDarjtT1zdp7dc"
    http_server.reply("/contacts", Reply(500, {"error": f"upstream said: token={secret}"}))
    campaign = CampaignFactory()
    source = LeadSourceFactory(campaign=campaign, kind=LeadSource.Kind.HTTP_JSON, name="CRM",
                               config={"url": http_server.url("/contacts"), "retries": 0})

    result = run_job("harvest", campaign=campaign, scheduled_for=datetime(2026, 3, 2, 2, 10, tzinfo=UTC))

    problem = f'{http_server.url("/contacts")} failed after 1 attempts (last: HTTP 500 Internal Server Error).'
    assert result.counts["errors"] == [f"CRM: {problem}"]
    source.refresh_from_db()
    assert source.last_error == problem
    execution = JobExecution.objects.get(execution_id=result.execution_id)
    read_api = client_with_key(read_only=True)
    seen = [source.last_error, str(execution.counts), execution.error, execution.traceback,
            read_api.get("/api/cam/jobs/executions/").content.decode(),
            read_api.get("/api/cam/metrics/").content.decode()]
    assert not [text for text in seen if secret in text]
