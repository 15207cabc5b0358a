"""Rendering a step for a lead: personalisation, fallbacks, threading subject, compliance footer."""

import pytest

from cam.models import Campaign, Lead, SequenceStep
from cam.outreach import rendering
from cam.outreach.rendering import TemplateProblem, check_templates, render_step, template_context


def render(step: SequenceStep, lead: Lead | None = None, first_subject: str = ""):
    lead = lead or Lead(email="anna@brightlane.example.com", first_name="Anna", company="Brightlane")
    context = template_context(lead=lead, campaign=Campaign(name="Q4"), mailbox=None,
                               unsubscribe_url="https://cam.example.com/u/token/")
    return render_step(step=step, context=context, first_subject=first_subject)


def test_it_personalises_with_the_leads_fields_and_falls_back_when_one_is_missing():
    step = SequenceStep(position=1, subject_template="{{ company }} & {{ first_name|default:'there' }}",
                        body_template="Hi {{ first_name|default:'there' }}, {{ title|default:'friend' }}")
    rendered = render(step)
    assert rendered.subject == "Brightlane & Anna"  # plain text: no HTML escaping
    assert rendered.body_text.startswith("Hi Anna, friend\n")
    anonymous = render(step, Lead(email="info@brightlane.example.com"))
    assert anonymous.body_text.startswith("Hi there, friend\n")


def test_a_step_is_compiled_once_however_many_leads_it_is_rendered_for():
    step = SequenceStep(position=1, subject_template="Compiled once for {{ company }}",
                        body_template="Hi {{ first_name }}, compiled once", html_template="<p>{{ first_name }}</p>")
    rendering._compiled.cache_clear()

    names = [render(step, Lead(email=f"p{n}@example.com", first_name=f"Ann{n}", company=f"Co{n}")).body_text
             for n in range(20)]

    assert [name.split(",")[0] for name in names] == [f"Hi Ann{n}" for n in range(20)]  # each its own lead's
    assert rendering._compiled.cache_info().misses <= 5  # subject, text, HTML, the footers: each once


def test_it_adds_the_postal_address_and_unsubscribe_link_to_every_body(settings):
    settings.AICMO_CAM_POSTAL_ADDRESS = "CAM GmbH, Hauptstraße 1, 10115 Berlin"
    step = SequenceStep(position=1, subject_template="Hi", body_template="Hello",
                        html_template="<p>Hello {{ company }}</p>")
    rendered = render(step, Lead(email="a@b.example.com", company="<Acme & Co>"))
    assert rendered.body_text == ("Hello\n\n--\nCAM GmbH, Hauptstraße 1, 10115 Berlin\n"
                                  "Not interested? Unsubscribe: https://cam.example.com/u/token/\n")
    assert rendered.body_html.startswith("<p>Hello &lt;Acme &amp; Co&gt;</p>")
    assert "CAM GmbH, Hauptstraße 1, 10115 Berlin" in rendered.body_html
    assert '<a href="https://cam.example.com/u/token/">Unsubscribe</a>' in rendered.body_html


def test_it_sends_no_html_part_when_the_step_has_none():
    assert render(SequenceStep(position=1, subject_template="Hi", body_template="Hello")).body_html == ""


def test_it_puts_a_follow_up_in_the_first_emails_thread():
    follow_up = SequenceStep(position=2, subject_template="ignored", body_template="Bumping this")
    assert render(follow_up, first_subject="Brightlane and fewer hand-offs").subject == \
        "Re: Brightlane and fewer hand-offs"
    assert render(follow_up, first_subject="Re: already a reply").subject == "Re: already a reply"


def test_it_keeps_a_subject_on_one_line():
    step = SequenceStep(position=1, subject_template="Hello\n{{ first_name }}\r\n", body_template="x")
    assert render(step).subject == "Hello Anna"


@pytest.mark.parametrize(
    ("subject", "body", "html", "field", "message"),
    [
        ("Hi {% endif %}", "ok", "", "subject_template", "The subject template does not compile"),
        ("Hi", "{% if company %}open", "", "body_template", "Unclosed tag on line 1: 'if'"),
        ("Hi", "ok", "{{ company|shout }}", "html_template", "Invalid filter: 'shout'"),
    ],
)
def test_it_names_the_template_that_does_not_render(subject, body, html, field, message):
    problems = dict(check_templates(subject=subject, body=body, html=html))
    assert list(problems) == [field]
    assert message in problems[field]


def test_it_raises_a_template_problem_for_a_broken_step():
    with pytest.raises(TemplateProblem, match="The body template does not compile"):
        render(SequenceStep(position=1, subject_template="Hi", body_template="{% for %}"))


@pytest.mark.parametrize(("template", "problem"), [
    ("{{ first_name|center:20000000 }}", "|center asks for a size of 20000000"),
    ("{{ first_name|ljust:company_size }}", "|ljust asks for a size of 5000"),
    ('{{ first_name|stringformat:"20000000s" }}', "|stringformat asks for a size of 20000000"),
    ("{{ 1.5|floatformat:100000 }}", "|floatformat asks for a size of 100000"),
    ("{% lorem 2000000 w %}", "{% lorem %} asks for a size of 2000000"),
    ("{% lorem company_size w %}", "{% lorem %} takes a number, not a variable"),
    ('{% for a in "' + "x" * 30 + '" %}{% for b in "' + "x" * 30 + '" %}{% for c in "' + "x" * 30
     + '" %}.{% endfor %}{% endfor %}{% endfor %}', "the loops of this template run more than 10,000 times"),
])
def test_a_template_cannot_produce_an_unbounded_text(template, problem):
    lead = Lead(email="anna@brightlane.example.com", first_name="Anna", company_size=5000)

    with pytest.raises(TemplateProblem) as caught:
        render(SequenceStep(position=1, subject_template="Hi", body_template=template), lead)

    assert problem in str(caught.value)


def test_a_huge_width_is_refused_when_the_step_is_saved():
    problems = dict(check_templates(subject="Hi", body="{{ first_name|center:20000000 }}", html=""))

    assert "asks for a size of 20000000; at most 1000 is allowed" in problems["body_template"]


def test_the_rendered_text_is_capped():
    lead = Lead(email="anna@brightlane.example.com", first_name="A" * 1000)
    body = "{% for i in '" + "x" * 200 + "' %}{{ first_name }}{% endfor %}"

    with pytest.raises(TemplateProblem, match=r"renders 200,000 characters; at most 100,000 are allowed"):
        render(SequenceStep(position=1, subject_template="Hi", body_template=body), lead)


def test_modest_widths_loops_and_lorem_still_render():
    body = "{{ first_name|center:11 }}|{% for c in first_name %}{{ c }}{% endfor %}|{% lorem 2 w %}"

    assert render(SequenceStep(position=1, subject_template="Hi", body_template=body)).body_text.startswith(
        "    Anna   |Anna|lorem ipsum")
