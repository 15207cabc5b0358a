"""Who is due and who waits: every held-back lead gets a blocked_reason, and the plan costs fixed queries."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cam.campaigns import campaigns_resume
from cam.models import Campaign, Lead, OutboundEmail
from cam.outreach.planning import CampaignCap, campaign_daily_cap, outreach_plan
from tests.factories import (
    CampaignFactory,
    LeadFactory,
    MailboxFactory,
    OutboundEmailFactory,
    SequenceStepFactory,
    SuppressionFactory,
)

pytestmark = pytest.mark.django_db

# Wednesday 4 March 2026, 10:00 UTC = 11:00 in Berlin, 05:00 in New York.
NOW = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)


# The caps' tests plan in the window's last hour (11:00 to 12:00 in Berlin), where a mailbox's hour's share
# is all that is left of its day (cam.outreach.pacing.hour_share).
LAST_HOUR = {"send_end_hour": 12}


def campaign(**fields) -> Campaign:
    values = {"send_days": [1, 2, 3, 4, 5], "send_start_hour": 9, "send_end_hour": 17, "timezone": "Europe/Berlin",
              "daily_cap": 100, **fields}
    mailboxes = values.pop("mailboxes", None)
    owner = CampaignFactory(**values)
    SequenceStepFactory(campaign=owner, position=1, subject_template="Hello {{ first_name }}",
                        body_template="Hi {{ first_name|default:'there' }}")
    SequenceStepFactory(campaign=owner, position=2, subject_template="", body_template="Following up",
                        delay_days=3)
    owner.mailboxes.set(mailboxes if mailboxes is not None else [MailboxFactory(daily_cap=100, min_gap_seconds=0)])
    return owner


def due(owner: Campaign, count: int = 1, **fields) -> list[Lead]:
    return [LeadFactory(campaign=owner, status=Lead.Status.IN_SEQUENCE, next_send_at=NOW - timedelta(minutes=5),
                        **fields) for _ in range(count)]


def reason(lead: Lead) -> str:
    lead.refresh_from_db()
    return lead.blocked_reason


def test_it_plans_a_rendered_email_for_a_due_lead_and_takes_it_out_of_the_due_list():
    owner = campaign()
    (lead,) = due(owner, first_name="Anna")
    assert outreach_plan(now=NOW) == {"due": 1, "planned": 1}
    email = OutboundEmail.objects.get()
    assert (email.lead, email.step.position, email.status, email.subject) == (lead, 1, "PENDING", "Hello Anna")
    assert email.body_text.startswith("Hi Anna\n")
    assert email.message_id.startswith("<") and email.message_id.endswith(f"@{email.mailbox.from_email.split('@')[1]}>")
    lead.refresh_from_db()
    assert (lead.mailbox, lead.next_send_at, lead.blocked_reason) == (email.mailbox, None, "")
    assert outreach_plan(now=NOW) == {"due": 0, "planned": 0}


def test_it_holds_back_leads_of_a_paused_campaign():
    (lead,) = due(campaign(status=Campaign.Status.PAUSED))
    assert outreach_plan(now=NOW)["campaign_paused"] == 1
    assert reason(lead) == "campaign_paused"
    assert not OutboundEmail.objects.exists()


def test_it_holds_back_a_suppressed_address_and_a_suppressed_domain():
    owner = campaign()
    (by_address,) = due(owner, email="gone@acme.example.com")
    (by_domain,) = due(owner, email="anyone@spamtrap.example.com")
    (fine,) = due(owner, email="anna@brightlane.example.com")
    SuppressionFactory(email="gone@acme.example.com")
    SuppressionFactory(email="", domain="spamtrap.example.com")
    counts = outreach_plan(now=NOW)
    assert (counts["suppressed"], counts["planned"]) == (2, 1)
    assert (reason(by_address), reason(by_domain), reason(fine)) == ("suppressed", "suppressed", "")


def test_a_suppressed_domain_holds_back_its_subdomains_in_any_spelling():
    owner = campaign()
    (under,) = due(owner, email="anna@mail.exämple.com")
    (deeper,) = due(owner, email="jonas@eu.mail.xn--exmple-cua.com")
    (lookalike,) = due(owner, email="eve@notexämple.com")
    SuppressionFactory(email="", domain="xn--exmple-cua.com")

    counts = outreach_plan(now=NOW)

    assert (counts["suppressed"], counts["planned"]) == (2, 1)
    assert (reason(under), reason(deeper), reason(lookalike)) == ("suppressed", "suppressed", "")


def test_it_waits_for_the_window_in_the_campaigns_time_zone_and_moves_the_lead_to_its_opening():
    (lead,) = due(campaign(timezone="America/New_York"))  # 05:00 there, window opens at 09:00
    assert outreach_plan(now=NOW)["outside_window"] == 1
    lead.refresh_from_db()
    assert lead.blocked_reason == "outside_window"
    assert lead.next_send_at == datetime(2026, 3, 4, 14, 0, tzinfo=UTC)  # 09:00 New York


def test_it_follows_the_leads_own_time_zone_when_known():
    owner = campaign(timezone="Europe/Berlin")  # open in Berlin now
    (far,) = due(owner, timezone="Asia/Tokyo")  # 19:00 in Tokyo: closed
    (near,) = due(owner, timezone="Europe/Paris")
    outreach_plan(now=NOW)
    assert (reason(far), reason(near)) == ("outside_window", "")


def test_it_stops_at_the_campaigns_daily_cap():
    owner = campaign(daily_cap=3)
    OutboundEmailFactory(lead=LeadFactory(campaign=owner), campaign=owner, status="SENT",
                         step=owner.steps.get(position=1))
    leads = due(owner, 4)
    counts = outreach_plan(now=NOW)
    assert (counts["planned"], counts["campaign_cap"]) == (2, 2)
    assert sorted(reason(lead) for lead in leads) == ["", "", "campaign_cap", "campaign_cap"]


def test_a_degraded_campaign_plans_at_most_half_its_daily_cap_until_resumed():
    owner = campaign(daily_cap=10, status=Campaign.Status.DEGRADED)
    leads = due(owner, 12)

    counts = outreach_plan(now=NOW)

    assert (counts["planned"], counts["campaign_cap"]) == (5, 7)
    assert sorted(reason(lead) for lead in leads) == [""] * 5 + ["campaign_cap"] * 7
    campaigns_resume(campaign_ids=[owner.pk], reason="Resumed by staff:anna")
    # Resumed: the full cap again, counting the five planned while it was degraded.
    assert outreach_plan(now=NOW)["planned"] == 5
    assert OutboundEmail.objects.filter(campaign=owner).count() == 10


def test_a_degraded_campaign_halves_what_its_mailboxes_allow_when_they_are_the_tighter_cap():
    owner = campaign(daily_cap=100, status=Campaign.Status.DEGRADED, **LAST_HOUR,
                     mailboxes=[MailboxFactory(daily_cap=6, min_gap_seconds=0),
                                MailboxFactory(daily_cap=3, min_gap_seconds=0),
                                MailboxFactory(daily_cap=50, min_gap_seconds=0, is_active=False)])
    due(owner, 9)

    # Its caps allow 9 a day together (6 + 3 from the active mailboxes, under its own 100): half is 4.
    assert outreach_plan(now=NOW)["planned"] == 4


def test_a_degraded_campaign_leaves_its_mailboxes_caps_to_the_other_campaigns():
    shared = MailboxFactory(daily_cap=20, min_gap_seconds=0)
    slowed = campaign(daily_cap=100, status=Campaign.Status.DEGRADED, mailboxes=[shared], **LAST_HOUR)
    other = campaign(daily_cap=100, mailboxes=[shared], **LAST_HOUR)
    due(slowed, 12)
    due(other, 12)

    counts = outreach_plan(now=NOW)

    # The degraded one takes half of the 20 its mailbox allows; the other fills the mailbox's whole cap.
    assert (counts["planned"], counts["campaign_cap"], counts["mailbox_cap"]) == (20, 2, 2)
    assert OutboundEmail.objects.filter(campaign=slowed).count() == 10
    assert OutboundEmail.objects.filter(campaign=other).count() == 10


def test_a_degraded_campaign_with_a_cap_of_one_still_sends_one():
    owner = campaign(daily_cap=1, status=Campaign.Status.DEGRADED)
    due(owner, 2)
    assert outreach_plan(now=NOW)["planned"] == 1


@pytest.mark.parametrize(("status", "daily_cap", "mailbox_caps", "expected"), [
    (Campaign.Status.ACTIVE, 50, [20], CampaignCap(cap=50, usual=50, halved=False)),  # the mailboxes cap themselves
    (Campaign.Status.PAUSED, 50, [20], CampaignCap(cap=50, usual=50, halved=False)),
    (Campaign.Status.DEGRADED, 50, [], CampaignCap(cap=25, usual=50, halved=True)),
    (Campaign.Status.DEGRADED, 51, [100], CampaignCap(cap=25, usual=51, halved=True)),  # rounded down
    (Campaign.Status.DEGRADED, 200, [30, 20], CampaignCap(cap=25, usual=50, halved=True)),
    (Campaign.Status.DEGRADED, 1, [50], CampaignCap(cap=1, usual=1, halved=True)),  # at least one
])
def test_the_effective_daily_cap_is_halved_only_while_degraded(status, daily_cap, mailbox_caps, expected):
    limit = campaign_daily_cap(Campaign(status=status, daily_cap=daily_cap), mailbox_caps=mailbox_caps)
    assert limit == expected
    assert limit.words() == ("" if not expected.halved else
                             f"sending at half its caps ({expected.cap} of {expected.usual} a day) until resumed or "
                             f"the rule clears")


def test_it_stops_at_the_mailboxs_daily_cap_counting_other_campaigns_too():
    mailbox = MailboxFactory(daily_cap=2, min_gap_seconds=0)
    owner, other = campaign(mailboxes=[mailbox], **LAST_HOUR), campaign(mailboxes=[mailbox], **LAST_HOUR)
    OutboundEmailFactory(lead=LeadFactory(campaign=other), campaign=other, mailbox=mailbox, status="SENT",
                         step=other.steps.get(position=1))
    due(owner, 3)
    counts = outreach_plan(now=NOW)
    assert (counts["planned"], counts["mailbox_cap"]) == (1, 2)


def test_it_sends_one_email_per_minimum_gap():
    mailbox = MailboxFactory(daily_cap=50, min_gap_seconds=300, last_sent_at=NOW - timedelta(seconds=400))
    leads = due(campaign(mailboxes=[mailbox]), 3)
    counts = outreach_plan(now=NOW)
    assert (counts["planned"], counts["mailbox_gap"]) == (1, 2)
    assert sorted(reason(lead) for lead in leads) == ["", "mailbox_gap", "mailbox_gap"]


def test_it_waits_when_the_gap_since_the_last_send_has_not_passed():
    mailbox = MailboxFactory(daily_cap=50, min_gap_seconds=300, last_sent_at=NOW - timedelta(seconds=100))
    (lead,) = due(campaign(mailboxes=[mailbox]))
    assert outreach_plan(now=NOW)["mailbox_gap"] == 1
    assert reason(lead) == "mailbox_gap"


def test_it_spreads_new_leads_over_the_mailboxes_with_room_left():
    roomy = MailboxFactory(daily_cap=10, min_gap_seconds=0)
    tight = MailboxFactory(daily_cap=2, min_gap_seconds=0)
    due(campaign(mailboxes=[roomy, tight], **LAST_HOUR), 6)
    outreach_plan(now=NOW)
    per_mailbox = {m: OutboundEmail.objects.filter(mailbox=m).count() for m in (roomy, tight)}
    assert per_mailbox == {roomy: 5, tight: 1}  # each filled at the same pace relative to its cap


def test_it_keeps_a_lead_on_the_mailbox_that_sent_its_first_email():
    first, second = MailboxFactory(daily_cap=50, min_gap_seconds=0), MailboxFactory(daily_cap=50, min_gap_seconds=0)
    owner = campaign(mailboxes=[first, second])
    (lead,) = due(owner, mailbox=second, current_step=1)
    OutboundEmailFactory(lead=lead, campaign=owner, mailbox=second, step=owner.steps.get(position=1),
                         status="SENT", subject="Hello Anna", message_id="<first@outreach.test>")
    outreach_plan(now=NOW)
    follow_up = OutboundEmail.objects.get(step__position=2)
    assert follow_up.mailbox == second
    assert (follow_up.subject, follow_up.in_reply_to, follow_up.references) == (
        "Re: Hello Anna", "<first@outreach.test>", "<first@outreach.test>")


def test_it_waits_when_the_leads_own_mailbox_is_full_rather_than_switching():
    full = MailboxFactory(daily_cap=1, min_gap_seconds=0)
    owner = campaign(mailboxes=[full, MailboxFactory(daily_cap=50, min_gap_seconds=0)])
    OutboundEmailFactory(lead=LeadFactory(campaign=owner), campaign=owner, mailbox=full, status="SENT",
                         step=owner.steps.get(position=1))
    (lead,) = due(owner, mailbox=full, current_step=1)
    assert outreach_plan(now=NOW)["mailbox_cap"] == 1
    assert reason(lead) == "mailbox_cap"


def test_new_leads_go_to_the_connected_mailbox_and_a_disconnected_ones_threads_wait():
    gone = MailboxFactory(daily_cap=50, min_gap_seconds=0, needs_reconnect=True)
    connected = MailboxFactory(daily_cap=50, min_gap_seconds=0)
    owner = campaign(mailboxes=[gone, connected])
    OutboundEmailFactory(lead=LeadFactory(campaign=owner), campaign=owner, mailbox=gone, status="SENT",
                         step=owner.steps.get(position=1))
    (threaded,) = due(owner, mailbox=gone, current_step=1)
    new = due(owner, 3)

    counts = outreach_plan(now=NOW)

    assert (counts["planned"], counts["mailbox_disconnected"]) == (3, 1)
    assert reason(threaded) == "mailbox_disconnected"
    assert {email.mailbox for email in OutboundEmail.objects.filter(lead__in=new)} == {connected}


def test_leads_wait_as_disconnected_when_every_mailbox_must_be_reconnected():
    leads = due(campaign(mailboxes=[MailboxFactory(min_gap_seconds=0, needs_reconnect=True)]), 2)

    assert outreach_plan(now=NOW)["mailbox_disconnected"] == 2
    assert {reason(lead) for lead in leads} == {"mailbox_disconnected"}


def test_it_says_when_a_campaign_has_no_active_mailbox():
    (lead,) = due(campaign(mailboxes=[MailboxFactory(is_active=False)]))
    assert outreach_plan(now=NOW)["no_mailbox"] == 1
    assert reason(lead) == "no_mailbox"


def test_it_says_when_a_template_no_longer_renders():
    owner = campaign()
    owner.steps.filter(position=1).update(body_template="{% if %}")
    (lead,) = due(owner)
    assert outreach_plan(now=NOW)["template_error"] == 1
    assert reason(lead) == "template_error"


def test_it_plans_only_the_given_campaign():
    one, two = campaign(), campaign()
    due(one, 2)
    due(two, 3)
    assert outreach_plan(now=NOW, campaign=two)["planned"] == 3
    assert set(OutboundEmail.objects.values_list("campaign_id", flat=True)) == {two.pk}


@pytest.mark.parametrize("blocked", [False, True])
def test_it_plans_10_or_200_leads_in_the_same_number_of_queries(blocked):
    def queries_for(count: int) -> int:
        owner = campaign(daily_cap=1000, status=Campaign.Status.PAUSED if blocked else Campaign.Status.ACTIVE)
        due(owner, count)
        with CaptureQueriesContext(connection) as captured:
            outreach_plan(now=NOW, campaign=owner)
        return len(captured)

    assert queries_for(10) == queries_for(200)
