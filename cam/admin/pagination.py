"""Pages of a list over a table that grows to millions of rows.

Django's admin counts the rows of every list it shows. Counting a filtered list is what staff asked for (and
an index usually makes it quick); counting a whole table of millions of rows reads all of it, on every page
view, for a figure nobody needs exactly. So a whole, unfiltered table on PostgreSQL shows the planner's own
estimate of its size (``pg_class.reltuples``, kept up to date by autovacuum's ANALYZE) once that estimate is
large; below it, and whenever a filter or a search is applied, the count is exact. Either way it is one query.
"""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property

# Below this many rows an exact count costs little (a few milliseconds): it is always made.
ESTIMATE_FROM = 100_000


def whole_table(queryset: QuerySet) -> bool:
    """True when ``queryset`` reads every row of its table once: no filter, no DISTINCT, no grouping, no slice,
    and no join that could repeat a row (one along a reverse or many-to-many relation)."""
    query = queryset.query
    repeats = any(getattr(getattr(join, "join_field", None), attribute, False)
                  for join in query.alias_map.values() for attribute in ("one_to_many", "many_to_many"))
    return (not query.where and not query.distinct and query.group_by is None and not query.combinator
            and query.low_mark == 0 and query.high_mark is None and not repeats)


class EstimatedCountPaginator(Paginator):
    """A paginator whose count is PostgreSQL's estimate for a whole large table, exact otherwise."""

    # Included by the admin's pagination template (admin/pagination.html), in place of the theme's own.
    template_name = "admin/cam/pagination_estimated.html"
    estimate_from = ESTIMATE_FROM

    # True once the count is the estimate, so the page says "about".
    estimated = False

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet) or not whole_table(queryset):
            return super().count
        connection = connections[queryset.db]
        if connection.vendor != "postgresql":
            return super().count
        table = connection.ops.quote_name(queryset.model._meta.db_table)
        # One statement either way: the exact count is an InitPlan, which PostgreSQL runs only when the CASE
        # reaches it. reltuples is -1 for a table never analysed, so a new table is counted.
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT CASE WHEN reltuples >= %s THEN reltuples::bigint ELSE (SELECT COUNT(*) FROM {table}) END, "
                f"reltuples >= %s FROM pg_class WHERE oid = %s::regclass",
                [self.estimate_from, self.estimate_from, table])
            count, self.estimated = cursor.fetchone()
        return int(count)

    @property
    def count_text(self) -> str:
        """The count as the page shows it: "about 1,230,000" (three significant digits) when it is the estimate."""
        if not self.estimated:
            return f"{self.count:,}"
        return f"about {round(self.count, 3 - len(str(self.count))):,}"
