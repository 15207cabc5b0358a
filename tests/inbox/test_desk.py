"""The reply desk's services: marking replies handled, assigning them, and counting what waits."""

from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.utils import timezone

from cam.inbox.desk import (
    NotAssignable,
    desk_staff,
    replies_mark_handled,
    replies_mark_unhandled,
    replies_waiting,
    reply_assign,
    reply_mark_handled,
)
from cam.models import InboundEmail, Lead, OutboundEmail
from cam.models.mail import DESK_ORDER, PEOPLE_CATEGORIES
from tests.factories import (
    CampaignFactory,
    InboundEmailFactory,
    LeadFactory,
    MailboxFactory,
    OutboundEmailFactory,
    SequenceStepFactory,
    SuperuserFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db
Category = InboundEmail.Category


def raw_reply(*, sender: str, subject: str, words: str, quoted: str = "") -> bytes:
    """A reply as a mail program sends it: the sender's words, then what it quotes."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, "alex@outreach.test", subject
    body = words + ("\n\nOn Mon, 1 Dec 2025 at 09:00, Alex Sender <alex@outreach.test> wrote:\n"
                    + "\n".join(f"> {line}" for line in quoted.splitlines()) if quoted else "")
    message.set_content(body)
    return message.as_bytes()


def a_desk(now=None) -> dict:
    """Replies of every kind in one campaign, as the desk sees them: the warm ones from people of various ages,
    the no's and maybe's, automatic mail, one reply already handled and one matched to no lead. ``anna``'s is a
    whole conversation: the first step, her out-of-office notice, the second step, her reply to it quoting it."""
    now = now or timezone.now()
    mailbox = MailboxFactory(name="Sales", from_email="alex@outreach.test", from_name="Alex Sender")
    campaign = CampaignFactory(name="DACH founders")
    other = CampaignFactory(name="Nordic CFOs")
    first = SequenceStepFactory(campaign=campaign, position=1)
    second = SequenceStepFactory(campaign=campaign, position=2)

    def lead(first_name, last_name, company, status=Lead.Status.INTERESTED, in_campaign=campaign):
        return LeadFactory(campaign=in_campaign, first_name=first_name, last_name=last_name, company=company,
                           email=f"{first_name.lower()}@{company.lower()}.example.com", status=status)

    def reply(to, category, words, *, ago, confidence=0.9, reasons=("phrase matched",), **fields):
        made = InboundEmailFactory(mailbox=mailbox, lead=to, from_email=to.email if to else "someone@nowhere.test",
                                   from_name=to.full_name if to else "", category=category, confidence=confidence,
                                   classification_reasons=list(reasons), new_text=words,
                                   received_at=now - ago, processed_at=now - ago, subject="Re: Quick question",
                                   **fields)
        return arrived(made, now - ago)

    anna = lead("Anna", "Berg", "Brightlane")
    step_one = OutboundEmailFactory(
        lead=anna, step=first, mailbox=mailbox, from_email="Alex Sender <alex@outreach.test>",
        subject="Quick question, Anna", status=OutboundEmail.Status.SENT, sent_at=now - timedelta(days=4),
        body_text="Hi Anna,\n\nWould Brightlane like fewer chores?\n\nAlex\n\n--\nExample Ltd, 1 High Street\n"
                  "Not interested? Unsubscribe: https://cam.example.com/u/abc/\n")
    step_two = OutboundEmailFactory(
        lead=anna, step=second, mailbox=mailbox, from_email="Alex Sender <alex@outreach.test>",
        subject="Re: Quick question, Anna", status=OutboundEmail.Status.SENT, sent_at=now - timedelta(days=1),
        body_text="Hi Anna,\n\nJust bringing this up again: 20 minutes on Thursday?\n\nAlex\n\n--\n"
                  "Example Ltd, 1 High Street\nNot interested? Unsubscribe: https://cam.example.com/u/abc/\n")
    words = "Sounds interesting — could we talk on Thursday afternoon? Our team of 40 loses hours to hand-offs."
    replies = {
        "anna": reply(anna, Category.POSITIVE, words, ago=timedelta(hours=2), outbound_email=step_two,
                      confidence=0.93, reasons=("asks for a call", "matched by In-Reply-To"),
                      raw_message=raw_reply(sender="Anna Berg <anna@brightlane.example.com>",
                                            subject="Re: Quick question, Anna", words=words,
                                            quoted=step_two.body_text)),
        "oliver": reply(lead("Oliver", "Stein", "Kranwerk", in_campaign=other), Category.POSITIVE,
                        "Yes, send me the details.", ago=timedelta(days=2)),
        "jonas": reply(lead("Jonas", "Keller", "Nordwerk"), Category.QUESTION, "What does it cost for a team of 40?",
                       ago=timedelta(hours=5)),
        "lena": reply(lead("Lena", "Fischer", "Alpenrad", status=Lead.Status.REFERRED), Category.REFERRAL,
                      "Maria Weber runs this for us — maria.weber@alpenrad.example.com.", ago=timedelta(days=1)),
        "tom": reply(lead("Tom", "Braun", "Holzbau", status=Lead.Status.NOT_INTERESTED), Category.NEGATIVE,
                     "Not interested, thanks.", ago=timedelta(minutes=30)),
        "sara": reply(lead("Sara", "Kim", "Lumen", status=Lead.Status.NURTURE), Category.NEUTRAL,
                      "Maybe next quarter.", ago=timedelta(days=3)),
        "stranger": reply(None, Category.POSITIVE, "Who is this? Happy to hear more.", ago=timedelta(days=5)),
        "peter": reply(lead("Peter", "Lang", "Fjord", status=Lead.Status.PAUSED), Category.OUT_OF_OFFICE,
                       "I am out of the office until Monday.", ago=timedelta(hours=1)),
        "bounce": reply(lead("Nora", "Ruf", "Gone", status=Lead.Status.BOUNCED), Category.BOUNCE_HARD, "",
                        ago=timedelta(hours=3), confidence=1.0, reasons=("550 5.1.1 user unknown",)),
        "handled": reply(lead("Eva", "Roth", "Segel"), Category.POSITIVE, "Booked, see you then.",
                         ago=timedelta(days=1), handled_at=now - timedelta(hours=20)),
        # Anna's out-of-office notice between the two steps, long handled.
        "anna_away": reply(anna, Category.OUT_OF_OFFICE, "I am travelling until Monday and will read your email then.",
                           ago=timedelta(days=3), outbound_email=step_one, handled_at=now - timedelta(days=3)),
    }
    return {"campaign": campaign, "other": other, "mailbox": mailbox, "anna": anna, "step_one": step_one,
            "step_two": step_two, **replies}


def arrived(reply: InboundEmail, moment) -> InboundEmail:
    """``reply`` as if CAM had read it at ``moment`` (``created_at`` is set by the database on insert)."""
    InboundEmail.objects.filter(pk=reply.pk).update(created_at=moment)
    reply.created_at = moment
    return reply


def staff_who_may_work(**fields):
    user = UserFactory(**fields)
    user.user_permissions.add(Permission.objects.get(codename="change_inboundemail"))
    return user


# --- handled ---

def test_it_marks_a_reply_handled_by_a_person_at_a_moment():
    reply = InboundEmailFactory(category=Category.POSITIVE)
    anna = staff_who_may_work(username="anna")
    moment = timezone.now() - timedelta(minutes=3)

    assert reply_mark_handled(inbound=reply, by=anna, now=moment) is True

    reply.refresh_from_db()
    assert (reply.handled_at, reply.handled_by) == (moment, anna)


def test_a_reply_handled_already_keeps_who_handled_it_and_when():
    reply = InboundEmailFactory(category=Category.POSITIVE)
    anna, ben = staff_who_may_work(username="anna"), staff_who_may_work(username="ben")
    first = timezone.now() - timedelta(hours=1)
    reply_mark_handled(inbound=reply, by=anna, now=first)

    assert reply_mark_handled(inbound=reply, by=ben) is False

    assert (reply.handled_at, reply.handled_by) == (first, anna)


def test_a_handled_reply_can_go_back_on_the_desk():
    reply = InboundEmailFactory(category=Category.POSITIVE)
    reply_mark_handled(inbound=reply, by=None)

    assert reply_mark_handled(inbound=reply, by=None, handled=False) is True

    reply.refresh_from_db()
    assert (reply.handled_at, reply.handled_by) == (None, None)


def test_many_replies_are_marked_in_one_statement(django_assert_num_queries):
    replies = InboundEmailFactory.create_batch(50, category=Category.POSITIVE)
    handled_before = replies[0]
    replies_mark_handled(reply_ids=[handled_before.pk], by=None)
    user = SuperuserFactory()

    with django_assert_num_queries(1):
        assert replies_mark_handled(reply_ids=[reply.pk for reply in replies], by=user) == 49
    with django_assert_num_queries(1):
        assert replies_mark_unhandled(reply_ids=[reply.pk for reply in replies[:10]]) == 10
    assert InboundEmail.objects.filter(handled_at__isnull=True).count() == 10


# --- assigned ---

def test_it_assigns_a_reply_to_a_person_who_may_work_replies_or_to_nobody():
    reply = InboundEmailFactory()
    anna = staff_who_may_work(username="anna")

    reply_assign(inbound=reply, assignee=anna)
    assert InboundEmail.objects.get(pk=reply.pk).assigned_to == anna

    reply_assign(inbound=reply, assignee=None)
    assert InboundEmail.objects.get(pk=reply.pk).assigned_to is None


@pytest.mark.parametrize("who", ["not staff", "inactive", "staff who may only view replies", "staff with no rights"])
def test_it_refuses_to_assign_a_reply_to_someone_who_may_not_work_replies(who):
    reply = InboundEmailFactory()
    user = {
        "not staff": lambda: staff_who_may_work(username="visitor", is_staff=False),
        "inactive": lambda: staff_who_may_work(username="gone", is_active=False),
        "staff who may only view replies": lambda: UserFactory(username="viewer"),
        "staff with no rights": lambda: UserFactory(username="nobody"),
    }[who]()
    if who == "staff who may only view replies":
        user.user_permissions.add(Permission.objects.get(codename="view_inboundemail"))

    with pytest.raises(NotAssignable, match=f"{user.username} cannot be given replies"):
        reply_assign(inbound=reply, assignee=user)

    assert InboundEmail.objects.get(pk=reply.pk).assigned_to is None


def test_the_people_who_may_be_given_replies_are_active_staff_who_may_change_them(django_assert_num_queries):
    group = Group.objects.create(name="Sales")
    group.permissions.add(Permission.objects.get(codename="change_inboundemail"))
    through_group = UserFactory(username="bea")
    through_group.groups.add(group)
    directly = staff_who_may_work(username="carl")
    boss = SuperuserFactory(username="ada")
    UserFactory(username="dan")  # staff, but may not change replies
    SuperuserFactory(username="eve", is_active=False)

    with django_assert_num_queries(1):
        assert [user.username for user in desk_staff()] == ["ada", "bea", "carl"]
    assert {boss, through_group, directly} == set(desk_staff())


# --- waiting ---

def test_it_counts_what_people_wrote_that_nobody_handled_and_the_positive_ones_among_them():
    a_desk()

    # anna, oliver, stranger (positive); jonas (question); lena (referral); tom, sara (no's and maybe's)
    assert replies_waiting() == 7
    assert replies_waiting(category=Category.POSITIVE) == 3


@pytest.mark.postgres_only
def test_the_desk_reads_its_first_page_off_its_index():
    a_desk()
    with connection.cursor() as cursor:
        # A handful of rows: without this the planner rightly reads the table whole; the test asks whether the
        # index serves the desk's filter and order at all.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")

    plan = (InboundEmail.objects.filter(category__in=PEOPLE_CATEGORIES).filter(handled_at__isnull=True)
            .order_by(*DESK_ORDER)[:50].explain())

    assert "inbound_desk_idx" in plan
    assert "Sort" not in plan
