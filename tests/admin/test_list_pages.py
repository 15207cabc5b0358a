"""The big lists: what their columns show, the campaigns' figures, their filters and how they count."""

import re

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from cam.admin.pagination import EstimatedCountPaginator
from cam.decisions import metrics_compute
from cam.models import InboundEmail, Lead, OutboundEmail
from tests import factories

pytestmark = pytest.mark.django_db

LEADS = reverse("admin:cam_lead_changelist")


def test_a_long_value_is_cut_on_one_line_and_shown_whole_on_hover(admin_client):
    campaign = factories.CampaignFactory(name="Enterprise Logistics Decision Makers DACH Q3 — Warehouse Automation")
    factories.LeadFactory(campaign=campaign, company="Internationale Speditions- und Lagerhaus-Gesellschaft mbH",
                          blocked_reason=Lead.BlockedReason.MAILBOX_GAP,
                          next_send_at=timezone.now().replace(month=3, day=4, hour=14, minute=5, second=9))

    html = admin_client.get(LEADS).content.decode()

    assert ('<span class="cam-cut cam-cut-s" title="Enterprise Logistics Decision Makers DACH Q3 — Warehouse '
            'Automation">Enterprise Logistics Decision Makers DACH Q3 — Warehouse Automation</span>') in html
    assert 'title="Internationale Speditions- und Lagerhaus-Gesellschaft mbH"' in html
    # The reason in a few words, the whole of it on hover.
    assert '<span class="cam-cut cam-cut-s" title="Mailbox minimum gap not yet passed">Mailbox gap</span>' in html
    # The next send this year: short, the exact moment on hover.
    year = timezone.localtime().year
    assert re.search(rf'<span class="cam-when" title="{year}-03-04 \d\d:05:09">Mar 4, \d\d:05</span>', html)


def test_a_moment_in_another_year_reads_as_its_date(admin_client):
    factories.LeadFactory(next_send_at=timezone.now().replace(year=2024, month=12, day=31, hour=12))

    html = admin_client.get(LEADS).content.decode()

    assert re.search(r'<span class="cam-when" title="2024-12-31 \d\d:\d\d:\d\d">Dec 31, 2024</span>', html)


def test_the_outbound_list_marks_an_email_held_back_with_its_error_on_hover(admin_client):
    factories.OutboundEmailFactory(status=OutboundEmail.Status.RETRY, last_error="451 4.7.1 Greylisted, try later")
    factories.OutboundEmailFactory(status=OutboundEmail.Status.SENT, sent_at=timezone.now())

    html = admin_client.get(reverse("admin:cam_outboundemail_changelist")).content.decode()

    assert '<span class="cam-note" title="451 4.7.1 Greylisted, try later">⚠</span>' in html
    assert html.count('class="cam-note"') == 1


def test_the_lists_leave_large_fields_out_of_the_page_query(admin_client):
    factories.InboundEmailFactory(raw_message=b"x" * 10_000)
    factories.OutboundEmailFactory(body_text="y" * 10_000)

    (reply,) = admin_client.get(reverse("admin:cam_inboundemail_changelist")).context["cl"].result_list
    (email,) = admin_client.get(reverse("admin:cam_outboundemail_changelist")).context["cl"].result_list

    assert "raw_message" in reply.get_deferred_fields()
    assert {"body_text", "body_html"} <= email.get_deferred_fields()


def sent_with_replies(campaign, sent: int, *categories: str) -> None:
    emails = [factories.OutboundEmailFactory(lead=factories.LeadFactory(campaign=campaign), status="SENT",
                                             sent_at=timezone.now()) for _ in range(sent)]
    for email, category in zip(emails, categories, strict=False):
        factories.InboundEmailFactory(mailbox=email.mailbox, outbound_email=email, lead=email.lead, category=category,
                                      processed_at=timezone.now())


def test_the_campaign_list_shows_each_campaigns_sends_replies_and_rates(admin_client):
    spring = factories.CampaignFactory(name="Spring")
    sent_with_replies(spring, 4, InboundEmail.Category.POSITIVE, InboundEmail.Category.NEGATIVE,
                      InboundEmail.Category.BOUNCE_HARD)
    autumn = factories.CampaignFactory(name="Autumn")
    sent_with_replies(autumn, 8, InboundEmail.Category.POSITIVE, InboundEmail.Category.OUT_OF_OFFICE)
    metrics_compute()
    factories.CampaignFactory(name="Not counted yet")

    page = admin_client.get(reverse("admin:cam_campaign_changelist"), {"o": "-8"})  # by positive rate, highest first

    rows = {campaign.name: campaign for campaign in page.context["cl"].result_list}
    assert [campaign.name for campaign in page.context["cl"].result_list][:2] == ["Spring", "Autumn"]
    cells = re.findall(r'<td class="field-(sent|replies|positive_rate|bounce_rate)[^>]*><span title="([^"]*)">([^<]*)<',
                       page.content.decode())
    figures = [(field, text) for field, _, text in cells]
    assert figures[:8] == [("sent", "4"), ("replies", "2"), ("positive_rate", "25 %"), ("bounce_rate", "25 %"),
                           ("sent", "8"), ("replies", "1"), ("positive_rate", "12.5 %"), ("bounce_rate", "0 %")]
    assert figures[8:] == [("sent", "—"), ("replies", "—"), ("positive_rate", "—"), ("bounce_rate", "—")]
    assert cells[0][1].startswith("All time, as counted ")
    assert cells[8][1].startswith("Not counted yet")
    assert rows["Spring"]._lead_count == 4


def test_an_unfiltered_list_says_how_many_rows_and_offers_no_show_all(admin_client):
    factories.LeadFactory.create_batch(3, status=Lead.Status.NEW)
    won = factories.LeadFactory(status=Lead.Status.WON)

    whole = admin_client.get(LEADS)
    filtered = admin_client.get(LEADS, {"status__exact": "WON"})

    assert whole.context["cl"].full_result_count == 4
    assert "Show all" not in whole.content.decode()
    assert [lead.pk for lead in filtered.context["cl"].result_list] == [won.pk]
    assert "1 result" in filtered.content.decode() and "Show all" in filtered.content.decode()


def test_the_filters_keep_their_parameters(admin_client):
    spring, autumn = factories.CampaignFactory(name="Spring"), factories.CampaignFactory(name="Autumn")
    mine = factories.LeadFactory(campaign=spring, status=Lead.Status.INTERESTED)
    factories.LeadFactory(campaign=autumn, status=Lead.Status.INTERESTED)
    factories.LeadFactory(campaign=spring, status=Lead.Status.NEW)

    page = admin_client.get(LEADS, {"campaign__id__exact": spring.pk, "status__exact": "INTERESTED"})

    assert [lead.pk for lead in page.context["cl"].result_list] == [mine.pk]


def created(days_ago: int) -> Lead:
    lead = factories.LeadFactory()
    Lead.objects.filter(pk=lead.pk).update(created_at=timezone.now() - timezone.timedelta(days=days_ago))
    return lead


def day(days_ago: int) -> str:
    return (timezone.localtime() - timezone.timedelta(days=days_ago)).strftime("%Y-%m-%d")


def test_the_date_range_filter_takes_days_with_or_without_a_time(admin_client):
    old, middle, new = created(40), created(20), created(0)

    since = admin_client.get(LEADS, {"created_at_from_0": day(30)})
    until = admin_client.get(LEADS, {"created_at_to_0": day(20)})  # the whole of that day
    between = admin_client.get(LEADS, {"created_at_from_0": day(30), "created_at_from_1": "00:00",
                                       "created_at_to_0": day(10), "created_at_to_1": "23:59"})

    assert [lead.pk for lead in since.context["cl"].result_list] == [new.pk, middle.pk]
    assert [lead.pk for lead in until.context["cl"].result_list] == [middle.pk, old.pk]
    assert [lead.pk for lead in between.context["cl"].result_list] == [middle.pk]


def test_the_job_filter_lists_the_known_jobs_without_reading_the_table(admin_client):
    factories.JobExecutionFactory(job="harvest")
    factories.JobExecutionFactory(job="score")

    page = admin_client.get(reverse("admin:cam_jobexecution_changelist"), {"job": "score"})

    assert [run.job for run in page.context["cl"].result_list] == ["score"]
    (job_filter,) = [spec for spec in page.context["cl"].filter_specs if getattr(spec, "parameter_name", "") == "job"]
    assert {"harvest", "score", "qualify"} <= {value for value, _ in job_filter.lookup_choices}


def analyse(table: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {table}")


def test_a_whole_large_table_shows_the_estimate_and_a_filtered_list_the_exact_count(admin_client, monkeypatch):
    # "Large" made small here: the estimate stands in from 20 rows.
    monkeypatch.setattr(EstimatedCountPaginator, "estimate_from", 20)
    factories.SuppressionFactory.create_batch(30)
    factories.SuppressionFactory(reason="HARD_BOUNCE")
    if connection.vendor == "postgresql":
        analyse("cam_suppression")
    suppressions = reverse("admin:cam_suppression_changelist")

    whole = admin_client.get(suppressions)
    filtered = admin_client.get(suppressions, {"reason__exact": "HARD_BOUNCE"})

    paginator = whole.context["cl"].paginator
    if connection.vendor == "postgresql":
        # PostgreSQL's own figure, from its statistics: no count of the rows.
        assert paginator.estimated and paginator.count == 31
        assert "about 31 suppressions" in " ".join(whole.content.decode().split())
    else:
        assert not paginator.estimated and paginator.count == 31
        assert "31 suppressions" in " ".join(whole.content.decode().split())
    assert not filtered.context["cl"].paginator.estimated
    assert filtered.context["cl"].result_count == 1


def test_a_table_below_the_threshold_or_never_analysed_is_counted_exactly(admin_client):
    factories.SuppressionFactory.create_batch(3)

    page = admin_client.get(reverse("admin:cam_suppression_changelist"))

    assert not page.context["cl"].paginator.estimated
    assert page.context["cl"].result_count == 3
