"""The lead page's Timeline tab through the test client: what it shows, and that it costs the same
queries for a lead with one message as for one with fifty."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import LeadFactory
from tests.test_timeline import a_lead_that_went_through_it_all, story

pytestmark = pytest.mark.django_db


def test_the_lead_page_has_a_timeline_tab_with_the_leads_story(admin_client):
    lead = a_lead_that_went_through_it_all()

    html = admin_client.get(f"/admin/cam/lead/{lead.pk}/change/").content.decode()

    assert 'id="timeline-group"' in html
    assert "Step 1 sent: Brightlane and hand-offs" in html
    assert "Interested → Unsubscribed" in html and "by maria" in html
    assert 'class="cam-score-breakdown"' in html  # the score as its table, in the timeline too
    assert f'href="/admin/cam/outboundemail/{lead.outbound_emails.get().pk}/change/"' in html


def test_a_lead_page_without_a_story_says_so(admin_client):
    lead = LeadFactory()
    html = admin_client.get(f"/admin/cam/lead/{lead.pk}/change/").content.decode()
    assert "Lead added" in html


def test_the_timeline_costs_the_same_queries_for_one_or_fifty_messages(admin_client):
    small, large = story(1), story(50)
    admin_client.get(f"/admin/cam/lead/{small.pk}/change/")  # the session and permissions, once
    counts = []
    for lead in (small, large):
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(f"/admin/cam/lead/{lead.pk}/change/").status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]
