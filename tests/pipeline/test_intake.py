"""The lead intake itself: duplicates across the whole input, what the report keeps, and its queries."""

from __future__ import annotations

import gc

import pytest
from django.db import connection

from cam.models import HarvestRejection, Lead
from cam.pipeline import intake
from cam.pipeline.first_seen import FirstSeen
from cam.pipeline.intake import IntakeProblem, leads_intake
from cam.sources import SourceRecord
from tests.factories import CampaignFactory, LeadFactory, SuppressionFactory

pytestmark = pytest.mark.django_db


def records(*rows: dict, first_line: int = 2) -> list[SourceRecord]:
    return [SourceRecord(line=line, data=row) for line, row in enumerate(rows, start=first_line)]


def test_a_repeat_batches_later_is_a_duplicate_of_the_first_line_and_changes_nothing(monkeypatch):
    monkeypatch.setattr(intake, "BATCH_SIZE", 2)
    campaign = CampaignFactory()
    rows = [{"email": "anna@acme-gmbh.de", "title": "CTO"},
            *({"email": f"lead{n}@acme-gmbh.de"} for n in range(5)),
            {"email": " Anna@ACME-gmbh.de", "title": "Intern"}]

    report = leads_intake(campaign=campaign, records=records(*rows), problems_kept=10)

    assert report.counts == {"read": 7, "created": 6, "updated": 0, "duplicate": 1, "suppressed": 0, "rejected": 0}
    assert report.problems == [IntakeProblem(8, "duplicate", "duplicate: anna@acme-gmbh.de is already on line 2",
                                             "email")]
    assert Lead.objects.get(campaign=campaign, email="anna@acme-gmbh.de").title == "CTO"


def test_the_api_numbering_names_the_earlier_item():
    campaign = CampaignFactory()

    report = leads_intake(campaign=campaign, records=records({"email": "a@acme-gmbh.de"}, {"email": "A@acme-gmbh.de"},
                                                             first_line=0),
                          numbering="item", problems_kept=None)

    assert [problem.reason for problem in report.problems] == [
        "duplicate: a@acme-gmbh.de is already item 0 of this request"]


def test_it_updates_only_profile_values_that_are_new_and_not_empty():
    campaign = CampaignFactory()
    lead = LeadFactory(campaign=campaign, email="anna@acme-gmbh.de", title="Developer", company="ACME",
                       status=Lead.Status.IN_SEQUENCE, current_step=3, score=80)

    report = leads_intake(campaign=campaign, records=records({"email": "anna@acme-gmbh.de", "title": "CTO",
                                                              "company": "", "status": "NEW"}), leads_kept=None)

    lead.refresh_from_db()
    assert (lead.title, lead.company, lead.status, lead.current_step, lead.score) == (
        "CTO", "ACME", Lead.Status.IN_SEQUENCE, 3, 80)
    assert lead.raw_data == {"email": "anna@acme-gmbh.de", "title": "CTO", "company": "", "status": "NEW"}
    assert report.leads == {2: ("updated", lead)}


def test_the_report_keeps_the_first_problems_of_each_kind_in_input_order():
    campaign = CampaignFactory()
    SuppressionFactory(email="", domain="blocked-gmbh.de")
    rows = [{"email": f"x{n}@blocked-gmbh.de"} for n in range(3)] + [{"email": f"bad{n}"} for n in range(3)]

    report = leads_intake(campaign=campaign, records=records(*rows), problems_kept=2)

    assert [(problem.line, problem.outcome) for problem in report.problems] == [
        (2, "suppressed"), (3, "suppressed"), (5, "rejected"), (6, "rejected")]
    assert (report.counts["suppressed"], report.counts["rejected"]) == (3, 3)
    assert HarvestRejection.objects.filter(campaign=campaign).count() == 3, "every rejection is stored"


@pytest.mark.parametrize("count", [1, 3])
def test_a_batch_costs_the_same_queries_whatever_its_size(django_assert_num_queries, count):
    campaign = CampaignFactory()
    LeadFactory(campaign=campaign, email="known@acme-gmbh.de", title="Developer")
    SuppressionFactory(email="gone@acme-gmbh.de")
    rows = [{"email": "known@acme-gmbh.de", "title": "CTO"}, {"email": "gone@acme-gmbh.de"}, {"email": "bad"},
            *({"email": f"lead{n}@acme-gmbh.de"} for n in range(count))]

    # The savepoint and its release, the suppressions, the existing leads, the insert, the update, the
    # rejections, and the read of the leads kept for the caller. On PostgreSQL the insert is the staging
    # table (made once per connection: "if not exists"), its COPY (not counted here) and the move across.
    with django_assert_num_queries(9 if connection.vendor == "postgresql" else 8):
        report = leads_intake(campaign=campaign, records=records(*rows), leads_kept=None)

    assert (report.counts["created"], report.counts["updated"], len(report.leads)) == (count, 1, count + 1)


def test_the_first_seen_table_remembers_every_address_as_it_grows():
    seen = FirstSeen()

    assert [seen.first_line(f"lead{n}@acme-gmbh.de", n + 2) for n in range(5000)] == [None] * 5000
    assert [seen.first_line(f"lead{n}@acme-gmbh.de", 9999) for n in (0, 1234, 4999)] == [2, 1236, 5001]
    assert len(seen) == 5000


def test_a_lead_stored_in_another_spelling_is_the_same_lead():
    campaign = CampaignFactory()
    # Stored before addresses were normalised: the domain in punycode.
    older = LeadFactory(campaign=campaign, email="anna@xn--exmple-cua.com", title="Developer")

    report = leads_intake(campaign=campaign, records=records({"email": "Anna@EXÄMPLE.com", "title": "CTO"},
                                                             {"email": "anna@xn--exmple-cua.com", "title": "CTO"}))

    assert (report.counts["created"], report.counts["updated"], report.counts["duplicate"]) == (0, 1, 1)
    assert list(Lead.objects.filter(campaign=campaign).values_list("pk", "title")) == [(older.pk, "CTO")]


def test_a_suppressed_domain_keeps_out_the_addresses_under_it():
    campaign = CampaignFactory()
    SuppressionFactory(email="", domain="exämple.com")

    report = leads_intake(campaign=campaign, records=records({"email": "anna@mail.xn--exmple-cua.com"},
                                                             {"email": "jonas@notexample.com"}), problems_kept=None)

    assert (report.counts["suppressed"], report.counts["created"]) == (1, 1)
    assert report.problems[0].reason == ("the domain exämple.com is on the suppression list, which covers "
                                         "mail.exämple.com")


@pytest.mark.parametrize("listed", [{"email": "üser@exämple.com"}, {"email": "üser@xn--exmple-cua.com"},
                                    {"email": "", "domain": "exämple.com"},
                                    {"email": "", "domain": "xn--exmple-cua.com"}])
def test_a_suppression_in_any_spelling_keeps_out_an_address_in_any_spelling(listed):
    # On PostgreSQL the lookup joins the staged batch: the other spellings are staged with the address.
    campaign = CampaignFactory()
    SuppressionFactory(**listed)

    report = leads_intake(campaign=campaign, records=records({"email": "Üser@EXÄMPLE.com"},
                                                             {"email": "üser@mail.xn--exmple-cua.com"},
                                                             {"email": "other@example.com"}), problems_kept=None)

    suppressed = [problem.line for problem in report.problems if problem.outcome == "suppressed"]
    assert suppressed == ([2] if listed["email"] else [2, 3])
    assert Lead.objects.filter(campaign=campaign).count() == 3 - len(suppressed)


def test_a_long_import_puts_the_collectors_thresholds_back():
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), intake._fewer_collections():
        assert gc.get_threshold() == (intake.FEWER_COLLECTIONS_FROM, *before[1:])
        raise RuntimeError("the file could not be read on")

    assert gc.get_threshold() == before


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("overlap", [False, True])
def test_a_source_that_fails_midway_leaves_every_record_read_before_written(monkeypatch, overlap):
    from cam.sources import SourceError

    monkeypatch.setattr(intake, "BATCH_SIZE", 2)
    campaign = CampaignFactory()
    LeadFactory(campaign=campaign, email="known@acme-gmbh.de", title="Developer")

    def failing():
        # Batches of 2, 4, then 8 (they grow): the source fails in the middle of the third.
        yield from records(*({"email": f"lead{n}@acme-gmbh.de"} for n in range(7)),
                           {"email": "known@acme-gmbh.de", "title": "CTO"})
        raise SourceError("the file cannot be read past line 9")

    with pytest.raises(SourceError):
        leads_intake(campaign=campaign, records=failing(), overlap=overlap, problems_kept=None, leads_kept=None)

    assert sorted(Lead.objects.filter(campaign=campaign).values_list("email", flat=True)) == sorted(
        ["known@acme-gmbh.de", *(f"lead{n}@acme-gmbh.de" for n in range(7))])
    assert Lead.objects.get(campaign=campaign, email="known@acme-gmbh.de").title == "CTO"
    assert not connection.in_atomic_block


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("overlap", [False, True])
def test_a_record_left_out_of_one_batch_is_never_moved_by_the_next_outside_a_transaction(monkeypatch, overlap):
    """Outside a transaction each batch's commit empties the staging table (on PostgreSQL), instead of the move
    deleting its rows: what a batch left out (a suppressed address) must be gone before the next batch."""
    monkeypatch.setattr(intake, "BATCH_SIZE", 2)
    campaign = CampaignFactory()
    SuppressionFactory(email="stop@acme-gmbh.de")
    rows = [{"email": "stop@acme-gmbh.de"}, *({"email": f"lead{n}@acme-gmbh.de"} for n in range(7))]

    report = leads_intake(campaign=campaign, records=records(*rows), overlap=overlap)

    assert (report.counts["created"], report.counts["suppressed"]) == (7, 1)
    assert not Lead.objects.filter(email="stop@acme-gmbh.de").exists()
