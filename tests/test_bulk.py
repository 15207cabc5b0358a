from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cam.bulk import bulk_update_values
from cam.models import Lead
from tests import factories

pytestmark = pytest.mark.django_db


def test_it_writes_different_values_to_many_rows_in_one_statement():
    campaign = factories.CampaignFactory()
    leads = factories.LeadFactory.create_batch(300, campaign=campaign)
    other = factories.LeadFactory(campaign=campaign, score=7)
    when = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
    for n, lead in enumerate(leads):
        lead.score = n % 101
        lead.score_breakdown = {"total": {"score": n % 101}, "note": f"lead {n} — “quoted”"}
        lead.scored_at = when
        lead.company_size = None if n % 2 else n
        lead.source = None
    with CaptureQueriesContext(connection) as queries:
        assert bulk_update_values(leads, ["score", "score_breakdown", "scored_at", "company_size", "source"]) == 300
    assert len(queries) == 1
    stored = {lead.pk: lead for lead in Lead.objects.filter(pk__in=[lead.pk for lead in leads])}
    for n, lead in enumerate(leads):
        row = stored[lead.pk]
        assert (row.score, row.score_breakdown["note"], row.scored_at, row.company_size) == (
            n % 101, f"lead {n} — “quoted”", when, None if n % 2 else n)
    other.refresh_from_db()
    assert other.score == 7


def test_it_does_nothing_for_no_objects():
    assert bulk_update_values([], ["score"]) == 0
