"""The hot tables keep no index another one already serves: each send rewrites an outbound row and its
lead, each import writes leads, and every index of their tables is written with them."""

from __future__ import annotations

import pytest
from django.db import connection

pytestmark = [pytest.mark.postgres_only, pytest.mark.django_db]

HOT_TABLES = ("outbound_emails", "cam_lead")


def indexes(table: str) -> list[tuple[str, list[str], bool, bool]]:
    """Each index of ``table``: its name, its key columns in order, whether it is unique, whether it is partial."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT i.relname,
                   ARRAY(SELECT a.attname FROM unnest(x.indkey[0:x.indnkeyatts - 1]) WITH ORDINALITY AS k(attnum, n)
                         JOIN pg_attribute AS a ON a.attrelid = x.indrelid AND a.attnum = k.attnum ORDER BY k.n),
                   x.indisunique, x.indpred IS NOT NULL
            FROM pg_index AS x JOIN pg_class AS i ON i.oid = x.indexrelid
            WHERE x.indrelid = %s::regclass
            """, [table])
        return [(name, list(columns), unique, partial) for name, columns, unique, partial in cursor.fetchall()]


@pytest.mark.parametrize("table", HOT_TABLES)
def test_no_index_of_a_hot_table_is_the_leading_part_of_another(table):
    found = indexes(table)
    redundant = [f"{name} ({', '.join(columns)}) is served by {other} ({', '.join(other_columns)})"
                 for name, columns, unique, partial in found if not unique and not partial and columns
                 for other, other_columns, _, other_partial in found
                 if other != name and not other_partial and other_columns[:len(columns)] == columns]
    assert redundant == []


def test_the_outbound_message_id_has_no_pattern_index_beside_its_unique_one():
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'outbound_emails'")
        definitions = [row[0] for row in cursor.fetchall()]
    assert not [definition for definition in definitions if "pattern_ops" in definition]


def plan_of(sql: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a handful of rows: the question is whether it can
        cursor.execute(f"EXPLAIN {sql}")
        return "\n".join(row[0] for row in cursor.fetchall())


def test_the_dashboards_outcomes_of_a_period_are_read_from_the_index_that_holds_only_those():
    """``lead_outcome_changed_idx`` leaves every other lead out, so its condition must name every status the
    figures count, or the count would read the whole table."""
    from django.test.utils import CaptureQueriesContext

    from cam.models import Lead
    from cam.reporting import REPORTED_OUTCOMES, overview

    with CaptureQueriesContext(connection) as captured:
        overview("7d")
    [sql] = [query["sql"] for query in captured.captured_queries if '"status_changed_at" >=' in query["sql"]]

    assert "lead_outcome_changed_idx" in plan_of(sql)
    [index] = [index for index in Lead._meta.indexes if index.name == "lead_outcome_changed_idx"]
    assert sorted(dict(index.condition.children)["status__in"]) == sorted(REPORTED_OUTCOMES)


def test_a_mailboxs_leads_are_found_on_the_index_of_leads_that_have_one():
    from cam.models import Lead
    from tests.factories import MailboxFactory

    sql = str(Lead.objects.filter(mailbox=MailboxFactory()).only("pk").query)
    assert "lead_mailbox_idx" in plan_of(sql)
