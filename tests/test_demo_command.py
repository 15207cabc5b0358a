from io import StringIO

import pytest
from django.core.management import call_command

from cam.demo import DEMO_CAMPAIGN_NAME
from cam.models import Campaign, Lead, Mailbox, SequenceStep

pytestmark = pytest.mark.django_db


def run_demo() -> str:
    out = StringIO()
    call_command("cam_demo", stdout=out)
    return out.getvalue()


def test_it_creates_a_campaign_that_can_act_at_once():
    output = run_demo()
    campaign = Campaign.objects.get(name=DEMO_CAMPAIGN_NAME)
    assert campaign.status == Campaign.Status.ACTIVE
    assert (campaign.send_days, campaign.send_start_hour, campaign.send_end_hour) == ([1, 2, 3, 4, 5, 6, 7], 0, 24)
    assert campaign.icp_industries and campaign.icp_title_keywords and campaign.icp_countries
    assert list(campaign.steps.values_list("position", flat=True)) == [1, 2, 3]
    mailbox = campaign.mailboxes.get()
    assert mailbox.provider == Mailbox.Provider.CONSOLE
    leads = Lead.objects.filter(campaign=campaign)
    assert 24 <= leads.count() <= 60
    assert all(lead.email_domain.endswith("example.com") for lead in leads)
    assert leads.filter(is_role_account=True).exists()
    assert f"{leads.count()} leads ({leads.count()} new)" in output


def test_it_is_safe_to_run_twice_and_keeps_staff_edits():
    run_demo()
    campaign = Campaign.objects.get(name=DEMO_CAMPAIGN_NAME)
    SequenceStep.objects.filter(campaign=campaign, position=1).update(subject_template="Edited by staff")
    counts = (Campaign.objects.count(), Mailbox.objects.count(), SequenceStep.objects.count(), Lead.objects.count())
    output = run_demo()
    assert (Campaign.objects.count(), Mailbox.objects.count(), SequenceStep.objects.count(),
            Lead.objects.count()) == counts
    assert SequenceStep.objects.get(campaign=campaign, position=1).subject_template == "Edited by staff"
    assert "(0 new)" in output
