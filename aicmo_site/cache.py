"""Django's database cache with an atomic ``incr``.

API throttles count requests with ``cache.incr`` (and ``cache.add`` for a window's first request).
Redis increments atomically; Django's database cache reads the value and writes it back in two
separate steps, so two processes counting at once would both write the same number and let extra
requests through. Here the read and the write happen in one transaction that holds the row:
``SELECT … FOR UPDATE`` on PostgreSQL, and on SQLite the IMMEDIATE transaction (see settings) that
takes the write lock when it begins. It is also cheaper: one read and one update.
"""

from __future__ import annotations

import base64
import pickle

from django.core.cache.backends.db import DatabaseCache as DjangoDatabaseCache
from django.db import connections, models, router, transaction
from django.utils import timezone


class DatabaseCache(DjangoDatabaseCache):
    _table: str  # set by Django's BaseDatabaseCache.__init__, which its stubs leave out

    def incr(self, key, delta=1, version=None):
        key = self.make_and_validate_key(key, version=version)
        db = router.db_for_write(self.cache_model_class)
        connection = connections[db]
        quote = connection.ops.quote_name
        table, value_column, key_column = quote(self._table), quote("value"), quote("cache_key")
        lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        # Read and write the row exactly as Django's own get() and set() do (base64 of a pickle).
        expression = models.Expression(output_field=models.DateTimeField())
        converters = connection.ops.get_db_converters(expression) + expression.get_db_converters(connection)
        with transaction.atomic(using=db), connection.cursor() as cursor:
            cursor.execute(f"SELECT {value_column}, {quote('expires')} FROM {table} WHERE {key_column} = %s{lock}",
                           [key])
            row = cursor.fetchone()
            if row is not None:
                stored, expires = row
                for converter in converters:
                    expires = converter(expires, expression, connection)
            if row is None or expires < timezone.now():
                raise ValueError(f"Key '{key}' not found.")
            value = pickle.loads(base64.b64decode(connection.ops.process_clob(stored).encode())) + delta
            encoded = base64.b64encode(pickle.dumps(value, self.pickle_protocol)).decode("latin1")
            cursor.execute(f"UPDATE {table} SET {value_column} = %s WHERE {key_column} = %s", [encoded, key])
        return value
