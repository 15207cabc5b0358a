"""The reply desk's inbox: every reply a person should read, warmest first, in the *Outreach* group as *Replies*.

What people wrote is on the first tab — positive, question, referral, then the no's and maybe's, then the
requests to stop, newest first within each — and what machines sent (out-of-office notices, automatic replies,
bounces, complaints) on the second. Each row says who wrote (the lead, its company and address), in which
campaign, how CAM read it (the category, how sure, why), the first lines of their own words, and how long it
has waited; it opens the conversation's thread (``cam.admin.desk_thread``). The list opens on what nobody has
handled yet, and the sidebar counts the positive replies among them.

Handling and assigning go through ``cam.inbox.desk``, as the API's do. The raw list of every message read
(held bounces, unmatched mail, the raw message) stays under *Operations → Inbound emails* (``cam.admin.mail``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from unfold.admin import ModelAdmin
from unfold.contrib.filters.admin import ChoicesDropdownFilter, RelatedDropdownFilter

from cam.admin import desk_thread, labels
from cam.admin.base import ListChangeList, LongListMixin
from cam.admin.columns import EMPTY
from cam.admin.desk_thread import may_read_replies, may_work_replies, waited
from cam.admin.readable import short_datetime
from cam.inbox.desk import desk_staff, replies_assign, replies_mark_handled, replies_mark_unhandled, replies_waiting
from cam.models import InboundEmail, Reply
from cam.models.mail import AUTOMATIC_CATEGORIES, DESK_ORDER, PEOPLE_CATEGORIES

KIND = "kind"  # the tab: people (the default) or automatic
AUTOMATIC = "automatic"
# Warm replies (a person asked for more) waiting this long read as late.
WARM = (InboundEmail.Category.POSITIVE, InboundEmail.Category.QUESTION, InboundEmail.Category.REFERRAL)
LATE = timedelta(days=1)
# The reply's words shown in a row: the first lines (two on screen, the start of the rest on hover).
WORDS_SHOWN, WORDS_ON_HOVER = 300, 1000


def showing_automatic(request) -> bool:
    return request.GET.get(KIND) == AUTOMATIC


def desk_tabs(request) -> list[dict[str, Any]]:
    """The inbox's two tabs, keeping the filters in place: what people wrote (with how many wait) and what
    machines sent."""
    match = getattr(request, "resolver_match", None)
    if match is None or match.url_name != "cam_reply_changelist":
        return []
    kept = request.GET.copy()
    for key in (KIND, "p"):
        kept.pop(key, None)
    people = kept.urlencode()
    kept[KIND] = AUTOMATIC
    automatic = kept.urlencode()
    link = reverse("admin:cam_reply_changelist")
    # The theme reads the tabs twice a page (for the tab bar and for the sidebar): counted once.
    count = getattr(request, "_cam_replies_waiting", None)
    if count is None:
        count = request._cam_replies_waiting = replies_waiting()
    return [{"models": ["cam.reply"], "items": [
        {"title": f"From people · {count} waiting" if count else "From people", "link": f"{link}?{people}".rstrip("?"),
         "active": not showing_automatic(request)},
        {"title": "Automatic mail", "link": f"{link}?{automatic}", "active": showing_automatic(request)},
    ]}]


def positive_waiting_badge(request) -> str:
    """The sidebar's count on *Replies*: positive replies nobody has handled yet (nothing when there are none)."""
    count = replies_waiting(category=InboundEmail.Category.POSITIVE)
    return str(count) if count else ""


class HandledFilter(admin.SimpleListFilter):
    """Not handled (the default: the desk's work), handled, or all."""

    title = "handled"
    parameter_name = "handled"
    DEFAULT = "no"

    def lookups(self, request, model_admin):
        return [("no", "Not handled"), ("yes", "Handled"), ("all", "All")]

    def value(self):
        return super().value() or self.DEFAULT

    def queryset(self, request, queryset):
        if self.value() == "no":
            return queryset.filter(handled_at__isnull=True)
        if self.value() == "yes":
            return queryset.filter(handled_at__isnull=False)
        if self.value() == "all":
            return queryset
        # As Django's own filters do with a value they do not know: the list says its filters are wrong.
        raise IncorrectLookupParameters(f"handled={self.value()!r}: choose no, yes or all.")

    def choices(self, changelist):
        # No "All" of Django's own on top: "Not handled" is what an unfiltered desk shows.
        for lookup, title in self.lookup_choices:
            yield {"selected": self.value() == lookup, "display": title,
                   "query_string": changelist.get_query_string({self.parameter_name: lookup})}


class AssignedFilter(admin.SimpleListFilter):
    """Assigned to me, to nobody, or to one of the people who may work replies."""

    title = "assigned to"
    parameter_name = "assigned"

    def lookups(self, request, model_admin):
        return [("me", "Me"), ("nobody", "Nobody"),
                *((str(user.pk), user.get_username()) for user in desk_staff().exclude(pk=request.user.pk))]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "me":
            return queryset.filter(assigned_to=request.user)
        if value == "nobody":
            return queryset.filter(assigned_to__isnull=True)
        if value and value.isdigit():
            return queryset.filter(assigned_to_id=int(value))
        if value:
            raise IncorrectLookupParameters(f"assigned={value!r}: choose me, nobody or a user's id.")
        return queryset


class DeskChangeList(ListChangeList):
    """The inbox's list: ``kind`` picks the tab (read by ``ReplyAdmin.get_queryset``, not a filter of its own), and
    each row opens its conversation's thread."""

    def get_filters_params(self, params=None):
        lookup_params = super().get_filters_params(params)
        lookup_params.pop(KIND, None)
        return lookup_params

    def url_for_result(self, result) -> str:
        return reverse("admin:cam_reply_thread", args=[result.pk])

    def get_results(self, request) -> None:
        super().get_results(request)
        if not self.has_active_filters and not self.query:
            # A tab as it opens is the whole desk, not a filtered part of it: no "7 results (Show all)".
            self.full_result_count = self.result_count


@admin.register(Reply)
class ReplyAdmin(LongListMixin, ModelAdmin):
    list_display = ["lead_cell", "campaign_cell", "category_cell", "words_cell", "waited_cell", "assigned_cell"]
    list_display_links = ["lead_cell"]
    list_filter = [HandledFilter, ("category", ChoicesDropdownFilter), ("lead__campaign", RelatedDropdownFilter),
                   ("mailbox", RelatedDropdownFilter), AssignedFilter]
    list_filter_submit = True
    list_per_page = 50
    list_select_related = ["lead", "lead__campaign", "assigned_to", "handled_by"]
    list_defer = ("raw_message", "references", "failed_recipients", "lead__raw_data", "lead__score_breakdown",
                  "lead__status_reason", "lead__campaign__description")
    search_fields = ["from_email", "from_name", "subject", "new_text", "lead__email", "lead__first_name",
                     "lead__last_name", "lead__company"]
    actions = ["mark_handled", "mark_not_handled", "assign_to_me"]

    class Media:
        css = {"all": ["cam/admin/desk.css"]}

    # --- who may do what: the inbound emails' permissions (the proxy has none of its own) ---

    def has_view_permission(self, request, obj=None) -> bool:
        return may_read_replies(request)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # the rows are never edited as a form: the desk's buttons call the services

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_work_permission(self, request) -> bool:
        return may_work_replies(request)

    # --- the list ---

    def get_changelist(self, request, **kwargs):
        return DeskChangeList

    def get_queryset(self, request):
        categories = AUTOMATIC_CATEGORIES if showing_automatic(request) else PEOPLE_CATEGORIES
        return super().get_queryset(request).filter(category__in=categories)

    def get_ordering(self, request):
        # People: warmest first, then newest (the order inbound_desk_idx holds). Machines: newest first (the
        # replies' created_at index), so the tab reads a page off an index however many bounces piled up.
        return ["-created_at", "-id"] if showing_automatic(request) else DESK_ORDER

    def get_urls(self):
        def view(function, name: str):
            return path(f"<int:reply_id>/{name}/", self.admin_site.admin_view(function), name=f"cam_reply_{name}")

        return [view(lambda request, reply_id: desk_thread.thread_view(self, request, reply_id), "thread"),
                view(lambda request, reply_id: desk_thread.handled_view(self, request, reply_id), "handled"),
                view(lambda request, reply_id: desk_thread.answer_view(self, request, reply_id), "answer"),
                view(lambda request, reply_id: desk_thread.assign_view(self, request, reply_id), "assign"),
                view(lambda request, reply_id: desk_thread.reclassify_view(self, request, reply_id), "reclassify"),
                view(lambda request, reply_id: desk_thread.outcome_view(self, request, reply_id), "outcome"),
                *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # A reply's page on the desk is its conversation.
        return HttpResponseRedirect(reverse("admin:cam_reply_thread", args=[object_id]))

    # --- the row ---

    @admin.display(description="Lead")
    def lead_cell(self, reply: InboundEmail) -> SafeString:
        lead = reply.lead
        if lead is None:
            return format_html('<span class="cam-desk-who"><span class="cam-desk-name">{}</span></span>'
                               '<span class="cam-desk-email">{}</span>',
                               reply.from_name or reply.from_email or "(unknown sender)",
                               f"{reply.from_email} · no lead matched" if reply.from_name else "no lead matched")
        return format_html('<span class="cam-desk-who"><span class="cam-desk-name">{}</span>'
                           '<span class="cam-desk-company">{}</span></span><span class="cam-desk-email">{}</span>',
                           lead.full_name or reply.from_name or lead.email, lead.company, lead.email)

    @admin.display(description="Campaign")
    def campaign_cell(self, reply: InboundEmail) -> SafeString | str:
        if reply.lead is None:
            return EMPTY
        return format_html('<span class="cam-desk-campaign" title="{}">{}</span>', reply.lead.campaign.name,
                           reply.lead.campaign.name)

    @admin.display(description="Read as", ordering="category")
    def category_cell(self, reply: InboundEmail) -> SafeString:
        if not reply.category:
            return format_html('<span class="cam-desk-unread" title="{}">Not read yet</span>',
                               "; ".join(map(str, reply.classification_reasons)) or "Waiting for the next cycle")
        reasons = [str(reason) for reason in reply.classification_reasons]
        sure = (format_html('<span class="cam-desk-sure">{} %</span>', round(100 * reply.confidence))
                if reply.confidence is not None else "")
        return format_html('<span class="cam-desk-category" title="{}">{}{}</span><span class="cam-desk-why" '
                           'title="{}">{}</span>', "\n".join(reasons) or reply.get_category_display(),
                           labels.label(reply.category, reply.get_category_display(), labels.REPLY), sure,
                           "\n".join(reasons), reasons[0] if reasons else "")

    @admin.display(description="Their words")
    def words_cell(self, reply: InboundEmail) -> SafeString:
        words = " ".join(reply.new_text.split())
        return format_html('<span class="cam-desk-subject cam-cut cam-cut-fill" title="{}">{}</span>'
                           '<span class="cam-desk-words" title="{}">{}</span>', reply.subject,
                           reply.subject or "(no subject)", words[:WORDS_ON_HOVER],
                           words[:WORDS_SHOWN] or "(no words of their own)")

    @admin.display(description="Waiting")
    def waited_cell(self, reply: InboundEmail) -> SafeString:
        arrived = reply.received_at or reply.created_at
        if reply.handled_at is not None:
            by = reply.handled_by.get_username() if reply.handled_by else "an API client"
            return format_html('<span class="cam-desk-handled" title="Handled {} by {}">✓ Handled</span>'
                               '<span class="cam-desk-when">by {}</span>', short_datetime(reply.handled_at), by, by)
        now = timezone.now()
        # A warm reply waiting a day or more is late: someone may be waiting on the other side.
        late = reply.category in WARM and arrived is not None and now - arrived >= LATE
        return format_html('<span class="cam-desk-waited{}" title="Received {}">{}</span>',
                           " cam-desk-late" if late else "", short_datetime(arrived), waited(arrived, now))

    @admin.display(description="Assigned to")
    def assigned_cell(self, reply: InboundEmail) -> SafeString | str:
        if reply.assigned_to is None:
            return EMPTY
        return format_html('<span class="cam-desk-assignee">{}</span>', reply.assigned_to.get_username())

    # --- actions, through cam.inbox.desk ---

    @admin.action(description="Mark selected replies handled", permissions=["work"])
    def mark_handled(self, request, queryset):
        changed = replies_mark_handled(reply_ids=queryset.values_list("pk", flat=True), by=request.user)
        self.message_user(request, f"{changed} repl{'y' if changed == 1 else 'ies'} marked handled."
                          + ("" if changed == queryset.count() else " The others were handled already."),
                          messages.SUCCESS)

    @admin.action(description="Mark selected replies not handled", permissions=["work"])
    def mark_not_handled(self, request, queryset):
        changed = replies_mark_unhandled(reply_ids=queryset.values_list("pk", flat=True))
        self.message_user(request, f"{changed} repl{'y' if changed == 1 else 'ies'} back on the desk.",
                          messages.SUCCESS)

    @admin.action(description="Assign selected replies to me", permissions=["work"])
    def assign_to_me(self, request, queryset):
        changed = replies_assign(reply_ids=queryset.values_list("pk", flat=True), assignee=request.user)
        self.message_user(request, f"{changed} repl{'y' if changed == 1 else 'ies'} assigned to you.",
                          messages.SUCCESS)
