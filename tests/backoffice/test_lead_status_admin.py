"""A lead's status in the admin: read-only on its page, changed only through the status service — the
"Change status" button with a required reason, the one-click outcomes (meeting booked, won, lost) and the
list's action — and never out of UNSUBSCRIBED while a suppression covers the address. Its address is
read-only once mail went to it."""

import re

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from cam.leads import lead_statuses_allowed
from cam.models import Lead, LeadEvent, OutboundEmail, Suppression
from tests import factories

pytestmark = pytest.mark.django_db
Status = Lead.Status
ADDRESS = "anna@mail.brightlane.example.com"
STATUS_FIELDS = ["status", "status_reason", "current_step", "next_send_at", "blocked_reason", "paused_until"]
BUTTONS = ["change_status", "meeting_booked", "won", "lost"]


def page_url(lead: Lead) -> str:
    return reverse("admin:cam_lead_change", args=[lead.pk])


def button_url(lead: Lead, name: str) -> str:
    return reverse(f"admin:cam_lead_detail_{name}", args=[lead.pk])


def shown_buttons(html: str, lead: Lead) -> list[str]:
    return [name for name in BUTTONS if f'href="{button_url(lead, name)}"' in html]


def form_data(response) -> dict:
    """The lead's change form as the browser would post it back, unchanged."""
    form = response.context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if value is None:
            continue
        data[name] = field.widget.format_value(value) if not isinstance(value, bool) else ("on" if value else "")
    return {name: value for name, value in data.items() if value not in ("", None)}


def events(lead: Lead) -> list[tuple[str, str, str, str]]:
    return list(LeadEvent.objects.filter(lead=lead).order_by("id").values_list("from_status", "to_status", "actor",
                                                                               "reason"))


def staff_with(client, *codenames):
    user = factories.UserFactory(is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="cam", codename__in=codenames))
    client.force_login(user)
    return client


# -- the lead's page ------------------------------------------------------------------------------------------

def test_the_page_offers_no_status_or_sequence_field_to_edit_and_shows_the_status_as_its_label(admin_client):
    lead = factories.LeadFactory(status=Status.IN_SEQUENCE, status_reason="Enrolled", current_step=2,
                                 next_send_at=timezone.now(), blocked_reason=Lead.BlockedReason.MAILBOX_CAP)

    response = admin_client.get(page_url(lead))

    assert not set(STATUS_FIELDS) & set(response.context["adminform"].form.fields)
    html = response.content.decode()
    assert 'class="cam-label cam-label-blue" data-value="IN_SEQUENCE">In sequence</span>' in html
    assert "Mailbox daily cap reached" in html and "Enrolled" in html


def test_posting_the_status_fields_changes_none_of_them_and_records_nothing(admin_client):
    lead = factories.LeadFactory(email=ADDRESS, status=Status.UNSUBSCRIBED, status_reason="Asked to stop",
                                 company="Brightlane")
    factories.SuppressionFactory(email=ADDRESS)
    data = form_data(admin_client.get(page_url(lead)))

    response = admin_client.post(page_url(lead), {
        **data, "company": "Brightlane GmbH", "status": "IN_SEQUENCE", "status_reason": "back in", "current_step": "0",
        "next_send_at_0": "2026-01-01", "next_send_at_1": "09:00", "blocked_reason": "", "paused_until_0": ""})

    assert response.status_code == 302, response.context["adminform"].form.errors
    lead.refresh_from_db()
    assert (lead.company, lead.status, lead.status_reason, lead.next_send_at) == (
        "Brightlane GmbH", Status.UNSUBSCRIBED, "Asked to stop", None)
    assert not LeadEvent.objects.exists()


def test_a_status_changed_meanwhile_is_not_written_back_by_saving_the_page(admin_client):
    lead = factories.LeadFactory(status=Status.IN_SEQUENCE)
    data = form_data(admin_client.get(page_url(lead)))
    Lead.objects.filter(pk=lead.pk).update(status=Status.INTERESTED)  # a reply came while the page was open

    admin_client.post(page_url(lead), {**data, "title": "CEO"})

    assert Lead.objects.filter(pk=lead.pk).values_list("status", "title").get() == (Status.INTERESTED, "CEO")


@pytest.mark.parametrize(("sent", "editable"), [
    ([], True), ([OutboundEmail.Status.PENDING, OutboundEmail.Status.FAILED], True),
    ([OutboundEmail.Status.SENT], False), ([OutboundEmail.Status.UNKNOWN], False),
    ([factories.IN_FLIGHT], False)])
def test_the_address_is_read_only_once_mail_went_or_may_have_gone_to_it(admin_client, sent, editable):
    lead = factories.LeadFactory(email="anna@brightlane.example.com")
    for status in sent:
        email = factories.OutboundEmailFactory(lead=lead, status=status)
        if status == factories.IN_FLIGHT:
            factories.put_in_flight(email, holder="worker-1:0a1b")
    response = admin_client.get(page_url(lead))
    data = form_data(response)

    assert ("email" in response.context["adminform"].form.fields) is editable
    if not editable:
        assert "The address cannot be changed: mail was already sent to it" in response.content.decode()
    admin_client.post(page_url(lead), {**data, "email": "anna.schmidt@brightlane.example.com"})
    lead.refresh_from_db()
    assert lead.email == ("anna.schmidt@brightlane.example.com" if editable else "anna@brightlane.example.com")


def test_an_address_changed_on_a_page_opened_before_the_first_email_is_kept_and_staff_are_told(admin_client):
    lead = factories.LeadFactory(email="anna@brightlane.example.com")
    data = form_data(admin_client.get(page_url(lead)))
    factories.OutboundEmailFactory(lead=lead, status=OutboundEmail.Status.SENT)

    response = admin_client.post(page_url(lead), {**data, "email": "anna.schmidt@brightlane.example.com"}, follow=True)

    assert Lead.objects.get(pk=lead.pk).email == "anna@brightlane.example.com"
    assert "The address stays anna@brightlane.example.com. The address cannot be changed" in response.content.decode()


# -- the buttons ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "buttons"), [
    (Status.NEW, ["change_status"]),
    (Status.IN_SEQUENCE, BUTTONS),
    (Status.INTERESTED, BUTTONS),
    (Status.MEETING_BOOKED, ["change_status", "won", "lost"]),
    (Status.WON, ["change_status", "meeting_booked", "lost"]),
])
def test_only_the_buttons_the_status_allows_are_shown(admin_client, status, buttons):
    lead = factories.LeadFactory(status=status)

    assert shown_buttons(admin_client.get(page_url(lead)).content.decode(), lead) == buttons


def test_an_unsubscribed_lead_whose_address_is_suppressed_offers_no_outcome_only_the_status_dialog(admin_client):
    lead = factories.LeadFactory(email=ADDRESS, status=Status.UNSUBSCRIBED)
    factories.SuppressionFactory(email="", domain="brightlane.example.com")

    assert shown_buttons(admin_client.get(page_url(lead)).content.decode(), lead) == ["change_status"]
    dialog = admin_client.get(button_url(lead, "change_status")).content.decode()
    assert ("Its address is suppressed (the domain brightlane.example.com is on the suppression list, which covers "
            "mail.brightlane.example.com): the lead cannot leave unsubscribed") in dialog


def test_the_status_dialog_offers_the_statuses_the_engine_allows_and_changes_nothing_when_opened(admin_client):
    lead = factories.LeadFactory(status=Status.IN_SEQUENCE)

    dialog = admin_client.get(button_url(lead, "change_status"))

    assert dialog.status_code == 200
    offered = [value for value, _ in dialog.context["form"].fields["status"].choices if value]
    assert offered == list(lead_statuses_allowed(Status.IN_SEQUENCE))
    assert "IN_SEQUENCE" not in offered and "QUALIFIED" not in offered
    assert Lead.objects.get(pk=lead.pk).status == Status.IN_SEQUENCE


def test_the_status_dialog_changes_the_status_through_the_service_with_the_staff_user_and_reason(admin_client):
    lead = factories.LeadFactory(status=Status.IN_SEQUENCE, next_send_at=timezone.now())
    waiting = factories.OutboundEmailFactory(lead=lead, status=OutboundEmail.Status.PENDING)

    response = admin_client.post(button_url(lead, "change_status"),
                                 {"_form_submitted": "on", "status": "INTERESTED", "reason": "Called us back"},
                                 follow=True)

    assert response.redirect_chain == [(page_url(lead), 302)]
    assert f"Lead {lead.email} is now interested." in response.content.decode()
    lead.refresh_from_db()
    assert (lead.status, lead.status_reason, lead.next_send_at) == (Status.INTERESTED, "Called us back", None)
    assert events(lead) == [("IN_SEQUENCE", "INTERESTED", f"staff:{response.wsgi_request.user.username}",
                             "Called us back")]
    waiting.refresh_from_db()
    assert waiting.status == OutboundEmail.Status.CANCELLED


@pytest.mark.parametrize(("body", "error"), [
    ({"status": "INTERESTED", "reason": "  "}, "This field is required."),
    ({"status": "IN_SEQUENCE", "reason": "Back in"}, "Select a valid choice. IN_SEQUENCE is not one of the available "
                                                     "choices."),
    ({"reason": "Back in"}, "This field is required."),
])
def test_the_status_dialog_needs_a_reason_and_an_allowed_status(admin_client, body, error):
    lead = factories.LeadFactory(status=Status.IN_SEQUENCE)

    response = admin_client.post(button_url(lead, "change_status"), {"_form_submitted": "on", **body})

    assert response.status_code == 200
    assert error in response.content.decode()
    assert Lead.objects.get(pk=lead.pk).status == Status.IN_SEQUENCE
    assert not LeadEvent.objects.exists()


def test_the_status_dialog_refuses_to_take_a_lead_out_of_unsubscribed_while_suppressed_then_allows_it(admin_client):
    lead = factories.LeadFactory(email=ADDRESS, status=Status.UNSUBSCRIBED)
    factories.SuppressionFactory(email=ADDRESS)
    body = {"_form_submitted": "on", "status": "INTERESTED", "reason": "Wrote back: wants a call"}

    refused = admin_client.post(button_url(lead, "change_status"), body, headers={"HX-Request": "true"})

    # Said in the dialog, which stays open with what was typed.
    html = refused.content.decode()
    assert refused.status_code == 200 and "HX-Refresh" not in refused.headers
    assert re.search(r'class="errornote[^"]*cam-dialog-refused[^"]*">\s*A lead cannot leave UNSUBSCRIBED while its '
                     r"address is suppressed \(anna@mail.brightlane.example.com is on the suppression list\). Remove "
                     r"the suppression first, on its own page under Suppressions", html)
    assert "Wrote back: wants a call" in html
    assert Lead.objects.get(pk=lead.pk).status == Status.UNSUBSCRIBED and not LeadEvent.objects.exists()

    Suppression.objects.filter(email=ADDRESS).delete()  # removed on its own page
    allowed = admin_client.post(button_url(lead, "change_status"), body, headers={"HX-Request": "true"})

    assert allowed.headers["HX-Refresh"] == "true"
    assert events(lead) == [("UNSUBSCRIBED", "INTERESTED", f"staff:{allowed.wsgi_request.user.username}",
                             "Wrote back: wants a call")]


@pytest.mark.parametrize(("name", "status"), [("meeting_booked", Status.MEETING_BOOKED), ("won", Status.WON),
                                              ("lost", Status.LOST)])
def test_an_outcome_button_marks_the_lead_with_a_default_reason_naming_who(admin_client, name, status):
    lead = factories.LeadFactory(status=Status.INTERESTED)

    dialog = admin_client.get(button_url(lead, name)).content.decode()
    response = admin_client.post(button_url(lead, name), {"_form_submitted": "on"}, follow=True)

    assert f"Mark this lead “{status.label.lower()}”?" in dialog
    user = response.wsgi_request.user.username
    assert f"Lead {lead.email} is now {status.label.lower()}." in response.content.decode()
    assert events(lead) == [("INTERESTED", status, f"staff:{user}", f"Marked by staff:{user}.")]


def test_an_outcome_button_keeps_the_reason_given(admin_client):
    lead = factories.LeadFactory(status=Status.REFERRED)

    admin_client.post(button_url(lead, "meeting_booked"), {"_form_submitted": "on", "reason": "Demo on Tuesday"})

    lead.refresh_from_db()
    assert (lead.status, lead.status_reason) == (Status.MEETING_BOOKED, "Demo on Tuesday")


def test_an_outcome_button_on_a_page_left_open_says_why_it_was_refused(admin_client):
    lead = factories.LeadFactory(status=Status.NEW)  # the button was shown while the lead was in its sequence

    response = admin_client.post(button_url(lead, "won"), {"_form_submitted": "on"})

    assert "A lead cannot go from NEW to WON. Allowed from NEW: DISQUALIFIED, DEAD, UNSUBSCRIBED, BOUNCED." in \
        response.content.decode()
    assert Lead.objects.get(pk=lead.pk).status == Status.NEW


def test_the_buttons_are_neither_shown_nor_obeyed_without_the_permission_to_change_leads(client):
    lead = factories.LeadFactory(status=Status.INTERESTED)
    viewer = staff_with(client, "view_lead")

    html = viewer.get(page_url(lead)).content.decode()
    refused = [viewer.post(button_url(lead, name), {"_form_submitted": "on", "status": "WON", "reason": "x"})
               for name in BUTTONS]

    assert shown_buttons(html, lead) == []
    assert [response.status_code for response in refused] == [403] * len(BUTTONS)
    assert Lead.objects.get(pk=lead.pk).status == Status.INTERESTED


# -- the list's action -------------------------------------------------------------------------------------------

def test_the_action_asks_for_the_status_and_a_reason_first(admin_client):
    leads = [factories.LeadFactory(status=Status.IN_SEQUENCE), factories.LeadFactory(status=Status.NEW)]

    page = admin_client.post(reverse("admin:cam_lead_changelist"),
                             {"action": "change_status", "_selected_action": [lead.pk for lead in leads]})

    assert page.status_code == 200
    offered = [value for value, _ in page.context["form"].fields["status"].choices if value]
    # What either lead's status allows, in the statuses' order.
    assert offered == [status for status in Status.values
                       if status in {*lead_statuses_allowed(Status.IN_SEQUENCE), *lead_statuses_allowed(Status.NEW)}]
    assert "2 leads selected" in page.content.decode()
    assert set(Lead.objects.values_list("status", flat=True)) == {Status.IN_SEQUENCE, Status.NEW}


def test_the_action_changes_each_lead_through_the_service_and_says_what_became_of_each(admin_client):
    moving = factories.LeadFactory.create_batch(3, status=Status.IN_SEQUENCE)
    held = factories.LeadFactory(email=ADDRESS, status=Status.UNSUBSCRIBED)
    factories.SuppressionFactory(email="", domain="brightlane.example.com")

    response = admin_client.post(reverse("admin:cam_lead_changelist"), {
        "action": "change_status", "_selected_action": [lead.pk for lead in (*moving, held)], "apply": "yes",
        "status": "NOT_INTERESTED", "reason": "Said no on the phone"}, follow=True)

    html = response.content.decode()
    assert ("3 changed to not interested, 1 refused: anna@mail.brightlane.example.com: A lead cannot leave "
            "UNSUBSCRIBED while its address is suppressed (the domain brightlane.example.com is on the suppression "
            "list, which covers mail.brightlane.example.com). Remove the suppression first") in html
    user = response.wsgi_request.user.username
    assert set(LeadEvent.objects.values_list("lead_id", "to_status", "actor", "reason")) == {
        (lead.pk, "NOT_INTERESTED", f"staff:{user}", "Said no on the phone") for lead in moving}
    assert Lead.objects.get(pk=held.pk).status == Status.UNSUBSCRIBED


def test_the_action_needs_a_reason(admin_client):
    lead = factories.LeadFactory(status=Status.IN_SEQUENCE)

    page = admin_client.post(reverse("admin:cam_lead_changelist"), {
        "action": "change_status", "_selected_action": [lead.pk], "apply": "yes", "status": "DEAD", "reason": ""})

    assert page.status_code == 200 and "This field is required." in page.content.decode()
    assert Lead.objects.get(pk=lead.pk).status == Status.IN_SEQUENCE


def test_the_action_costs_the_same_queries_for_one_or_four_leads(admin_client):
    def queries_for(size: int) -> int:
        leads = factories.LeadFactory.create_batch(size, status=Status.IN_SEQUENCE)
        with CaptureQueriesContext(connection) as queries:
            response = admin_client.post(reverse("admin:cam_lead_changelist"), {
                "action": "change_status", "_selected_action": [lead.pk for lead in leads], "apply": "yes",
                "status": "DEAD", "reason": "Closed"})
        assert response.status_code == 302
        assert set(Lead.objects.filter(pk__in=[lead.pk for lead in leads]).values_list("status", flat=True)) == {"DEAD"}
        return len(queries)

    assert queries_for(1) == queries_for(4)
