"""A campaign's steps rendered for one lead, as the sender would send them, in fixed queries."""

import pytest

from cam.outreach.preview import preview_steps
from cam.outreach.rendering import RenderedEmail, TemplateProblem
from tests.factories import CampaignFactory, LeadFactory, MailboxFactory, OutboundEmailFactory, SequenceStepFactory

pytestmark = pytest.mark.django_db


def sequence(count: int):
    campaign = CampaignFactory()
    campaign.mailboxes.set([MailboxFactory(from_name="Alex")])
    steps = [SequenceStepFactory(campaign=campaign, position=position,
                                 subject_template="Hello {{ first_name }}" if position == 1 else "",
                                 body_template=f"Step {position} for {{{{ company }}}} from {{{{ sender_name }}}}")
             for position in range(1, count + 1)]
    return campaign, steps


def test_each_step_renders_for_the_lead_and_follow_ups_reply_to_the_first_subject():
    campaign, steps = sequence(3)
    lead = LeadFactory(campaign=campaign, first_name="Anna", company="Brightlane")

    previews = preview_steps(campaign=campaign, steps=steps, lead=lead)

    assert [(previews[step.pk].subject, previews[step.pk].body_text.splitlines()[0]) for step in steps] == [
        ("Hello Anna", "Step 1 for Brightlane from Alex"), ("Re: Hello Anna", "Step 2 for Brightlane from Alex"),
        ("Re: Hello Anna", "Step 3 for Brightlane from Alex")]


def test_follow_ups_reply_to_the_subject_the_first_email_went_out_with():
    campaign, steps = sequence(2)
    lead = LeadFactory(campaign=campaign, first_name="Anna")
    OutboundEmailFactory(lead=lead, step=steps[0], subject="Hello Anna, an older subject", status="SENT")

    assert preview_steps(campaign=campaign, steps=steps, lead=lead)[steps[1].pk].subject == (
        "Re: Hello Anna, an older subject")


def test_a_step_that_does_not_render_is_given_with_its_problem_and_the_others_still_render():
    campaign, steps = sequence(2)
    steps[1].body_template = "{% if %}"

    previews = preview_steps(campaign=campaign, steps=steps, lead=LeadFactory(campaign=campaign))

    assert isinstance(previews[steps[0].pk], RenderedEmail)
    assert isinstance(previews[steps[1].pk], TemplateProblem)
    assert str(previews[steps[1].pk]).startswith("The body template does not compile")


@pytest.mark.parametrize("count", [1, 6])
def test_it_costs_two_queries_however_many_steps(django_assert_num_queries, count):
    campaign, steps = sequence(count)
    lead = LeadFactory(campaign=campaign)

    with django_assert_num_queries(2):
        previews = preview_steps(campaign=campaign, steps=steps, lead=lead)
    assert len(previews) == count
