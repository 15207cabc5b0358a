"""Named locks with a time to live, stored in the database so they hold across processes and hosts.

A lease is taken with one INSERT or one conditional UPDATE, both atomic on PostgreSQL and SQLite:
two processes racing for the same name can never both succeed, and a holder that died without
releasing is replaced once its lease has expired.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from cam.models import Lease


def lease_acquire(*, name: str, holder: str, ttl_seconds: int | None = None) -> bool:
    """Take the lease ``name`` for ``holder``; True if it is now held by ``holder``.

    Succeeds when nobody holds it, when the current lease has expired, or when ``holder`` already
    holds it (then it is extended).
    """
    now = timezone.now()
    expires_at = now + timedelta(seconds=ttl_seconds or settings.AICMO_CAM_LOCK_TTL_SECONDS)
    taken = Lease.objects.filter(Q(expires_at__lte=now) | Q(holder=holder), name=name).update(
        holder=holder, acquired_at=now, expires_at=expires_at)
    if taken:
        return True
    try:
        with transaction.atomic():
            Lease.objects.create(name=name, holder=holder, acquired_at=now, expires_at=expires_at)
    except IntegrityError:
        return False  # someone else holds it and it has not expired
    return True


def lease_renew(*, name: str, holder: str, ttl_seconds: int | None = None) -> bool:
    """Push the expiry of a lease we hold; False if it was lost (expired and taken over)."""
    expires_at = timezone.now() + timedelta(seconds=ttl_seconds or settings.AICMO_CAM_LOCK_TTL_SECONDS)
    return bool(Lease.objects.filter(name=name, holder=holder).update(expires_at=expires_at))


def lease_release(*, name: str, holder: str) -> bool:
    """Give up a lease we hold. Releasing one we no longer hold changes nothing."""
    deleted, _ = Lease.objects.filter(name=name, holder=holder).delete()
    return bool(deleted)
