"""The suppression list as a service: one spelling of an address or domain, matched in any spelling."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from cam.leads import lead_unsubscribe
from cam.models import Lead, OutboundEmail, Suppression
from cam.suppressions import suppressed_addresses, suppression_add, suppression_normalize
from tests.factories import LeadFactory, OutboundEmailFactory, SuppressionFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("given", "stored"), [
    ({"email": " Üser@XN--EXMPLE-CUA.COM "}, ("üser@exämple.com", "")),
    ({"email": "Jane@Acme.TEST"}, ("jane@acme.test", "")),
    ({"domain": "@XN--EXMPLE-CUA.COM"}, ("", "exämple.com")),
    ({"domain": " Printer.LOCAL "}, ("", "printer.local")),
])
def test_it_stores_an_address_or_domain_as_a_lead_spells_it(given, stored):
    assert suppression_normalize(**given) == stored


@pytest.mark.parametrize(("given", "field"), [
    ({"email": "not an address"}, "email"),
    ({"email": "j" * 250 + "@acme.de"}, "email"),
    ({"domain": "no_such domain"}, "domain"),
    ({"domain": "anna@acme.de"}, "domain"),
])
def test_it_refuses_what_is_no_address_or_domain_by_field(given, field):
    with pytest.raises(ValidationError) as caught:
        suppression_normalize(**given)
    assert list(caught.value.message_dict) == [field]


def test_adding_a_second_spelling_keeps_the_first_row():
    first, created = suppression_add(domain="xn--exmple-cua.com", source="test")
    again, created_again = suppression_add(domain="Exämple.com", reason=Suppression.Reason.COMPLAINT, source="test")

    assert (created, created_again, again.pk, again.reason) == (True, False, first.pk, "MANUAL")
    assert first.domain == "exämple.com"


@pytest.mark.parametrize("row", [{"email": "üser@exämple.com"}, {"email": "üser@xn--exmple-cua.com"},
                                 {"email": "", "domain": "exämple.com"}, {"email": "", "domain": "xn--exmple-cua.com"}])
def test_it_matches_an_address_in_any_spelling_against_a_row_in_any_spelling(row):
    SuppressionFactory(**row)
    given = ["üser@exämple.com", "üser@xn--exmple-cua.com", "other@example.com"]

    found = suppressed_addresses(given)

    assert sorted(found) == ["üser@exämple.com", "üser@xn--exmple-cua.com"]
    assert "exämple.com" in found["üser@xn--exmple-cua.com"]


def test_it_looks_up_in_one_query(django_assert_num_queries):
    SuppressionFactory(email="", domain="xn--exmple-cua.com")
    with django_assert_num_queries(1):
        assert list(suppressed_addresses(["a@exämple.com", "b@acme.de", "c@exämple.com"])) == [
            "a@exämple.com", "c@exämple.com"]


@pytest.mark.parametrize("row", ["example.com", "xn--exmple-cua.com"])
def test_a_domain_covers_every_domain_under_it_and_nothing_beside_it(row):
    SuppressionFactory(email="", domain=row)
    domain = "example.com" if row == "example.com" else "exämple.com"
    given = [f"anna@{domain}", f"anna@mail.{domain}", f"anna@a.b.{domain}", f"anna@not{domain}",
             f"anna@{domain}.evil.test", "anna@com"]

    found = suppressed_addresses(given)

    assert sorted(found) == sorted(given[:3])
    assert found[f"anna@a.b.{domain}"] == (f"the domain {domain} is on the suppression list, "
                                           f"which covers a.b.{domain}")
    assert found[f"anna@{domain}"] == f"the domain {domain} is on the suppression list"


def test_the_nearest_listed_domain_is_named():
    SuppressionFactory(email="", domain="example.com")
    SuppressionFactory(email="", domain="mail.example.com")

    assert suppressed_addresses(["anna@eu.mail.example.com"]) == {
        "anna@eu.mail.example.com": "the domain mail.example.com is on the suppression list, which covers "
                                    "eu.mail.example.com"}


@pytest.mark.parametrize("count", [1, 50])
def test_it_looks_up_subdomains_in_one_query_whatever_the_number_of_addresses(django_assert_num_queries, count):
    SuppressionFactory(email="", domain="example.com")
    given = [f"lead{n}@team{n}.eu.example.com" for n in range(count)] + [f"lead{n}@acme.de" for n in range(count)]

    with django_assert_num_queries(1):
        found = suppressed_addresses(given)

    assert len(found) == count


def test_an_unsubscribe_stops_the_address_in_every_spelling():
    lead = LeadFactory(email="üser@exämple.com", status=Lead.Status.IN_SEQUENCE)
    other = LeadFactory(email="üser@xn--exmple-cua.com", status=Lead.Status.IN_SEQUENCE)
    waiting = OutboundEmailFactory(lead=other, status=OutboundEmail.Status.PENDING)

    lead_unsubscribe(lead=lead, source="test")

    assert Suppression.objects.get().email == "üser@exämple.com"
    other.refresh_from_db()
    waiting.refresh_from_db()
    assert (other.status, waiting.status) == (Lead.Status.UNSUBSCRIBED, OutboundEmail.Status.CANCELLED)


def test_an_unsubscribe_keeps_a_suppression_stored_in_another_spelling():
    row = SuppressionFactory(email="üser@xn--exmple-cua.com", reason=Suppression.Reason.MANUAL)
    lead = LeadFactory(email="üser@exämple.com", status=Lead.Status.IN_SEQUENCE)

    lead_unsubscribe(lead=lead, source="test")

    assert list(Suppression.objects.values_list("pk", flat=True)) == [row.pk]
    assert Lead.objects.get(pk=lead.pk).status == Lead.Status.UNSUBSCRIBED


@pytest.mark.postgres_only
def test_a_large_batch_is_looked_up_on_the_lists_indexes_not_by_reading_it_whole():
    """Their unique indexes leave empty values out: PostgreSQL proves a list of values non-empty only up to 100
    of them, so the lookup says so itself, or a batch of a few dozen addresses read the whole list."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    SuppressionFactory(email="jane@acme.test", domain="")
    with CaptureQueriesContext(connection) as captured:
        found = suppressed_addresses([f"lead{n}@company{n}.example.com" for n in range(300)] + ["Jane@ACME.test"])
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a handful of rows: the question is whether it can
        cursor.execute(f"EXPLAIN {captured.captured_queries[0]['sql']}")
        plan = "\n".join(row[0] for row in cursor.fetchall())

    assert found == {"Jane@ACME.test": "jane@acme.test is on the suppression list"}
    assert "suppression_unique_email" in plan and "suppression_unique_domain" in plan
