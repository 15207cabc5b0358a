"""Admin actions are offered to, and run for, only the staff whose permissions allow what they do."""

import pytest
from django.contrib.auth.models import Permission

from cam.models import Campaign
from tests.factories import CampaignFactory, UserFactory

pytestmark = pytest.mark.django_db

# Each changelist, the actions it offers, and the permission they need beyond viewing.
ACTIONS = [
    ("campaign", ["pause", "resume", "activate"], "change_campaign"),
    ("campaign", ["run_harvest", "run_score", "run_qualify"], "add_jobexecution"),
    ("outboundemail", ["cancel", "resend"], "change_outboundemail"),
    ("inboundemail", ["reclassify_positive", "reclassify_negative"], "change_inboundemail"),
    ("alertchannel", ["enable"], "change_alertchannel"),
    ("camapikey", ["revoke"], "change_camapikey"),
]


def staff_with(client, *codenames):
    user = UserFactory(is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return client


def offered(client, model: str) -> set[str]:
    page = client.get(f"/admin/cam/{model}/")
    assert page.status_code == 200
    form = page.context.get("action_form")
    return {value for value, _ in form.fields["action"].choices} if form is not None else set()


@pytest.mark.parametrize(("model", "actions", "needed"), ACTIONS)
def test_an_action_is_offered_only_with_its_permission(client, model, actions, needed):
    viewer = staff_with(client, f"view_{model}")
    assert not set(actions) & offered(viewer, model)

    allowed = staff_with(client, f"view_{model}", needed)
    assert set(actions) <= offered(allowed, model)


def test_a_viewer_cannot_pause_by_posting_the_action(client):
    campaign = CampaignFactory()
    viewer = staff_with(client, "view_campaign")

    viewer.post("/admin/cam/campaign/", {"action": "pause", "_selected_action": [campaign.pk]})

    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.ACTIVE

