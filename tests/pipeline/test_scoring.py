"""Scoring leads against the campaign's ideal-customer profile, with the reason for every point."""

from __future__ import annotations

import random

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cam.models import Lead
from cam.pipeline.scoring import _Plan, leads_score, score_lead
from tests.factories import CampaignFactory, LeadFactory

pytestmark = pytest.mark.django_db

Status = Lead.Status


def profile(**overrides):
    """A campaign looking for German software CTOs at companies of 10–500 people."""
    return CampaignFactory(**{"icp_industries": ["Software"], "icp_title_keywords": ["CTO", "head of"],
                              "icp_countries": ["DE", "AT"], "icp_company_size_min": 10,
                              "icp_company_size_max": 500, **overrides})


def lead(**fields):
    return Lead(**{"email": "anna@acme-gmbh.de", "industry": "software", "title": "CTO", "country": "DE",
                   "company_size": 120, **fields})


def test_it_gives_a_lead_matching_every_criterion_100_with_the_breakdown():
    score = score_lead(lead(industry="Enterprise Software", title="Deputy CTO"), profile())

    assert score.value == 100
    assert score.breakdown == {
        "industry": {"matched": True, "points": 30, "weight": 30,
                     "detail": "industry 'Enterprise Software' matches 'Software'"},
        "title": {"matched": True, "points": 30, "weight": 30, "detail": "title 'Deputy CTO' contains 'CTO'"},
        "country": {"matched": True, "points": 20, "weight": 20, "detail": "country 'DE' is in the profile"},
        "company_size": {"matched": True, "points": 20, "weight": 20,
                         "detail": "company size 120 is within 10–500"},
        "total": {"base": 100, "penalties": 0, "score": 100},
    }


def test_it_says_why_each_criterion_did_not_match():
    score = score_lead(lead(industry="Retail", title="Director of Sales", country="FR", company_size=5000), profile())

    assert score.value == 0
    assert {name: (part["matched"], part["points"], part["detail"]) for name, part in score.breakdown.items()
            if name != "total"} == {
        "industry": (False, 0, "industry 'Retail' is not in the profile"),
        "title": (False, 0, "title 'Director of Sales' has no profile keyword"),
        "country": (False, 0, "country 'FR' is not in the profile"),
        "company_size": (False, 0, "company size 5000 is not within 10–500"),
    }


def test_it_counts_unknown_values_as_no_match():
    score = score_lead(lead(industry="", title="", country="", company_size=None), profile())

    assert score.value == 0
    assert [score.breakdown[name]["detail"] for name in ("industry", "title", "country", "company_size")] == [
        "industry unknown", "title unknown", "country unknown", "company size unknown"]


@pytest.mark.parametrize(("title", "matched"), [
    ("CTO", True), ("cto & co-founder", True), ("Head of  Engineering", True), ("Director", False),
    ("CTOs assistant", False), ("Headhunter", False),
])
def test_it_matches_title_keywords_as_whole_words(title, matched):
    assert score_lead(lead(title=title), profile()).breakdown["title"]["matched"] is matched


@pytest.mark.parametrize(("country", "matched"), [("de", True), (" AT ", True), ("Deutschland", False)])
def test_it_matches_countries_ignoring_case(country, matched):
    assert score_lead(lead(country=country), profile()).breakdown["country"]["matched"] is matched


@pytest.mark.parametrize(("low", "high", "size", "detail", "matched"), [
    (50, None, 50, "company size 50 is within 50–∞", True),
    (50, None, 49, "company size 49 is not within 50–∞", False),
    (None, 200, 200, "company size 200 is within 0–200", True),
    (None, 200, 201, "company size 201 is not within 0–200", False),
])
def test_it_matches_a_company_size_range_open_at_one_end(low, high, size, detail, matched):
    part = score_lead(lead(company_size=size), profile(icp_company_size_min=low, icp_company_size_max=high)
                      ).breakdown["company_size"]

    assert (part["matched"], part["detail"]) == (matched, detail)


def test_it_scales_points_to_the_criteria_the_profile_configures():
    campaign = profile(icp_title_keywords=[], icp_company_size_min=None, icp_company_size_max=None)

    score = score_lead(lead(country="FR"), campaign)

    # industry (30) matched out of industry + country (30 + 20).
    assert score.value == 60
    assert set(score.breakdown) == {"industry", "country", "total"}


def test_it_leaves_out_a_criterion_weighted_zero():
    score = score_lead(lead(country="FR"), profile(weight_country=0))

    assert score.value == 100
    assert "country" not in score.breakdown


def test_it_gives_100_when_the_profile_configures_nothing():
    campaign = profile(icp_industries=[], icp_title_keywords=[], icp_countries=[], icp_company_size_min=None,
                       icp_company_size_max=None)

    assert score_lead(lead(), campaign).breakdown == {"total": {"base": 100, "penalties": 0, "score": 100}}


def test_it_takes_off_the_free_mail_and_role_account_penalties():
    campaign = profile(penalty_free_mail=15, penalty_role_account=25)

    free = score_lead(lead(is_free_mail=True), campaign)
    role = score_lead(lead(is_role_account=True), campaign)
    both = score_lead(lead(is_free_mail=True, is_role_account=True), campaign)

    assert (free.value, role.value, both.value) == (85, 75, 60)
    assert both.breakdown["free_mail"] == {"points": -15, "detail": "free-mail address"}
    assert both.breakdown["role_account"] == {"points": -25, "detail": "role account"}
    assert both.breakdown["total"] == {"base": 100, "penalties": 40, "score": 60}


def test_it_takes_off_no_penalty_set_to_zero():
    score = score_lead(lead(is_free_mail=True), profile(penalty_free_mail=0))

    assert score.value == 100
    assert "free_mail" not in score.breakdown


def test_it_clamps_a_score_pushed_below_zero_to_zero():
    campaign = profile(penalty_free_mail=100, penalty_role_account=100)

    score = score_lead(lead(title="Intern", is_free_mail=True, is_role_account=True), campaign)

    assert score.value == 0
    assert score.breakdown["total"] == {"base": 70, "penalties": 200, "score": 0}


def test_it_scores_the_uncontacted_leads_of_the_campaign():
    campaign = profile()
    fits = LeadFactory(campaign=campaign, industry="Software", title="CTO", country="DE", company_size=50)
    misfit = LeadFactory(campaign=campaign, industry="Retail", title="Intern", country="FR", company_size=None,
                         status=Status.DISQUALIFIED)
    qualified = LeadFactory(campaign=campaign, status=Status.QUALIFIED, company_size=50)
    in_sequence = LeadFactory(campaign=campaign, status=Status.IN_SEQUENCE, current_step=1)
    interested = LeadFactory(campaign=campaign, status=Status.INTERESTED)
    contacted = LeadFactory(campaign=campaign, status=Status.NEW, current_step=1)
    elsewhere = LeadFactory(industry="Software", title="CTO", country="DE")

    assert leads_score(campaign=campaign) == {"scored": 3, "changed": 3}

    scores = dict(Lead.objects.values_list("pk", "score"))
    assert {lead.pk: scores[lead.pk] for lead in (fits, misfit, qualified)} == {
        fits.pk: 100, misfit.pk: 0, qualified.pk: 100}
    assert [scores[lead.pk] for lead in (in_sequence, interested, contacted, elsewhere)] == [None] * 4
    fits.refresh_from_db()
    assert fits.score_breakdown["total"] == {"base": 100, "penalties": 0, "score": 100}
    assert fits.scored_at is not None


def test_it_rescores_in_one_run_after_the_profile_or_the_lead_changes():
    campaign = profile()
    anna = LeadFactory(campaign=campaign, title="CTO", company_size=50)
    ben = LeadFactory(campaign=campaign, title="CTO", company_size=50)
    leads_score(campaign=campaign)

    Lead.objects.filter(pk=anna.pk).update(title="Intern")
    campaign.icp_countries = ["CH"]
    campaign.save()

    assert leads_score(campaign=campaign) == {"scored": 2, "changed": 2}
    assert dict(Lead.objects.values_list("pk", "score")) == {anna.pk: 50, ben.pk: 80}
    assert leads_score(campaign=campaign) == {"scored": 2, "changed": 0}


def test_it_scores_only_unscored_leads_when_asked():
    campaign = profile()
    scored = LeadFactory(campaign=campaign, score=7)
    fresh = LeadFactory(campaign=campaign, company_size=50)

    assert leads_score(campaign=campaign, only_unscored=True) == {"scored": 1, "changed": 1}
    assert dict(Lead.objects.values_list("pk", "score")) == {scored.pk: 7, fresh.pk: 100}


def test_it_works_through_the_leads_in_batches():
    campaign = profile()
    LeadFactory.create_batch(5, campaign=campaign, company_size=50)

    assert leads_score(campaign=campaign, batch_size=2) == {"scored": 5, "changed": 5}
    assert set(Lead.objects.values_list("score", flat=True)) == {100}


def queries_to_score(count: int) -> int:
    campaign = profile()
    Lead.objects.bulk_create(Lead(campaign=campaign, email=f"lead{n}@acme-gmbh.de", industry="Software",
                                  title="CTO" if n % 2 else "Intern", country="DE", company_size=n)
                             for n in range(count))
    with CaptureQueriesContext(connection) as scoring:
        assert leads_score(campaign=campaign) == {"scored": count, "changed": count}
    return len(scoring)


def test_it_scores_in_the_same_number_of_queries_for_10_and_1000_leads():
    assert queries_to_score(10) == queries_to_score(1000)


def test_each_batch_costs_one_statement_on_postgresql_and_two_on_sqlite(django_assert_num_queries):
    campaign = profile()
    LeadFactory.create_batch(5, campaign=campaign, company_size=50)
    postgres = connection.vendor == "postgresql"
    # PostgreSQL: the first batch's values, then one UPDATE per batch that also reads the next one's values.
    # SQLite: each batch's values, then its UPDATE.
    with django_assert_num_queries(1 + 3 if postgres else 2 * 3):
        assert leads_score(campaign=campaign, batch_size=2) == {"scored": 5, "changed": 5}
    with django_assert_num_queries(1 + 2 if postgres else 2 * 2):
        assert leads_score(campaign=campaign, batch_size=4) == {"scored": 5, "changed": 0}


# --- the database's scoring is score_lead's, to the character ---

WORDS = ["Software", "software ", "SaaS", "Head of Sales", "head  of", "CTO", "cto", "Co-CTO", "CTOs", "Ärzte", "ärzte",
         "Straße", "DE", "de", " AT", "it's", 'say "hi"', "back\\slash", "tab\there", "new\nline", "日本", "É", "",
         "Retail", "re", "a", "%", "_", "'", "ß", "İstanbul"]


def random_text(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 3)))


def lead_text(rng: random.Random, wanted: list[str]) -> str:
    """Often one of the profile's own values, as people type it (other case, spaces), else anything."""
    if wanted and rng.random() < 0.5:
        value = rng.choice(wanted)
        return rng.choice([value, value.upper(), f"  {value.lower()} ", f"Senior {value}"])
    return random_text(rng)


def random_profile(rng: random.Random):
    low = rng.choice([None, 0, 10, 50, 500])
    high = rng.choice([None, 10, 500, 5000])
    return CampaignFactory(
        icp_industries=[random_text(rng) for _ in range(rng.randint(0, 3))],
        icp_title_keywords=[random_text(rng) for _ in range(rng.randint(0, 3))],
        icp_countries=[random_text(rng) for _ in range(rng.randint(0, 3))],
        icp_company_size_min=low, icp_company_size_max=high,
        weight_industry=rng.choice([0, 1, 7, 30, 100]), weight_title=rng.choice([0, 3, 30, 33]),
        weight_country=rng.choice([0, 20, 45]), weight_company_size=rng.choice([0, 5, 20]),
        penalty_free_mail=rng.choice([0, 20, 100]), penalty_role_account=rng.choice([0, 30]))


@pytest.mark.parametrize("seed", range(16))
def test_the_database_scores_every_lead_exactly_as_score_lead_does(seed):
    rng = random.Random(seed)
    campaign = random_profile(rng)
    Lead.objects.bulk_create(
        Lead(campaign=campaign, email=f"lead{n}@example.com", industry=lead_text(rng, campaign.icp_industries)[:100],
             title=lead_text(rng, campaign.icp_title_keywords)[:200],
             country=lead_text(rng, campaign.icp_countries)[:100],
             company_size=rng.choice([None, 0, 9, 10, 11, 120, 499, 500, 501, 5000, 123456]),
             is_free_mail=rng.random() < 0.3, is_role_account=rng.random() < 0.3,
             # Some leads carry an old score, some the right one already: only the wrong ones are written.
             score=rng.choice([None, 0, 50]))
        for n in range(60))

    counts = leads_score(campaign=campaign, batch_size=rng.choice([7, 60, 1000]))

    leads = list(Lead.objects.filter(campaign=campaign))
    expected = {lead.pk: score_lead(lead, campaign) for lead in leads}
    assert {lead.pk: (lead.score, lead.score_breakdown) for lead in leads} == {
        pk: (score.value, score.breakdown) for pk, score in expected.items()}
    assert counts["scored"] == 60
    assert leads_score(campaign=campaign) == {"scored": 60, "changed": 0}


def test_a_lead_whose_score_did_not_change_is_not_written():
    campaign = profile()
    lead = LeadFactory(campaign=campaign, title="CTO", company_size=50)
    leads_score(campaign=campaign)
    first = Lead.objects.get(pk=lead.pk).scored_at
    Lead.objects.filter(pk=lead.pk).update(title="Head of IT")  # still a match: same points, another reason

    assert leads_score(campaign=campaign) == {"scored": 1, "changed": 1}
    changed = Lead.objects.get(pk=lead.pk)
    assert changed.scored_at > first and changed.score_breakdown["title"]["detail"] == (
        "title 'Head of IT' contains 'head of'")
    assert leads_score(campaign=campaign) == {"scored": 1, "changed": 0}
    assert Lead.objects.get(pk=lead.pk).scored_at == changed.scored_at


def test_a_lead_edited_between_a_batchs_two_statements_waits_for_the_next_run(monkeypatch):
    campaign = profile()
    anna = LeadFactory(campaign=campaign, title="CTO", company_size=50)
    ben = LeadFactory(campaign=campaign, title="CTO", company_size=50)
    update = _Plan.update

    def edited_meanwhile(self, *args, **kwargs):
        Lead.objects.filter(pk=anna.pk).update(title="Head of IT")  # a value the batch's answers do not have
        return update(self, *args, **kwargs)

    monkeypatch.setattr(_Plan, "update", edited_meanwhile)
    assert leads_score(campaign=campaign) == {"scored": 2, "changed": 1}
    assert dict(Lead.objects.values_list("pk", "score")) == {anna.pk: None, ben.pk: 100}

    monkeypatch.setattr(_Plan, "update", update)
    assert leads_score(campaign=campaign) == {"scored": 2, "changed": 1}
    anna.refresh_from_db()
    expected = score_lead(anna, campaign)
    assert (anna.score, anna.score_breakdown) == (expected.value, expected.breakdown)
