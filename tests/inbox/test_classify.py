import datetime
import json
from email.message import EmailMessage
from pathlib import Path

import pytest

from cam.inbox.autoreplies import return_date
from cam.inbox.classify import (
    CLASSIFIERS,
    Classification,
    Classifier,
    IncomingMessage,
    classify_message,
)
from cam.inbox.text import fold, html_to_text, new_text
from cam.models import InboundEmail

Category = InboundEmail.Category
CORPUS = Path(__file__).parent / "corpus"
EXPECTED = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))
TODAY = datetime.date.fromisoformat(EXPECTED["today"])
BOUNCES = {Category.BOUNCE_HARD, Category.BOUNCE_SOFT}
AUTOMATIC = {Category.OUT_OF_OFFICE, Category.AUTO_REPLY}
HUMAN = {Category.UNSUBSCRIBE, Category.POSITIVE, Category.NEGATIVE, Category.REFERRAL, Category.QUESTION,
         Category.NEUTRAL}


def corpus(*categories: str) -> list[str]:
    return sorted(name for name, expected in EXPECTED["messages"].items() if expected["category"] in categories)


def classify_file(name: str) -> Classification:
    return classify_message((CORPUS / name).read_bytes(), today=TODAY)


def reply(text: str, *, subject: str = "Re: A quick question", sender: str = "Anna Berger <anna@berger.example>",
          **headers: str) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "Lena Fischer <lena@brightloop.example>"
    message["Subject"] = subject
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(text)
    return message.as_bytes()


# --- the corpus ---------------------------------------------------------------------------------


def test_it_has_a_corpus_of_every_kind_in_every_language():
    assert len(corpus(*BOUNCES)) >= 25
    assert len(corpus(Category.COMPLAINT)) >= 2
    out_of_office = corpus(Category.OUT_OF_OFFICE)
    assert len(corpus(*AUTOMATIC)) >= 8
    assert sum(EXPECTED["messages"][name]["return_date"] is not None for name in out_of_office) >= 8
    assert {name.split("_")[1] for name in out_of_office} >= {"en", "de", "fr", "es"}
    replies = corpus(*HUMAN)
    assert len(replies) >= 30
    assert {name.split("_")[1] for name in replies} >= {"en", "de", "fr", "es"}
    for language in ("en", "de", "fr", "es"):
        categories = {EXPECTED["messages"][name]["category"] for name in replies if name.split("_")[1] == language}
        assert categories >= {Category.UNSUBSCRIBE, Category.POSITIVE, Category.NEGATIVE, Category.REFERRAL,
                              Category.QUESTION}, language
    assert sorted(path.name for path in CORPUS.glob("*.eml")) == sorted(EXPECTED["messages"])


@pytest.mark.parametrize("name", sorted(EXPECTED["messages"]))
def test_it_reads_each_corpus_message_as_expected(name):
    expected = EXPECTED["messages"][name]
    result = classify_file(name)
    found = {
        "category": result.category,
        "failed_recipients": result.failed_recipients,
        "status_code": result.status_code,
        "return_date": result.return_date.isoformat() if result.return_date else None,
        "referral_email": result.referral_email,
        "reported_domain": result.reported_domain,
    }
    assert found == {"referral_email": "", "reported_domain": "", **expected}, result.reasons
    assert 0 < result.confidence <= 1
    assert result.reasons


def test_it_recognises_at_least_97_percent_of_the_corpus_bounces_with_the_right_recipient():
    names = corpus(*BOUNCES)
    recognised = []
    for name in names:
        result = classify_file(name)
        expected = EXPECTED["messages"][name]["failed_recipients"]
        if result.category in BOUNCES and set(expected) <= set(result.failed_recipients):
            recognised.append(name)
    missed = sorted(set(names) - set(recognised))
    assert len(recognised) / len(names) >= 0.97, missed


def test_it_never_takes_a_reply_or_an_automatic_answer_for_a_bounce_or_a_complaint():
    taken = {}
    for name in corpus(*HUMAN, *AUTOMATIC):
        result = classify_file(name)
        if result.category in BOUNCES | {Category.COMPLAINT}:
            taken[name] = result.category
    assert taken == {}


# --- bounces ------------------------------------------------------------------------------------


def test_it_reports_the_address_we_sent_to_when_the_server_expanded_an_alias():
    result = classify_file("bounce_postfix_expanded_alias.eml")
    assert (result.category, result.failed_recipients) == (Category.BOUNCE_HARD, ["vertrieb@holzwerk-mayer.example"])


@pytest.mark.parametrize(("name", "why"), [
    ("bounce_postfix_dsn_mailbox_full.eml", "mailbox full"),
    ("bounce_qmail_over_quota.eml", "quota"),
    ("bounce_postfix_greylisted.eml", "delayed"),
    ("bounce_sendmail_warning_4_hours.eml", "delayed"),
    ("bounce_office365_blocked_as_spam.eml", "not for the address"),
])
def test_it_takes_full_mailboxes_greylisting_delays_and_blocks_as_soft(name, why):
    result = classify_file(name)
    assert result.category == Category.BOUNCE_SOFT
    assert why in result.reasons[-1]


def test_it_names_the_recipient_from_the_original_message_when_the_report_text_does_not():
    result = classify_file("bounce_original_headers_only.eml")
    assert result.failed_recipients == ["j.rosenthal@rosenthal-druck.example"]
    assert "the original message's To" in " ".join(result.reasons)
    assert result.confidence < classify_file("bounce_postfix_dsn_user_unknown.eml").confidence


def test_it_does_not_take_a_successful_delivery_report_for_a_bounce():
    assert classify_file("autoreply_delivery_report_success.eml").category == Category.AUTO_REPLY


def test_it_does_not_take_a_reply_about_a_bounce_for_one():
    text = "Your email bounced: Undeliverable, 550 5.1.1 user unknown, mailbox unavailable. Try anna@new.example."
    result = classify_message(reply(text, subject="Re: Undeliverable: your offer"))
    assert result.category not in BOUNCES


def test_it_recognises_a_bounce_subject_only_with_a_diagnostic_behind_it():
    announcement = reply("We moved our servers over the weekend.", subject="Mail delivery changes at Berger")
    assert classify_message(announcement).category not in BOUNCES
    bounce = reply("Your message to anna@berger.example could not be delivered: 550 5.1.1 user unknown.",
                   subject="Undeliverable: A quick question", sender="IT Service <it@berger.example>",
                   Return_Path="<>")
    result = classify_message(bounce)
    assert (result.category, result.failed_recipients, result.status_code) == (
        Category.BOUNCE_HARD, ["anna@berger.example"], "5.1.1")


# --- automatic replies and return dates -----------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("I'm back on 12 March.", "2026-03-12"),
    ("Returning March 12th.", "2026-03-12"),
    ("Ich bin zurück am 3.4.", "2026-04-03"),
    ("Ich bin ab dem 15. März wieder im Büro.", "2026-03-15"),
    ("Je serai de retour le 12 mars.", "2026-03-12"),
    ("Estaré de vuelta el 3 de abril.", "2026-04-03"),
    ("I am out of the office until 13 March.", "2026-03-14"),
    ("Out of office from 2 March to 12 March.", "2026-03-13"),
    ("Ich bin vom 2. bis 12. März nicht da.", "2026-03-13"),
    ("Je suis en congés jusqu'au 6 avril inclus.", "2026-04-07"),
    ("Estoy fuera hasta el 15 de marzo.", "2026-03-16"),
    ("Back on 5 January.", "2027-01-05"),
    ("Back on 1 March.", "2027-03-01"),
    ("I'll return to work on March 12, 2026.", "2026-03-12"),
    ("Back on 2026-03-20.", "2026-03-20"),
    ("Back on Monday.", "2026-03-09"),
    ("We are available 24/7.", None),
    ("I'm on holiday from 20 March.", None),
])
def test_it_reads_the_return_date_after_today(text, expected):
    found, _certainty = return_date(fold(text), today=datetime.date(2026, 3, 2))
    assert (found.isoformat() if found else None) == expected


@pytest.mark.parametrize("headers", [
    {"Auto_Submitted": "auto-replied"},
    {"X_Autoreply": "yes"},
    {"X_Autorespond": "yes"},
    {"Precedence": "auto_reply"},
    {"Precedence": "junk"},
    {"X_Auto_Response_Suppress": "All"},
])
def test_it_recognises_automatic_replies_by_their_headers(headers):
    result = classify_message(reply("Thank you for your message. We will get back to you soon.", **headers))
    assert result.category == Category.AUTO_REPLY


@pytest.mark.parametrize("subject", [
    "Out of Office: A quick question", "Automatic reply: A quick question", "Abwesenheitsnotiz: Ihre Anfrage",
    "Automatische Antwort: Ihre Anfrage", "Réponse automatique : votre message", "Absence",
    "Respuesta automática: su mensaje", "Fuera de la oficina",
])
def test_it_recognises_out_of_office_subjects_in_four_languages(subject):
    result = classify_message(reply("Thank you for your message.", subject=subject))
    assert result.category in AUTOMATIC


@pytest.mark.parametrize("headers", [{"Precedence": "bulk"}, {"X_Auto_Response_Suppress": "All"}])
def test_it_does_not_let_a_weak_header_hide_a_clear_answer(headers):
    assert classify_message(reply("Yes, let's talk on Thursday.", **headers)).category == Category.POSITIVE
    assert classify_message(reply("Please remove me from your list.", **headers)).category == Category.UNSUBSCRIBE


def test_it_ignores_auto_submitted_no():
    result = classify_message(reply("Yes, let's talk on Thursday.", Auto_Submitted="no"))
    assert result.category == Category.POSITIVE


# --- a person's reply -----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("Not interested right now.", Category.NEGATIVE),
    ("We're not really interested.", Category.NEGATIVE),
    ("Not sure yet.", Category.NEUTRAL),
    ("I'm not sure we'd be interested.", Category.NEUTRAL),
    ("No, I'd love to talk. Does Friday suit?", Category.POSITIVE),
    ("Yes!", Category.POSITIVE),
    ("Interested, but please unsubscribe my colleague and me from this list.", Category.UNSUBSCRIBE),
    ("Not interested, but talk to my colleague Ben, ben@berger.example.", Category.REFERRAL),
    ("Sounds good. What does it cost?", Category.POSITIVE),
    ("Don't hesitate to call me tomorrow.", Category.POSITIVE),
    ("Das interessiert uns nicht.", Category.NEGATIVE),
    ("Das klingt interessant, rufen Sie mich an.", Category.POSITIVE),
    ("Ça ne m'intéresse pas.", Category.NEGATIVE),
    ("Très intéressé, appelez-moi.", Category.POSITIVE),
    ("No me interesa.", Category.NEGATIVE),
    ("Me interesa, hablemos.", Category.POSITIVE),
    ("Which CRMs does it work with?", Category.QUESTION),
    ("Received, thanks.", Category.NEUTRAL),
])
def test_it_understands_negation_and_precedence(text, expected):
    assert classify_message(reply(text)).category == expected


def test_it_reads_only_the_new_text_of_a_reply():
    text = "No thanks.\n\nOn Mon, 2 Mar 2026 at 09:14, Lena <lena@brightloop.example> wrote:\n> Are you interested?\n"
    result = classify_message(reply(text))
    assert (result.category, result.new_text) == (Category.NEGATIVE, "No thanks.")


def test_it_names_the_referred_address_and_says_why():
    result = classify_message(reply("Wrong person, sorry. Please contact ben.meyer@berger.example instead."))
    assert (result.category, result.referral_email) == (Category.REFERRAL, "ben.meyer@berger.example")
    assert any("wrong person" in reason for reason in result.reasons)


def test_it_lowers_confidence_when_phrases_of_other_categories_are_found():
    clear = classify_message(reply("Not interested."))
    mixed = classify_message(reply("Not interested now, but let's talk in the autumn."))
    assert clear.category == mixed.category == Category.NEGATIVE
    assert mixed.confidence < clear.confidence
    assert any("outranked" in reason for reason in mixed.reasons)


# --- new text ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    "Yes please.\n\nOn Mon, Mar 2, 2026 at 9:14 AM Lena Fischer <lena@brightloop.example>\nwrote:\n\n> Hi\n",
    "Yes please.\n\nAm 02.03.2026 um 09:14 schrieb Lena Fischer <lena@brightloop.example>:\n> Hallo\n",
    "Yes please.\n\nLe lun. 2 mars 2026 à 09:14, Lena Fischer <lena@brightloop.example> a écrit :\n> Bonjour\n",
    "Yes please.\n\nEl lun, 2 mar 2026 a las 9:14, Lena Fischer (<lena@brightloop.example>) escribió:\n> Hola\n",
    "Yes please.\n\n-----Original Message-----\nFrom: Lena\nSent: Monday\nTo: Anna\nSubject: Hi\n\nHi",
    "Yes please.\n\n________________________________\nFrom: Lena\nSent: Monday\n\nHi",
    "Yes please.\n\nVon: Lena Fischer\nGesendet: Montag, 2. März 2026 09:14\nAn: Anna\nBetreff: Hallo\n\nHallo",
    "Yes please.\n\nDe : Lena Fischer\nEnvoyé : lundi 2 mars 2026\nÀ : Anna\nObjet : Bonjour\n",
    "Yes please.\n-- \nAnna Berger\nBerger Logistik | interested in freight?",
    "Yes please.\n\nBest regards,\nAnna",
    "Yes please.\n\nMit freundlichen Grüßen\nAnna Berger",
    "Yes please.\n\nCordialement,\nAnna",
    "Yes please.\n\nUn saludo,\nAnna",
    "Yes please.\n\nSent from my iPhone",
    "> Are you interested?\nYes please.\n> Great.",
])
def test_it_strips_quotes_and_signatures_in_four_languages(body):
    assert new_text(body) == "Yes please."


def test_it_keeps_a_thank_you_that_opens_the_reply():
    body = "Hi Lena,\n\nThanks!\n\nWe'd love to talk next week. Does Tuesday suit you?\n\nAnna\n\n> Interested?"
    assert new_text(body) == "Hi Lena,\n\nThanks!\n\nWe'd love to talk next week. Does Tuesday suit you?\n\nAnna"
    assert classify_message(reply(body)).category == Category.POSITIVE


def test_it_drops_quoted_html_and_keeps_the_reply():
    html = ('<div>Not interested.</div><div class="gmail_quote">On Mon Lena wrote:<blockquote>Interested?'
            '</blockquote></div><div id="divRplyFwdMsg">From: Lena</div><p>Let us talk</p>')
    assert html_to_text(html) == "Not interested."


# --- the entry point ------------------------------------------------------------------------------


def test_it_accepts_bytes_and_parsed_messages_alike():
    import email
    from email import policy

    raw = (CORPUS / "reply_de_referral.eml").read_bytes()
    assert classify_message(raw) == classify_message(email.message_from_bytes(raw, policy=policy.default))


@pytest.mark.parametrize("raw", [b"", b"\x00\x01\x02garbage\xff" * 20, b"just some words\nand more\n"])
def test_it_returns_neutral_with_no_confidence_for_bytes_that_are_not_a_message(raw):
    result = classify_message(raw)
    assert (result.category, result.confidence) == (Category.NEUTRAL, 0.0)
    assert result.reasons[0].startswith("not a message")


@pytest.mark.parametrize("ending", [b"\r\n", b"\r"])
@pytest.mark.parametrize("name", ["bounce_qmail_no_mailbox.eml", "bounce_sendmail_dsn_user_unknown.eml",
                                  "reply_de_kein_interesse_above_quote.eml"])
def test_it_reads_messages_whatever_their_line_endings(name, ending):
    raw = (CORPUS / name).read_bytes().replace(b"\n", ending)
    expected = EXPECTED["messages"][name]
    result = classify_message(raw, today=TODAY)
    assert (result.category, result.failed_recipients) == (expected["category"], expected["failed_recipients"])


def test_it_survives_broken_headers_and_unknown_charsets():
    raw = (b"From: \"Anna <broken@\r\nTo: ,,,<>\r\nSubject: =?x-unknown?q?Hallo?=\r\n"
           b"Content-Type: text/plain; charset=x-unknown\r\n\r\nKein Interesse \xfc\xfc.\r\n")
    assert classify_message(raw).category == Category.NEGATIVE


def test_it_lets_another_classifier_decide_first_or_pass():
    class Marker(Classifier):
        name = "marker"

        def classify(self, message: IncomingMessage) -> Classification | None:
            if "[ticket]" not in message.subject:
                return None
            return Classification(category=Category.AUTO_REPLY, confidence=0.6, reasons=["a ticket system"])

    classifiers = [Marker(), *CLASSIFIERS]
    ticket = classify_message(reply("Interested!", subject="[ticket] 42"), classifiers=classifiers)
    assert (ticket.category, ticket.reasons, ticket.new_text) == (Category.AUTO_REPLY, ["a ticket system"],
                                                                  "Interested!")
    assert classify_message(reply("Interested!"), classifiers=classifiers).category == Category.POSITIVE
