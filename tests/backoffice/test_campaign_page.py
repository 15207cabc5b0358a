"""A campaign's page: its tabs, the Diagnose and Performance panels, the step previews, and the Pause,
Resume and Activate buttons (through the same services as the list's actions, for who may change campaigns)."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from cam.models import Campaign, InboundEmail, Lead, OutboundEmail
from tests import factories

pytestmark = pytest.mark.django_db
TABS = ["Settings", "Sequence", "Lead sources", "Rules", "Performance", "Diagnose"]


def page_url(campaign: Campaign) -> str:
    return reverse("admin:cam_campaign_change", args=[campaign.pk])


def button_url(campaign: Campaign, name: str) -> str:
    return reverse(f"admin:cam_campaign_detail_{name}", args=[campaign.pk])


def tab_bar(html: str) -> list[str]:
    """The titles of the theme's tab bar (#tabs-items), in order."""
    import re

    nav = html.split('id="tabs-items"', 1)[1].split("</nav>", 1)[0]
    return [" ".join(title.split()) for title in re.findall(r"<a [^>]*>\s*([^<]+?)\s*</a>", nav)]


def staff_with(client, *codenames):
    user = factories.UserFactory(is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="cam", codename__in=codenames))
    client.force_login(user)
    client.user = user
    return client


def demo_campaign(**fields) -> Campaign:
    values = {"send_days": [1, 2, 3, 4, 5, 6, 7], "send_start_hour": 0, "send_end_hour": 24,
              "timezone": "Europe/Berlin", **fields}
    campaign = factories.CampaignFactory(**values)
    factories.SequenceStepFactory(campaign=campaign, position=1, subject_template="Hello {{ first_name }}",
                                  body_template="Hi {{ first_name }}, a question about {{ company }}.")
    factories.SequenceStepFactory(campaign=campaign, position=2, subject_template="", body_template="Following up")
    campaign.mailboxes.set([factories.MailboxFactory(daily_cap=50)])
    return campaign


# -- the tabs -----------------------------------------------------------------------------------------------------

def test_an_existing_campaign_opens_in_tabs_with_its_settings_in_sub_tabs(admin_client):
    campaign = demo_campaign()

    html = admin_client.get(page_url(campaign)).content.decode()

    assert tab_bar(html) == TABS
    for sub_tab in ("Ideal customer", "Send window and cap", "Mailboxes", "Replies", "Guard rails", "Record"):
        assert f"activeFieldsetTab = '{sub_tab.lower().replace(' ', '-')}'" in html
    # Each inline shows in its own tab, and the panels in theirs.
    for group, tab in (("steps-group", "steps"), ("sources-group", "sources"), ("rules-group", "rules")):
        assert f'id="{group}"' in html and f"activeTab == '{tab}'" in html
    assert 'id="performance-group"' in html and 'id="diagnose-group"' in html


def test_a_new_campaign_has_no_rules_performance_or_diagnose_yet(admin_client):
    html = admin_client.get(reverse("admin:cam_campaign_add")).content.decode()

    assert tab_bar(html) == ["Settings", "Sequence", "Lead sources"]
    assert 'id="diagnose-group"' not in html and 'id="performance-group"' not in html


def test_the_campaigns_history_and_deletion_pages_have_no_tab_bar(admin_client):
    campaign = demo_campaign()

    for name in ("history", "delete"):
        html = admin_client.get(reverse(f"admin:cam_campaign_{name}", args=[campaign.pk])).content.decode()
        assert 'id="tabs-items"' not in html


def test_staff_who_may_not_view_leads_get_no_diagnose_tab_and_no_lead_in_the_page(client):
    campaign = demo_campaign()
    lead = factories.LeadFactory(campaign=campaign, status=Lead.Status.IN_SEQUENCE, email="anna@brightlane.test",
                                 blocked_reason=Lead.BlockedReason.MAILBOX_CAP, next_send_at=timezone.now())
    editor = staff_with(client, "view_campaign", "change_campaign", "view_sequencestep", "change_sequencestep")

    html = editor.get(page_url(campaign)).content.decode()

    assert tab_bar(html) == ["Settings", "Sequence", "Lead sources", "Rules", "Performance"]
    assert 'id="diagnose-group"' not in html and lead.email not in html


def test_the_rules_table_shows_each_action_by_its_name(admin_client):
    campaign = demo_campaign()
    factories.CampaignRuleFactory(campaign=campaign, action="DEGRADE")

    html = admin_client.get(page_url(campaign)).content.decode()

    assert '<option value="DEGRADE" selected>Mark degraded</option>' in html


# -- Diagnose ------------------------------------------------------------------------------------------------------

def held(campaign: Campaign, reason: str, count: int) -> list[Lead]:
    now = timezone.now()
    return [factories.LeadFactory(campaign=campaign, status=Lead.Status.IN_SEQUENCE, blocked_reason=reason,
                                  next_send_at=now - timedelta(minutes=index + 1)) for index in range(count)]


def test_diagnose_lists_each_reason_with_its_count_an_example_and_what_to_do(admin_client):
    campaign = demo_campaign()
    capped = held(campaign, Lead.BlockedReason.MAILBOX_CAP, 3)
    (suppressed,) = held(campaign, Lead.BlockedReason.SUPPRESSED, 1)
    factories.SuppressionFactory(email=suppressed.email)

    response = admin_client.get(page_url(campaign))
    html = response.content.decode()

    diagnosis = response.context["diagnosis"]
    assert [(row.reason, row.count) for row in diagnosis.held_back] == [("mailbox_cap", 3), ("suppressed", 1)]
    panel = html.split('id="cam-held-back"', 1)[1].split("</table>", 1)[0]
    assert "Mailbox daily cap reached" in panel and "Address or domain suppressed" in panel
    assert reverse("admin:cam_lead_change", args=[capped[-1].pk]) in panel  # due longest: the example
    assert "blocked_reason__exact=mailbox_cap" in panel
    assert f"{suppressed.email} is on the suppression list, so it is never mailed." in panel
    assert 'id="cam-held-back-total">4<' in html


def test_diagnose_says_when_the_next_email_goes_out(admin_client):
    campaign = demo_campaign()
    factories.LeadFactory(campaign=campaign, status=Lead.Status.IN_SEQUENCE,
                          next_send_at=timezone.now() - timedelta(minutes=1))

    html = admin_client.get(page_url(campaign)).content.decode()

    assert 'id="cam-next-send">Now<' in html
    assert 'id="cam-next-send-why">A lead is due now. The next worker cycle sends it.<' in html


def test_diagnose_of_a_paused_campaign_says_nothing_goes_out(admin_client):
    campaign = demo_campaign(status=Campaign.Status.PAUSED, status_reason="Paused by staff:ben")
    held(campaign, Lead.BlockedReason.CAMPAIGN_PAUSED, 2)

    html = admin_client.get(page_url(campaign)).content.decode()

    assert "Nothing goes out while the campaign is paused." in html
    assert "Paused by staff:ben. Resume it with the Resume button." in html


# -- Performance ---------------------------------------------------------------------------------------------------

def test_performance_shows_each_steps_sends_replies_positives_and_bounces(admin_client):
    campaign = demo_campaign()
    first = campaign.steps.get(position=1)
    emails = [factories.OutboundEmailFactory(lead=factories.LeadFactory(campaign=campaign), step=first,
                                             status=OutboundEmail.Status.SENT, sent_at=timezone.now())
              for _ in range(4)]
    for email, category in zip(emails, [InboundEmail.Category.POSITIVE, InboundEmail.Category.NEGATIVE,
                                        InboundEmail.Category.BOUNCE_HARD], strict=False):
        factories.InboundEmailFactory(mailbox=email.mailbox, outbound_email=email, lead=email.lead, category=category)

    response = admin_client.get(page_url(campaign))

    figures = [(row.position, row.sent, row.replies, row.positive, row.bounced)
               for row in response.context["step_figures"]]
    assert figures == [(1, 4, 2, 1, 1), (2, 0, 0, 0, 0)]
    table = " ".join(response.content.decode().split('id="cam-step-performance"', 1)[1].split("</table>", 1)[0].split())
    assert ('<td class="num">4</td> <td class="num">2 <span class="cam-rate">50 %</span></td> '
            '<td class="num">1 <span class="cam-rate">25 %</span></td> '
            '<td class="num">1 <span class="cam-rate">25 %</span></td>') in table


# -- the step previews ----------------------------------------------------------------------------------------------

def test_each_step_is_previewed_for_the_lead_picked(admin_client):
    campaign = demo_campaign()
    anna = factories.LeadFactory(campaign=campaign, email="anna@brightlane.test", first_name="Anna",
                                 company="Brightlane")
    ben = factories.LeadFactory(campaign=campaign, email="ben@northwind.test", first_name="Ben", company="Northwind")

    first_lead = admin_client.get(page_url(campaign)).content.decode()
    picked = admin_client.get(f"{page_url(campaign)}?preview_lead={ben.pk}").content.decode()

    assert "<strong>Hello Anna</strong>" in first_lead and "Hi Anna, a question about Brightlane." in first_lead
    assert "<strong>Re: Hello Anna</strong>" in first_lead  # the follow-up, in the first email's thread
    assert "<strong>Hello Ben</strong>" in picked and "Hi Ben, a question about Northwind." in picked
    assert f'<option value="{ben.pk}" selected>' in picked and anna.email in picked
    # The step's own page, for the same lead, with the HTML part.
    step = campaign.steps.get(position=1)
    assert f'{reverse("admin:cam_sequencestep_preview", args=[step.pk])}?lead={ben.pk}' in picked


def test_a_step_that_does_not_render_shows_why_in_its_preview(admin_client):
    campaign = demo_campaign()
    campaign.steps.filter(position=2).update(body_template="{{ first_name|date:'%%' }} {% if %}")
    factories.LeadFactory(campaign=campaign)

    html = admin_client.get(page_url(campaign)).content.decode()

    assert 'class="cam-preview-problem">The body template does not compile' in html


# -- Pause, Resume, Activate ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "buttons"), [
    (Campaign.Status.DRAFT, {"activate"}),
    (Campaign.Status.ACTIVE, {"pause"}),
    (Campaign.Status.PAUSED, {"resume"}),
    (Campaign.Status.DEGRADED, {"pause", "resume"}),
    (Campaign.Status.COMPLETED, set()),
])
def test_only_the_buttons_that_apply_to_the_status_are_shown(admin_client, status, buttons):
    campaign = demo_campaign(status=status)

    html = admin_client.get(page_url(campaign)).content.decode()

    shown = {name for name in ("pause", "resume", "activate") if f'href="{button_url(campaign, name)}"' in html}
    assert shown == buttons


def test_a_button_asks_first_and_changes_nothing_when_only_opened(admin_client):
    campaign = demo_campaign(status=Campaign.Status.ACTIVE)

    dialog = admin_client.get(button_url(campaign, "pause"))

    assert dialog.status_code == 200 and "Pause this campaign?" in dialog.content.decode()
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.ACTIVE


@pytest.mark.parametrize(("status", "name", "after", "reason"), [
    (Campaign.Status.ACTIVE, "pause", Campaign.Status.PAUSED, "Paused by staff:{user}"),
    (Campaign.Status.PAUSED, "resume", Campaign.Status.ACTIVE, "Resumed by staff:{user}"),
    (Campaign.Status.DRAFT, "activate", Campaign.Status.ACTIVE, "Activated by staff:{user}"),
])
def test_a_confirmed_button_changes_the_status_through_the_service(admin_client, status, name, after, reason):
    campaign = demo_campaign(status=status)

    response = admin_client.post(button_url(campaign, name), {"_form_submitted": "on"}, follow=True)

    campaign.refresh_from_db()
    assert (campaign.status, campaign.status_reason) == (after, reason.format(user=admin_client.user.username))
    assert campaign.status_changed_at is not None
    assert response.redirect_chain == [(page_url(campaign), 302)]
    assert f"Campaign “{campaign.name}” {'paused' if name == 'pause' else name + 'd'}." in response.content.decode()


def test_a_button_confirmed_in_its_dialog_brings_the_page_back_on_the_same_tab(admin_client):
    campaign = demo_campaign(status=Campaign.Status.ACTIVE)

    response = admin_client.post(button_url(campaign, "pause"), {"_form_submitted": "on"},
                                 headers={"HX-Request": "true"})

    # htmx reloads the page it is on: the campaign's, with its address (and so its tab) as it was.
    assert response["HX-Refresh"] == "true"
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PAUSED


def test_a_button_on_a_page_left_open_leaves_a_campaign_in_another_status_as_it_is(admin_client):
    campaign = demo_campaign(status=Campaign.Status.DRAFT)

    response = admin_client.post(button_url(campaign, "pause"), {"_form_submitted": "on"}, follow=True)

    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT
    assert (f"Campaign “{campaign.name}” is draft: only active or degraded campaigns can be paused; it was left as "
            f"it is.") in response.content.decode()


def test_the_buttons_are_neither_shown_nor_obeyed_without_the_permission_to_change_campaigns(client):
    campaign = demo_campaign(status=Campaign.Status.ACTIVE)
    viewer = staff_with(client, "view_campaign", "view_lead")

    html = viewer.get(page_url(campaign)).content.decode()
    refused = viewer.post(button_url(campaign, "pause"), {"_form_submitted": "on"})

    assert button_url(campaign, "pause") not in html
    assert refused.status_code == 403
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.ACTIVE


# -- fixed queries ----------------------------------------------------------------------------------------------

def test_the_page_costs_the_same_queries_for_1_or_60_leads_and_2_or_6_steps(admin_client, django_assert_num_queries):
    small, large = demo_campaign(), demo_campaign()
    for position in range(3, 7):
        factories.SequenceStepFactory(campaign=large, position=position, subject_template="")
    for campaign, count in ((small, 1), (large, 60)):
        step = campaign.steps.get(position=1)
        for lead in held(campaign, Lead.BlockedReason.MAILBOX_CAP, count):
            factories.OutboundEmailFactory(lead=lead, step=step, status=OutboundEmail.Status.SENT,
                                           sent_at=timezone.now())
    admin_client.get(page_url(small))  # the session and the permissions, once

    # The session and user (2), the sidebar's count of replies waiting (1), the buttons (1), the campaign and its
    # form (2), the inlines (3), the step previews (5), Performance (2 per step, 5 for its cards and chart),
    # Diagnose (10).
    for campaign in (small, large):
        with django_assert_num_queries(31):
            assert admin_client.get(page_url(campaign)).status_code == 200


def test_the_performance_tab_shows_the_campaigns_own_cards_and_chart(admin_client):
    mine, other = demo_campaign(), demo_campaign()
    for campaign, count in ((mine, 3), (other, 5)):
        step = campaign.steps.get(position=1)
        for _ in range(count):
            factories.OutboundEmailFactory(campaign=campaign, lead=factories.LeadFactory(campaign=campaign),
                                           step=step, status=OutboundEmail.Status.SENT, sent_at=timezone.now())

    html = admin_client.get(page_url(mine)).content.decode()

    figures = html[html.index('id="cam-campaign-figures"'):]
    assert '<div class="cam-kpi-value" data-kpi="sent">3</div>' in figures  # its own sends, not the other's
    assert 'data-sent="3"' in figures and "<canvas" in figures


def test_diagnose_shows_a_warming_mailboxs_allowance_in_the_capacity_table(admin_client):
    campaign = demo_campaign()
    warming = factories.MailboxFactory(name="Fresh desk", daily_cap=50, warmup_enabled=True, warmup_start=10,
                                       warmup_increment=5, warmup_started_on=timezone.localdate())
    campaign.mailboxes.add(warming)

    html = admin_client.get(page_url(campaign)).content.decode()

    assert '<span class="cam-pace-note">Warming up: 10 today of 50; the full 50 from ' in html
