"""The reply desk in the back office: the inbox (order, tabs, filters, badge, actions) and a conversation's thread
(what it shows, its buttons, who may use them), each at a fixed number of queries."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import quote

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.utils import timezone

from cam.admin.desk_thread import waited
from cam.models import InboundEmail, Lead, LeadEvent, OutboundEmail
from tests.factories import (
    CampaignFactory,
    InboundEmailFactory,
    LeadFactory,
    MailboxFactory,
    OutboundEmailFactory,
    SuperuserFactory,
    SuppressionFactory,
    UserFactory,
)
from tests.inbox.test_desk import a_desk, arrived, raw_reply, staff_who_may_work

pytestmark = pytest.mark.django_db
Category = InboundEmail.Category
INBOX = "/admin/cam/reply/"


def thread_url(reply) -> str:
    return f"/admin/cam/reply/{reply.pk}/thread/"


def shown(response) -> list[int]:
    assert response.status_code == 200
    return [reply.pk for reply in response.context["cl"].result_list]


def said(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def staff_with(client, *codenames, username="worker"):
    user = UserFactory(username=username)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="cam", codename__in=codenames))
    client.force_login(user)
    client.user = user
    return client


# --- the inbox ---

def test_the_inbox_shows_what_people_wrote_warmest_first_then_newest(admin_client):
    desk = a_desk()

    order = shown(admin_client.get(INBOX))

    # positive (2 h, 2 d, 5 d), question, referral, then the no's and maybe's newest first; nothing handled, no
    # automatic mail
    assert order == [desk[name].pk for name in ("anna", "oliver", "stranger", "jonas", "lena", "tom", "sara")]


def test_automatic_mail_has_its_own_tab_newest_first(admin_client):
    desk = a_desk()

    assert shown(admin_client.get(INBOX, {"kind": "automatic"})) == [desk["peter"].pk, desk["bounce"].pk]


def test_the_tabs_say_how_many_replies_from_people_wait_and_keep_the_filters(admin_client):
    desk = a_desk()

    html = admin_client.get(INBOX, {"assigned": "nobody"}).content.decode()

    assert "From people · 7 waiting" in html
    assert f'href="{INBOX}?assigned=nobody&amp;kind=automatic"' in html
    html = admin_client.get(INBOX, {"kind": "automatic", "assigned": "nobody"}).content.decode()
    assert f'href="{INBOX}?assigned=nobody"' in html
    assert desk["peter"].from_email in html


def test_a_row_says_who_wrote_in_which_campaign_how_it_was_read_their_words_and_how_long_it_waited(admin_client):
    desk = a_desk()

    html = admin_client.get(INBOX).content.decode()

    row = html[html.index('data-value="POSITIVE"') - 2500:html.index("asks for a call") + 2500]
    for text in ("Anna Berg", "Brightlane", "anna@brightlane.example.com", "DACH founders", "93 %",
                 "asks for a call", "Sounds interesting — could we talk on Thursday afternoon?", ">2 h<"):
        assert text in row, text
    assert f'href="{thread_url(desk["anna"])}"' in html
    assert "no lead matched" in html  # the stranger's
    late = html[html.index("oliver@kranwerk.example.com"):]
    assert 'class="cam-desk-waited cam-desk-late"' in late[:late.index("</tr>")]  # a warm reply waiting 2 days


@pytest.mark.parametrize(("params", "expected"), [
    ({"lead__campaign__id__exact": "other"}, ["oliver"]),
    ({"category__exact": "QUESTION"}, ["jonas"]),
    ({"handled": "yes"}, ["handled"]),
    ({"handled": "all"}, ["anna", "handled", "oliver", "stranger", "jonas", "lena", "tom", "sara", "late"]),
    ({"assigned": "me"}, ["jonas"]),
    ({"assigned": "colleague"}, ["lena"]),
    ({"assigned": "nobody"}, ["anna", "oliver", "stranger", "tom", "sara", "late"]),
    ({"mailbox__id__exact": "another"}, ["late"]),
])
def test_the_inbox_filters_by_campaign_category_handled_assignee_and_mailbox(admin_client, params, expected):
    desk = a_desk()
    colleague = staff_who_may_work(username="colleague")
    InboundEmail.objects.filter(pk=desk["jonas"].pk).update(assigned_to=admin_client.user)
    InboundEmail.objects.filter(pk=desk["lena"].pk).update(assigned_to=colleague)
    another = MailboxFactory(name="Another")
    desk["late"] = arrived(InboundEmailFactory(mailbox=another, lead=LeadFactory(campaign=desk["campaign"]),
                                               category=Category.NEUTRAL, processed_at=timezone.now()),
                           timezone.now() - timedelta(days=9))
    values = {"other": desk["other"].pk, "colleague": colleague.pk, "another": another.pk}
    params = {key: str(values.get(value, value)) for key, value in params.items()}

    assert shown(admin_client.get(INBOX, params)) == [desk[name].pk for name in expected]


def sidebar_link(html: str, href: str) -> str:
    """The words of the sidebar's link to ``href``: its title, then its badge when it has one."""
    link = re.search(rf'<a href="{re.escape(href)}"[^>]*>(.*?)</a>', html, re.S)
    assert link is not None, href
    return " ".join(re.sub(r"<[^>]+>", " ", link.group(1)).split())


@pytest.mark.parametrize("params", [{"handled": "maybe"}, {"assigned": "someone"}])
def test_a_filter_value_the_inbox_does_not_know_is_refused_as_djangos_own_filters_refuse_one(admin_client, params):
    a_desk()
    response = admin_client.get(INBOX, params)
    assert (response.status_code, response["Location"]) == (302, f"{INBOX}?e=1")


def test_the_sidebar_counts_the_positive_replies_nobody_has_handled(admin_client):
    desk = a_desk()

    def replies_link() -> str:
        return sidebar_link(admin_client.get("/admin/cam/campaign/").content.decode(), INBOX)

    assert replies_link() == "mark_email_unread Replies 3"  # anna, oliver, the stranger
    admin_client.post(f"/admin/cam/reply/{desk['anna'].pk}/handled/")
    assert replies_link() == "mark_email_unread Replies 2"
    InboundEmail.objects.filter(pk__in=[desk["oliver"].pk, desk["stranger"].pk]).update(handled_at=timezone.now())
    assert replies_link() == "mark_email_unread Replies"  # no badge at nought
    # The raw list of every message read, kept under Operations.
    html = admin_client.get("/admin/cam/campaign/").content.decode()
    assert sidebar_link(html, "/admin/cam/inboundemail/") == "all_inbox Inbound emails"


def test_the_inbox_and_its_badge_are_for_staff_who_may_view_replies(client):
    a_desk()
    staff_with(client, "view_campaign")

    assert client.get(INBOX).status_code == 403
    assert f'href="{INBOX}"' not in client.get("/admin/cam/campaign/").content.decode()


def test_the_actions_mark_handled_and_assign_through_the_desk_service(admin_client):
    desk = a_desk()
    picked = [desk["anna"].pk, desk["tom"].pk]

    response = admin_client.post(INBOX, {"action": "mark_handled", "_selected_action": picked})
    assert response.status_code == 302
    assert set(InboundEmail.objects.filter(handled_by=admin_client.user).values_list("pk", flat=True)) == set(picked)
    admin_client.post(INBOX + "?handled=yes", {"action": "mark_not_handled", "_selected_action": [desk["tom"].pk]})
    assert InboundEmail.objects.get(pk=desk["tom"].pk).handled_at is None
    admin_client.post(INBOX, {"action": "assign_to_me", "_selected_action": [desk["sara"].pk]})
    assert InboundEmail.objects.get(pk=desk["sara"].pk).assigned_to == admin_client.user


def test_staff_who_may_only_view_replies_get_no_actions_and_no_buttons(client):
    desk = a_desk()
    staff_with(client, "view_inboundemail")

    inbox = client.get(INBOX)
    assert inbox.status_code == 200
    form = inbox.context.get("action_form")
    assert form is None or {value for value, _ in form.fields["action"].choices} <= {""}
    thread = client.get(thread_url(desk["anna"]))
    assert thread.status_code == 200
    html = thread.content.decode()
    assert "Mark handled" not in html and 'name="category"' not in html and 'name="assigned_to"' not in html
    for action, data in (("handled", {}), ("assign", {"assigned_to": ""}), ("reclassify", {"category": "NEGATIVE"})):
        assert client.post(f"/admin/cam/reply/{desk['anna'].pk}/{action}/", data).status_code == 403
    assert InboundEmail.objects.get(pk=desk["anna"].pk).category == Category.POSITIVE


def test_the_inbox_costs_the_same_queries_for_one_reply_or_fifty(admin_client, django_assert_num_queries):
    def replies(count):
        InboundEmail.objects.all().delete()
        campaign, mailbox = CampaignFactory(), MailboxFactory()
        for n in range(count):
            InboundEmailFactory(mailbox=mailbox, lead=LeadFactory(campaign=campaign), processed_at=timezone.now(),
                                category=(Category.POSITIVE, Category.QUESTION, Category.NEGATIVE)[n % 3],
                                confidence=0.8, classification_reasons=["phrase"],
                                assigned_to=admin_client.user if n % 2 else None)

    # the session, the user; the sidebar's badge; the tabs' count; the list's count and rows; the campaign,
    # mailbox and assignee filters' choices
    for count in (1, 50):
        replies(count)
        with django_assert_num_queries(9):
            assert len(shown(admin_client.get(INBOX))) == count


# --- the thread ---

def test_the_thread_shows_the_whole_conversation_oldest_first(admin_client):
    desk = a_desk()

    response = admin_client.get(thread_url(desk["anna"]))

    html = response.content.decode()
    first, away, second, reply = (html.index(f'id="message-{way}-{desk[name].pk}"') for way, name in (
        ("out", "step_one"), ("in", "anna_away"), ("out", "step_two"), ("in", "anna")))
    assert first < away < second < reply
    assert "Step 1" in html[first:away] and "Step 2" in html[second:reply]
    assert "I am travelling until Monday" in html[away:second] and "Out of office" in html[away:second]
    assert "Would Brightlane like fewer chores?" in html[first:away]
    assert "Footer (address and unsubscribe link)" in html[first:away]  # our footer, folded
    anna = html[reply:]
    assert "Sounds interesting — could we talk on Thursday afternoon?" in anna
    assert "The whole message, with what it quotes" in anna  # the quoted history, folded
    assert "&gt; Just bringing this up again" in anna
    assert "cam-message-current" in html[reply - 200:reply]
    assert f'href="/admin/cam/lead/{desk["anna"].lead_id}/change/#timeline"' in html
    assert f'href="/admin/cam/campaign/{desk["campaign"].pk}/change/"' in html
    assert 'id="cam-reply-composer"' in html and response.context["composer"]["to_email"] == desk["anna"].from_email
    assert re.search(r"<title>\s*Anna Berg \(Brightlane\) \| CAM</title>", html)
    header = html[html.index('id="header-inner"'):html.index('id="content"')]
    assert "Anna Berg (Brightlane)" in header and 'href="/admin/cam/reply/"' in header  # CAM › Replies › Anna


def test_a_long_conversation_shows_its_latest_messages_and_the_reply_whole_and_the_older_ones_a_line_each(
        admin_client):
    desk = a_desk()

    html = admin_client.get(thread_url(desk["anna_away"])).content.decode()

    opened = dict(re.findall(r'id="message-(\w+-\d+)" data-direction="\w+"( open)?>', html))
    assert opened == {f"out-{desk['step_one'].pk}": "", f"in-{desk['anna_away'].pk}": " open",  # the reply itself
                      f"out-{desk['step_two'].pk}": " open", f"in-{desk['anna'].pk}": " open"}
    opened = dict(re.findall(r'id="message-(\w+-\d+)" data-direction="\w+"( open)?>',
                             admin_client.get(thread_url(desk["anna"])).content.decode()))
    assert opened[f"in-{desk['anna_away'].pk}"] == " open" and opened[f"out-{desk['step_one'].pk}"] == ""


def test_a_message_that_matched_no_lead_is_a_thread_of_its_own(admin_client):
    desk = a_desk()

    html = admin_client.get(thread_url(desk["stranger"])).content.decode()

    assert "This message matched no lead." in html
    assert "Who is this? Happy to hear more." in html
    assert html.count('class="cam-message ') == 1


def test_a_replys_page_on_the_desk_is_its_thread(admin_client):
    desk = a_desk()
    response = admin_client.get(f"/admin/cam/reply/{desk['anna'].pk}/change/")
    assert (response.status_code, response["Location"]) == (302, thread_url(desk["anna"]))
    assert admin_client.get("/admin/cam/reply/999999/thread/").status_code == 404


def test_a_row_opens_its_thread_which_leads_back_to_the_same_filters(admin_client):
    desk = a_desk()
    filters = "assigned=nobody&kind=automatic"

    html = admin_client.get(f"{INBOX}?{filters}").content.decode()
    link = f"{thread_url(desk['peter'])}?_changelist_filters={quote(filters, safe='')}"
    assert f'href="{link.replace("&", "&amp;")}"' in html

    thread = admin_client.get(link).content.decode()
    assert f'href="{INBOX}?{filters.replace("&", "&amp;")}"' in thread
    response = admin_client.post(f"/admin/cam/reply/{desk['peter'].pk}/handled/?_changelist_filters="
                                 f"{quote(filters, safe='')}")
    assert response["Location"] == f"{INBOX}?{filters}"


def test_mark_handled_records_who_and_goes_back_to_the_inbox_for_the_next(admin_client):
    desk = a_desk()

    response = admin_client.post(f"/admin/cam/reply/{desk['anna'].pk}/handled/", {"handled": "1"})

    assert (response.status_code, response["Location"]) == (302, INBOX)
    anna = InboundEmail.objects.get(pk=desk["anna"].pk)
    assert anna.handled_by == admin_client.user and anna.handled_at is not None
    assert said(response) == ["The reply from Anna Berg is handled."]
    assert desk["anna"].pk not in shown(admin_client.get(INBOX))
    thread = admin_client.get(thread_url(desk["anna"])).content.decode()
    assert f"by {admin_client.user.username}" in thread and "Not handled after all" in thread

    response = admin_client.post(f"/admin/cam/reply/{desk['anna'].pk}/handled/", {"handled": "0"})
    assert response["Location"] == thread_url(desk["anna"])
    assert InboundEmail.objects.get(pk=desk["anna"].pk).handled_at is None


def test_assign_to_gives_the_reply_to_a_person_who_may_work_replies(admin_client):
    desk = a_desk()
    colleague = staff_who_may_work(username="colleague")
    url = f"/admin/cam/reply/{desk['anna'].pk}/assign/"

    thread = admin_client.get(thread_url(desk["anna"])).content.decode()
    assert f'<option value="{colleague.pk}">colleague</option>' in thread

    response = admin_client.post(url, {"assigned_to": str(colleague.pk)})
    assert response["Location"] == thread_url(desk["anna"])
    assert said(response) == ["Assigned to colleague."]
    assert InboundEmail.objects.get(pk=desk["anna"].pk).assigned_to == colleague
    admin_client.post(url, {"assigned_to": ""})
    assert InboundEmail.objects.get(pk=desk["anna"].pk).assigned_to is None


@pytest.mark.parametrize(("chosen", "message"), [
    ("abc", "Not assigned: there is no user with the id “abc”."),
    ("999999", "Not assigned: there is no user with the id “999999”."),
    ("viewer", "Not assigned: viewer cannot be given replies: only active staff members who may change replies"),
])
def test_assign_to_refuses_someone_who_cannot_be_given_replies_and_says_why(admin_client, chosen, message):
    desk = a_desk()
    viewer = UserFactory(username="viewer")
    chosen = str(viewer.pk) if chosen == "viewer" else chosen

    response = admin_client.post(f"/admin/cam/reply/{desk['anna'].pk}/assign/", {"assigned_to": chosen})

    assert said(response)[0].startswith(message)
    assert InboundEmail.objects.get(pk=desk["anna"].pk).assigned_to is None


def test_reclassify_applies_the_follow_up_and_records_the_person(admin_client):
    desk = a_desk()
    tom = desk["tom"]
    Lead.objects.filter(pk=tom.lead_id).update(status=Lead.Status.IN_SEQUENCE)

    response = admin_client.post(f"/admin/cam/reply/{tom.pk}/reclassify/", {"category": "POSITIVE"})

    assert response["Location"] == thread_url(tom)
    tom.refresh_from_db()
    assert (tom.category, tom.classified_by) == (Category.POSITIVE, f"staff:{admin_client.user.username}")
    assert Lead.objects.get(pk=tom.lead_id).status == Lead.Status.INTERESTED
    event = LeadEvent.objects.filter(lead_id=tom.lead_id).latest("created_at")
    assert (event.actor, event.to_status) == (f"staff:{admin_client.user.username}", Lead.Status.INTERESTED)
    assert said(response) == ["Read as positive: its follow-up was applied. The lead is interested."]
    assert tom.classification_reasons[0] == f"read as positive by staff:{admin_client.user.username}"
    # Read again as something else: the newer reading replaces the older, the classifier's reasons stay beneath.
    admin_client.post(f"/admin/cam/reply/{tom.pk}/reclassify/", {"category": "QUESTION"})
    admin_client.post(f"/admin/cam/reply/{tom.pk}/reclassify/", {"category": "POSITIVE"})
    tom.refresh_from_db()
    assert tom.classification_reasons[1:] == ["phrase matched"]
    thread = admin_client.get(thread_url(tom)).content.decode()
    assert 'value="POSITIVE" class="cam-chip cam-chip-green cam-chip-current" disabled' in thread


def test_reclassify_refuses_an_unknown_category_and_names_it(admin_client):
    desk = a_desk()

    response = admin_client.post(f"/admin/cam/reply/{desk['tom'].pk}/reclassify/", {"category": "HAPPY"})

    assert said(response)[0].startswith("Not reclassified: “HAPPY” is not a category; choose one of positive,")
    assert InboundEmail.objects.get(pk=desk["tom"].pk).category == Category.NEGATIVE


@pytest.mark.parametrize("action", ["handled", "assign", "reclassify", "outcome"])
def test_the_threads_buttons_only_post(admin_client, action):
    desk = a_desk()
    assert admin_client.get(f"/admin/cam/reply/{desk['anna'].pk}/{action}/").status_code == 405


def test_the_thread_offers_the_outcomes_its_lead_may_take(admin_client):
    desk = a_desk()

    html = admin_client.get(thread_url(desk["anna"])).content.decode()

    card = html[html.index('id="cam-outcome"'):html.index("</aside>")]
    assert re.findall(r'name="status" value="(\w+)"', card) == ["MEETING_BOOKED", "WON", "LOST"]


def test_meeting_booked_on_the_thread_changes_the_lead_through_the_service_and_records_who_and_why(admin_client):
    desk = a_desk()
    anna = desk["anna"]

    response = admin_client.post(f"/admin/cam/reply/{anna.pk}/outcome/",
                                 {"status": "MEETING_BOOKED", "reason": "Call on Thursday at 3"})

    assert response["Location"] == thread_url(anna)
    assert Lead.objects.get(pk=anna.lead_id).status == Lead.Status.MEETING_BOOKED
    event = LeadEvent.objects.filter(lead_id=anna.lead_id).latest("created_at")
    assert (event.actor, event.from_status, event.to_status, event.reason) == (
        f"staff:{admin_client.user.username}", Lead.Status.INTERESTED, Lead.Status.MEETING_BOOKED,
        "Call on Thursday at 3")
    assert said(response) == ["anna@brightlane.example.com is now meeting booked."]
    # Won follows from there, without a reason: the history says who marked it.
    admin_client.post(f"/admin/cam/reply/{anna.pk}/outcome/", {"status": "WON"})
    event = LeadEvent.objects.filter(lead_id=anna.lead_id).latest("created_at")
    assert (event.to_status, event.reason) == (Lead.Status.WON,
                                               f"Marked by staff:{admin_client.user.username} on the reply desk.")


def test_an_unsubscribed_lead_whose_address_is_suppressed_takes_no_outcome_and_the_thread_says_why(admin_client):
    desk = a_desk()
    anna = desk["anna"]
    Lead.objects.filter(pk=anna.lead_id).update(status=Lead.Status.UNSUBSCRIBED)
    SuppressionFactory(email=anna.lead.email)

    html = admin_client.get(thread_url(anna)).content.decode()
    card = html[html.index('id="cam-outcome"'):html.index("</aside>")]
    assert 'name="status"' not in card
    assert "Its address is suppressed" in card

    response = admin_client.post(f"/admin/cam/reply/{anna.pk}/outcome/", {"status": "WON"})
    assert said(response)[0].startswith("Not marked won: A lead cannot leave UNSUBSCRIBED while its address is "
                                        "suppressed (")
    assert Lead.objects.get(pk=anna.lead_id).status == Lead.Status.UNSUBSCRIBED


def test_an_outcome_the_desk_does_not_offer_is_refused_and_named(admin_client):
    desk = a_desk()

    response = admin_client.post(f"/admin/cam/reply/{desk['anna'].pk}/outcome/", {"status": "IN_SEQUENCE"})

    assert said(response)[0].startswith("No outcome marked: “IN_SEQUENCE” is not one; choose meeting booked, won, lost")
    assert Lead.objects.get(pk=desk["anna"].lead_id).status == Lead.Status.INTERESTED


def test_staff_who_may_not_change_leads_see_no_outcome_and_cannot_post_one(client):
    desk = a_desk()
    staff_with(client, "view_inboundemail", "change_inboundemail")

    assert 'id="cam-outcome"' not in client.get(thread_url(desk["anna"])).content.decode()
    assert client.post(f"/admin/cam/reply/{desk['anna'].pk}/outcome/", {"status": "WON"}).status_code == 403
    assert Lead.objects.get(pk=desk["anna"].lead_id).status == Lead.Status.INTERESTED


def test_the_thread_costs_the_same_queries_for_one_message_or_fifty(admin_client, django_assert_num_queries):
    def conversation(messages: int) -> InboundEmail:
        mailbox, lead = MailboxFactory(), LeadFactory()
        for n in range(messages - 1):
            if n % 2 == 0:
                OutboundEmailFactory(lead=lead, mailbox=mailbox, status=OutboundEmail.Status.SENT,
                                     sent_at=timezone.now() - timedelta(hours=messages - n),
                                     body_text="Hello\n\n--\nExample Ltd\n")
            else:
                InboundEmailFactory(mailbox=mailbox, lead=lead, category=Category.QUESTION,
                                    received_at=timezone.now() - timedelta(hours=messages - n), new_text="How much?",
                                    raw_message=raw_reply(sender=lead.email, subject="Re", words="How much?",
                                                          quoted="Hello"))
        return InboundEmailFactory(mailbox=mailbox, lead=lead, category=Category.QUESTION, received_at=timezone.now(),
                                   new_text="Thanks!", raw_message=raw_reply(sender=lead.email, subject="Re",
                                                                             words="Thanks!", quoted="Hello"))

    SuperuserFactory(username="colleague")
    # the session, the user; the sidebar's badge; the reply with its lead, campaign and people; the messages
    # received; the emails sent; the people a reply may be assigned to; the composer's lead and saved answers
    for messages in (1, 50):
        reply = conversation(messages)
        with django_assert_num_queries(9):
            response = admin_client.get(thread_url(reply))
        assert len(response.context["thread"]) == messages


@pytest.mark.parametrize(("seconds", "text"), [
    (5, "just now"), (60, "1 min"), (59 * 60, "59 min"), (3 * 3600 + 59, "3 h"), (26 * 3600, "1 d"),
    (13 * 86400, "13 d"), (15 * 86400, "2 wk"),
])
def test_how_long_a_reply_waited_reads_in_its_largest_unit(seconds, text):
    now = timezone.now()
    assert waited(now - timedelta(seconds=seconds), now) == text


def test_a_records_page_under_inbound_emails_links_to_its_conversation(admin_client):
    desk = a_desk()
    html = admin_client.get(f"/admin/cam/inboundemail/{desk['anna'].pk}/change/").content.decode()
    assert f'href="{thread_url(desk["anna"])}"' in html
