"""Django's SQLite backend, told the real bound-parameter limit of the SQLite it runs on.

Django assumes SQLite's historic limit of 999 parameters per statement and splits bulk inserts and
updates into many small statements. SQLite has allowed 32,766 since 3.32; asking the library keeps
a batch of a thousand leads to one statement, as on PostgreSQL.
"""

import sqlite3

from django.db.backends.sqlite3 import base, features
from django.utils.functional import cached_property


class DatabaseFeatures(features.DatabaseFeatures):
    # The stubs declare a plain attribute; Django's own backends override it with a property too.
    @cached_property
    def max_query_params(self) -> int:  # type: ignore[override]
        self.connection.ensure_connection()
        return self.connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)


class DatabaseWrapper(base.DatabaseWrapper):
    features_class = DatabaseFeatures
