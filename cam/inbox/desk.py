"""The reply desk: who answers a reply, and whether it is done.

Staff work the replies in the back office's inbox and in a conversation's thread (``cam.admin.desk``); an API
client marks and assigns them through ``POST /api/cam/replies/{id}/handled/`` and ``…/assign/``. Every door
calls these functions, so a reply is handled and assigned the same way whichever door was used.

Each change is one conditional ``UPDATE`` over the replies named, whatever their number: two people marking
the same reply handled at once record the first of them, and the second changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import Q, QuerySet
from django.utils import timezone

from cam.models import InboundEmail
from cam.models.mail import DESK_WAITING

# The permission a person needs to work replies (mark them handled, have them assigned, reclassify them):
# the replies' own, as in the admin and the API.
WORK_PERMISSION = "change_inboundemail"


class NotAssignable(ValueError):
    """The person named cannot be given replies: no active staff member who may work them."""


def desk_staff() -> QuerySet[AbstractBaseUser]:
    """The people a reply can be assigned to: active staff members who may work replies (superusers, or
    holding *change inbound email* themselves or through a group), by username. One query."""
    may_work = (Q(is_superuser=True)
                | Q(user_permissions__codename=WORK_PERMISSION, user_permissions__content_type__app_label="cam")
                | Q(groups__permissions__codename=WORK_PERMISSION,
                    groups__permissions__content_type__app_label="cam"))
    users: QuerySet[AbstractBaseUser] = (get_user_model().objects.filter(is_active=True, is_staff=True)
                                         .filter(pk__in=get_user_model().objects.filter(may_work).values("pk"))
                                         .order_by("username"))
    return users


def replies_mark_handled(*, reply_ids: Iterable[int], by: AbstractBaseUser | None,
                         now: datetime | None = None) -> int:
    """Mark the replies handled now, by ``by`` (None when an API key did it). Replies already handled keep
    who handled them and when. Returns how many were marked."""
    return (InboundEmail.objects.filter(pk__in=list(reply_ids), handled_at__isnull=True)
            .update(handled_at=now or timezone.now(), handled_by=by))


def replies_mark_unhandled(*, reply_ids: Iterable[int]) -> int:
    """Put handled replies back on the desk, as if nobody had handled them. Returns how many changed."""
    return (InboundEmail.objects.filter(pk__in=list(reply_ids), handled_at__isnull=False)
            .update(handled_at=None, handled_by=None))


def reply_mark_handled(*, inbound: InboundEmail, by: AbstractBaseUser | None, handled: bool = True,
                       now: datetime | None = None) -> bool:
    """Mark one reply handled (or, with ``handled=False``, not handled); ``inbound`` is refreshed with the
    outcome. Returns whether this call changed it (False: it already was, perhaps by someone else)."""
    if handled:
        changed = replies_mark_handled(reply_ids=[inbound.pk], by=by, now=now)
    else:
        changed = replies_mark_unhandled(reply_ids=[inbound.pk])
    inbound.refresh_from_db(fields=["handled_at", "handled_by"])
    return bool(changed)


def assignee_check(assignee: AbstractBaseUser | None) -> None:
    """Raises ``NotAssignable`` unless ``assignee`` is None (nobody) or one of ``desk_staff()``."""
    if assignee is None:
        return
    if not desk_staff().filter(pk=assignee.pk).exists():
        raise NotAssignable(f"{assignee.get_username()} cannot be given replies: only active staff members who may "
                            f"change replies can (a superuser, or the permission “change inbound email”).")


def replies_assign(*, reply_ids: Iterable[int], assignee: AbstractBaseUser | None) -> int:
    """Give the replies to ``assignee`` to answer (None: to nobody). Raises ``NotAssignable`` for someone who
    may not work replies. Returns how many replies were given."""
    assignee_check(assignee)
    return InboundEmail.objects.filter(pk__in=list(reply_ids)).update(assigned_to=assignee)


def reply_assign(*, inbound: InboundEmail, assignee: AbstractBaseUser | None) -> None:
    """``replies_assign`` for one reply; ``inbound`` is refreshed with the outcome."""
    replies_assign(reply_ids=[inbound.pk], assignee=assignee)
    inbound.refresh_from_db(fields=["assigned_to"])


def replies_waiting(*, category: str = "") -> int:
    """How many replies people wrote that nobody has handled yet (of ``category`` when given): the desk's
    sidebar badge counts the positive ones. Read off ``inbound_desk_idx``."""
    waiting = InboundEmail.objects.filter(DESK_WAITING)
    return (waiting.filter(category=category) if category else waiting).count()
