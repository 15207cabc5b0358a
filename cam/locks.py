"""Named locks with a time to live, stored in the database so they hold across processes and hosts.

A lease is taken with one conditional upsert, atomic on PostgreSQL and SQLite:
two processes racing for the same name can never both succeed, and a holder that died without
releasing is replaced once its lease has expired.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from cam.models import Lease


def lease_acquire(*, name: str, holder: str, ttl_seconds: int | None = None) -> bool:
    """Take the lease ``name`` for ``holder``; True if it is now held by ``holder``.

    Succeeds when nobody holds it, when the current lease has expired, or when ``holder`` already
    holds it (then it is extended). One statement: an insert that, when the name is taken, updates the
    row only if its lease expired or is the holder's own (PostgreSQL and SQLite both lock the row for it).
    The times are adapted as the ORM adapts them, so that SQLite stores and compares them in the one text
    form the other queries of the table use.
    """
    now = timezone.now()
    expires_at = now + timedelta(seconds=ttl_seconds or settings.AICMO_CAM_LOCK_TTL_SECONDS)
    table = connection.ops.quote_name(Lease._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"""
            INSERT INTO {table} (name, holder, acquired_at, expires_at) VALUES (%s, %s, %s, %s)
            ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, acquired_at = excluded.acquired_at,
                                             expires_at = excluded.expires_at
            WHERE {table}.expires_at <= excluded.acquired_at OR {table}.holder = excluded.holder
            RETURNING 1""", [name, holder, *map(connection.ops.adapt_datetimefield_value, (now, expires_at))])
        return cursor.fetchone() is not None


def lease_renew(*, name: str, holder: str, ttl_seconds: int | None = None) -> bool:
    """Push the expiry of a lease we hold; False if it was lost (expired and taken over)."""
    expires_at = timezone.now() + timedelta(seconds=ttl_seconds or settings.AICMO_CAM_LOCK_TTL_SECONDS)
    return bool(Lease.objects.filter(name=name, holder=holder).update(expires_at=expires_at))


def lease_release(*, name: str, holder: str) -> bool:
    """Give up a lease we hold. Releasing one we no longer hold changes nothing."""
    deleted, _ = Lease.objects.filter(name=name, holder=holder).delete()
    return bool(deleted)
