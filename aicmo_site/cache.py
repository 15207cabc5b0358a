"""Django's database cache with an atomic ``incr`` and an atomic read-modify-write, ``update``.

API throttles count requests with ``cache.incr`` (and ``cache.add`` for a window's first request).
Redis increments atomically; Django's database cache reads the value and writes it back in two
separate steps, so two processes counting at once would both write the same number and let extra
requests through. Here the read and the write happen in one transaction that holds the row:
``SELECT … FOR UPDATE`` on PostgreSQL, and on SQLite the IMMEDIATE transaction (see settings) that
takes the write lock when it begins. It is also cheaper: one read and one update.

``update`` does the same for any change of a value: the shared Resend rate limit keeps its state
this way when there is no Redis (see cam.outreach.providers.resend_rate).
"""

from __future__ import annotations

import base64
import pickle
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.db import DatabaseCache as DjangoDatabaseCache
from django.db import IntegrityError, connections, models, router, transaction
from django.utils import timezone


class DatabaseCache(DjangoDatabaseCache):
    _table: str  # set by Django's BaseDatabaseCache.__init__, which its stubs leave out

    def incr(self, key, delta=1, version=None):
        key = self.make_and_validate_key(key, version=version)
        db = router.db_for_write(self.cache_model_class)
        connection = connections[db]
        with transaction.atomic(using=db), connection.cursor() as cursor:
            row = self._locked_row(cursor, connection, key)
            if row is None or row[1] < timezone.now():
                raise ValueError(f"Key '{key}' not found.")
            value = row[0] + delta
            cursor.execute(f"UPDATE {self._quoted(connection)} SET {connection.ops.quote_name('value')} = %s "
                           f"WHERE {connection.ops.quote_name('cache_key')} = %s", [self._encoded(value), key])
        return value

    def update(self, key: str, change: Callable[[Any], Any], timeout: float | None = DEFAULT_TIMEOUT,
               version: int | None = None) -> Any:
        """Store ``change(value)`` as the new value of ``key`` and return it; ``value`` is None when the key
        is missing or expired. No other ``update`` or ``incr`` of the key runs in between, in any process.

        ``change`` may be called more than once (when another process stores the key first), so it
        must not have side effects beyond its last call.
        """
        key = self.make_and_validate_key(key, version=version)
        db = router.db_for_write(self.cache_model_class)
        connection = connections[db]
        quote = connection.ops.quote_name
        table = self._quoted(connection)
        seconds = self.get_backend_timeout(timeout)
        expires = datetime.max if seconds is None else datetime.fromtimestamp(seconds, tz=UTC if settings.USE_TZ
                                                                                     else None)
        for attempt in range(2):
            try:
                with transaction.atomic(using=db), connection.cursor() as cursor:
                    row = self._locked_row(cursor, connection, key)
                    new = change(None if row is None or row[1] < timezone.now() else row[0])
                    stored = [self._encoded(new), connection.ops.adapt_datetimefield_value(expires)]
                    if row is None:
                        cursor.execute(f"INSERT INTO {table} ({quote('cache_key')}, {quote('value')}, "
                                       f"{quote('expires')}) VALUES (%s, %s, %s)", [key, *stored])
                    else:
                        cursor.execute(f"UPDATE {table} SET {quote('value')} = %s, {quote('expires')} = %s "
                                       f"WHERE {quote('cache_key')} = %s", [*stored, key])
                return new
            except IntegrityError:  # another process inserted the key first: now there is a row to lock
                if attempt:
                    raise
        raise AssertionError("unreachable")

    # Rows are read and written exactly as Django's own get() and set() do (base64 of a pickle).

    def _quoted(self, connection) -> str:
        return connection.ops.quote_name(self._table)

    def _locked_row(self, cursor, connection, key: str) -> tuple[Any, datetime] | None:
        """The key's value and expiry, its row locked until the transaction ends; None when missing."""
        quote = connection.ops.quote_name
        lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        cursor.execute(f"SELECT {quote('value')}, {quote('expires')} FROM {self._quoted(connection)} "
                       f"WHERE {quote('cache_key')} = %s{lock}", [key])
        row = cursor.fetchone()
        if row is None:
            return None
        stored, expires = row
        expression = models.Expression(output_field=models.DateTimeField())
        for converter in connection.ops.get_db_converters(expression) + expression.get_db_converters(connection):
            expires = converter(expires, expression, connection)
        return pickle.loads(base64.b64decode(connection.ops.process_clob(stored).encode())), expires

    def _encoded(self, value: Any) -> str:
        return base64.b64encode(pickle.dumps(value, self.pickle_protocol)).decode("latin1")
