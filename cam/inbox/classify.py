"""What an incoming message is: a bounce, a complaint, an automatic reply, or a person's answer and its intent.

``classify_message`` is the one entry point. It runs the classifiers of ``CLASSIFIERS`` in order, and
the first one that recognises the message decides; their order is the precedence of the categories:

0. ``SesClassifier``: an Amazon SES notification (JSON by email, ``cam.inbox.ses``) → a bounce, a
   complaint, or ``AUTO_REPLY`` for a delivery;
1. ``BounceClassifier``: a failed-delivery report → ``BOUNCE_HARD`` or ``BOUNCE_SOFT``, with the
   failed recipients and the status code (``cam.inbox.bounces``); a notice of successful delivery,
   relay or expansion → ``AUTO_REPLY``;
2. ``ComplaintClassifier``: a feedback loop's report (ARF, JMRP, … ``cam.inbox.complaints``) →
   ``COMPLAINT``, with the complaining recipient in ``failed_recipients``; an RFC 6591
   authentication-failure report → ``AUTH_FAILURE``, with the ``reported_domain``;
3. ``AutoReplyClassifier``: an automatic answer → ``OUT_OF_OFFICE`` (with the return date when the
   text gives one) or ``AUTO_REPLY`` (``cam.inbox.autoreplies``);
4. ``ReplyIntentClassifier``: a person's reply, read on its new text only (``cam.inbox.text``),
   against ``PHRASES`` (English, German, French, Spanish, Italian, Dutch, Portuguese, Polish,
   Swedish): ``UNSUBSCRIBE`` > ``REFERRAL`` > ``NEGATIVE`` > ``POSITIVE`` > ``QUESTION`` > ``NEUTRAL``.
   The unsubscribe phrases are also tried with misspelt words read as meant (``corrected``); a reply
   that only leans towards stopping (``DOUBTS``) and says nothing else is ``UNSUBSCRIBE`` with low
   confidence rather than ``NEUTRAL``, whose follow-up is nurture. A positive reply that asks
   something stays ``POSITIVE``, the question among its reasons.

A referral outranks a refusal because “not interested, but talk to anna@…” is worth a person's look,
and both stop the lead; an unsubscribe request outranks everything a person writes because it is the
one that must never be missed. Another classifier (a model, say) joins by subclassing ``Classifier``
and taking its place in the list: return ``None`` to let the next one decide.

Confidence is how sure the rule that decided is, from 0 to 1: about 0.95 and above for a
standard report or an explicit header, about 0.85 for a clear phrase, less when phrases of other
categories were also found or when a bounce's status code is missing, 0.5 for ``NEUTRAL``. The
reasons say which rule fired and on what text. docs/classification.md is the staff-facing version.
"""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from email.message import Message
from functools import cached_property
from typing import Any, cast

from cam.inbox.autoreplies import detect_auto_reply
from cam.inbox.bounces import Delivered, detect_bounce
from cam.inbox.complaints import detect_complaint
from cam.inbox.literals import required_literals
from cam.inbox.parsing import message_from_raw_for_reading, unread_parts
from cam.inbox.ses import ses_notification
from cam.inbox.text import ADDRESS, body_text, fold, header, header_addresses, new_text, sender_address
from cam.models.mail import InboundEmail

Category = InboundEmail.Category


@dataclass(frozen=True)
class Classification:
    """What a message is. For a complaint, ``failed_recipients`` holds the complaining recipient."""

    category: str  # an InboundEmail.Category value
    confidence: float  # 0..1
    reasons: list[str]  # human-readable: which rule fired, on what text
    failed_recipients: list[str] = field(default_factory=list)
    status_code: str = ""  # e.g. "5.1.1" or "550"
    return_date: datetime.date | None = None
    referral_email: str = ""
    new_text: str = ""  # the sender's own words, quotes and signature removed
    reported_domain: str = ""  # for AUTH_FAILURE: the domain whose authentication failed


class UnreadableMessage(ValueError):
    """The bytes are not an email message (empty, binary, or no header at all)."""


# Bytes that no text has: C0 controls other than tab, line feed, form feed and carriage return, and DEL.
# NUL is not counted: stray NULs are dropped on reading (``message_from_raw_for_reading``).
_BINARY = re.compile(rb"[\x01-\x08\x0e-\x1f\x7f]")
# Past this share of such bytes in the first 4 KiB, the bytes are data (an image, an archive: about one byte in
# ten of random data is one), not mail; a stray one or two in a bounce are far below it.
BINARY_SHARE = 0.05


def read_message(raw: bytes) -> Message:
    """``raw`` parsed as an email message, within the inbox's nesting and part limits
    (``cam.inbox.parsing.message_from_raw_for_reading``); raises ``UnreadableMessage`` when it is not one.

    A stray NUL or control byte does not make a message unreadable (mail servers leave them, at the
    end of a bounce above all): only bytes that are mostly not text, or that have no header field at
    all, are refused."""
    head = raw[:4096].replace(b"\x00", b"")
    if not head.strip():
        raise UnreadableMessage("empty")
    if len(_BINARY.findall(head)) > BINARY_SHARE * len(head):
        raise UnreadableMessage("binary data, not a message")
    message = message_from_raw_for_reading(raw)
    if not message.keys():
        raise UnreadableMessage("no header fields, not a message")
    return message


class IncomingMessage:
    """A message being classified, with what the classifiers read from it worked out once."""

    def __init__(self, message: Message, *, today: datetime.date) -> None:
        self.message = message
        self.today = today

    @cached_property
    def subject(self) -> str:
        return header(self.message, "Subject")

    @cached_property
    def sender(self) -> str:
        return sender_address(self.message)

    @cached_property
    def own_addresses(self) -> tuple[str, ...]:
        """The sender's and the addressees' addresses: never a referral."""
        return tuple(address for address in (self.sender, *header_addresses(self.message, "To", "Reply-To"))
                     if address)

    @cached_property
    def body(self) -> str:
        return body_text(self.message)

    @cached_property
    def new_text(self) -> str:
        return new_text(self.body)


class Classifier:
    """One way of recognising messages. ``classify`` returns ``None`` to leave the message to the next one."""

    name = "classifier"

    def classify(self, message: IncomingMessage) -> Classification | None:
        raise NotImplementedError


class SesClassifier(Classifier):
    """Amazon SES notifications (JSON sent by email, ``cam.inbox.ses``): a bounce, a complaint, or a
    delivery, which is an automatic notice and never a bounce."""

    name = "amazon ses"

    def classify(self, message: IncomingMessage) -> Classification | None:
        found = ses_notification(message.message)
        if found is None:
            return None
        if found.kind == "Bounce":
            category = Category.BOUNCE_HARD if found.hard else Category.BOUNCE_SOFT
            reasons = [*found.reasons, *(f"{address} failed, found in the notification" for address in
                                         found.recipients), ("hard: " if found.hard else "soft: ") + "the bounceType"]
            return Classification(category=category, confidence=0.98 if found.recipients else 0.85, reasons=reasons,
                                  failed_recipients=found.recipients, status_code=found.status)
        if found.kind == "Complaint" and found.feedback_type != "not-spam":
            return Classification(category=Category.COMPLAINT, confidence=0.99 if found.recipients else 0.9,
                                  reasons=[*found.reasons, f"complaining recipient {', '.join(found.recipients)}"
                                           if found.recipients else "the complaining recipient is not named"],
                                  failed_recipients=found.recipients)
        return Classification(category=Category.AUTO_REPLY, confidence=0.97,
                              reasons=[*found.reasons, "a notice, not a failure"])


class BounceClassifier(Classifier):
    """Failed-delivery reports (``cam.inbox.bounces``); a report of success is an automatic notice."""

    name = "bounce"

    def classify(self, message: IncomingMessage) -> Classification | None:
        bounce = detect_bounce(message.message, subject=message.subject)
        if bounce is None:
            return None
        if isinstance(bounce, Delivered):
            return Classification(category=Category.AUTO_REPLY, confidence=0.96, reasons=bounce.reasons)
        return Classification(category=Category.BOUNCE_HARD if bounce.hard else Category.BOUNCE_SOFT,
                              confidence=bounce.confidence, reasons=bounce.reasons,
                              failed_recipients=bounce.failed_recipients, status_code=bounce.status_code)


class ComplaintClassifier(Classifier):
    """Feedback reports (``cam.inbox.complaints``): a complaint, or an authentication-failure report
    (``AUTH_FAILURE``), which is about the sending domain, not a person."""

    name = "complaint"

    def classify(self, message: IncomingMessage) -> Classification | None:
        complaint = detect_complaint(message.message)
        if complaint is None:
            return None
        if complaint.auth_failure:
            return Classification(category=Category.AUTH_FAILURE, confidence=complaint.confidence,
                                  reasons=complaint.reasons, reported_domain=complaint.reported_domain)
        return Classification(category=Category.COMPLAINT, confidence=complaint.confidence,
                              reasons=complaint.reasons, failed_recipients=complaint.recipients)


_UNSUBSCRIBE_SUBJECT = re.compile(r"^\s*(?:(?:re|aw|fw|fwd|wg)\s*:\s*)*unsubscribe\b")


class AutoReplyClassifier(Classifier):
    """Automatic answers. A weak sign alone (``Precedence: bulk``, ``X-Auto-Response-Suppress``, which
    some mail systems put on everything) does not hide a person's clear answer: that reply is left to
    ``ReplyIntentClassifier``."""

    name = "auto-reply"
    CLEAR_ANSWERS = (Category.UNSUBSCRIBE, Category.REFERRAL, Category.NEGATIVE, Category.POSITIVE)

    def classify(self, message: IncomingMessage) -> Classification | None:
        found = detect_auto_reply(message.message, subject=message.subject, text=message.new_text,
                                  today=message.today, own_addresses=message.own_addresses)
        if found is None:
            return None
        weak = found.confidence < 0.9 and not found.out_of_office
        if weak and ReplyIntentClassifier().classify(message).category in self.CLEAR_ANSWERS:
            return None
        # A mail client's one-click unsubscribe (Apple Mail's marks itself) is sent for the person, automatically:
        # it is their request to stop.
        asks_to_stop = header(message.message, "X-Apple-Unsubscribe").strip().lower() in ("true", "yes", "1") or \
            _UNSUBSCRIBE_SUBJECT.match(fold(message.subject))
        if asks_to_stop and ReplyIntentClassifier().classify(message).category == Category.UNSUBSCRIBE:
            return None
        return Classification(category=Category.OUT_OF_OFFICE if found.out_of_office else Category.AUTO_REPLY,
                              confidence=found.confidence, reasons=found.reasons, return_date=found.return_date,
                              referral_email=found.referral_email)


# --- a person's reply -------------------------------------------------------------------------

A = ADDRESS.pattern.replace("A-Z", "")


@dataclass(frozen=True)
class Phrase:
    """A phrase (a regular expression on folded text) that points to a category.

    A ``negatable`` phrase does not count when a negation comes just before it in the same clause
    (“not interested”, “nicht interessant”, “pas intéressé”, “no me interesa”) or, for German and
    French, just after it (“interessiert uns nicht”, “ne m'intéresse pas”).
    """

    category: str
    pattern: re.Pattern[str]
    confidence: float
    negatable: bool = False


def _phrases(category: str, confidence: float, *patterns: str, negatable: bool = False) -> list[Phrase]:
    return [Phrase(category, re.compile(pattern), confidence, negatable) for pattern in patterns]


PHRASES: list[Phrase] = [
    *_phrases(
        Category.UNSUBSCRIBE, 0.95,
        # English
        r"\bunsubscribe\b", r"\bremove me\b", r"\bremove us\b",
        r"\bremove (?:my|our|this) (?:e-?mail|address|name|contact|details|data)\b",
        r"\btake (?:me|us) off\b", r"\btake (?:my|our|this) (?:e-?mail|address|name) off\b",
        r"\boff (?:your|the|this) (?:mailing |e-?mail |contact |distribution )?list\b",
        r"\bstop (?:e-?mailing|contacting|sending|messaging|writing to|spamming|bothering|pestering) (?:me|us)\b",
        r"\bstop (?:sending|spamming)\b",
        r"\b(?:do not|don't|dont|never) (?:e-?mail|contact|write to|message|spam) (?:me|us)\b",
        r"\bno (?:more|further) (?:e-?mails|mails|messages|contact)\b", r"\bopt(?:-| )?out\b", r"\bopt (?:me|us) out\b",
        r"\bdelete (?:my|our) (?:data|e-?mail|address|contact|details)\b", r"\bleave (?:me|us) alone\b",
        # German
        r"\babmelden\b", r"\babmeldung\b", r"\babbestellen\b", r"\baustragen\b", r"\btragen sie (?:mich|uns) aus\b",
        r"\bentfernen sie (?:mich|uns|meine|unsere)\b",
        r"\b(?:aus|von) (?:ihrem|ihrer|dem|der|eurem|eurer|ihren) (?:verteiler|liste|mailingliste|datenbank|"
        r"e-?mail-?liste|adressliste)\b",
        r"\bkeine (?:weiteren |werblichen )?(?:e-?mails|mails|nachrichten|werbung|zuschriften|werbemails)(?: mehr)?\b",
        r"\bnicht (?:mehr|weiter) (?:kontaktieren|anschreiben|anmailen|kontaktiert|angeschrieben|schreiben)\b",
        r"\b(?:loschen|entfernen) sie (?:bitte )?(?:meine|unsere) (?:daten|adresse|e-?mail)",
        # French
        r"\bdesabonn\w*", r"\bdesinscri\w*", r"\bne (?:plus|pas) recevoir\b", r"\bne plus etre contacte",
        r"\b(?:retirez|supprimez|enlevez|rayez)[- ](?:moi|nous)\b",
        r"\b(?:retirer|supprimer|enlever|effacer) (?:mon|notre|mes|nos) (?:adresse|e-?mail|nom|coordonnees|donnees)",
        r"\bne (?:me|nous) (?:contactez|ecrivez|envoyez|sollicitez) plus\b",
        r"\barretez de (?:m'|me |nous )(?:envoyer|ecrire|contacter|spammer|solliciter)",
        r"\bplus (?:aucun|de) (?:mails?|courriels?|e-?mails?|messages?|sollicitations?)\b",
        # Spanish
        r"\bdar(?:me|nos)? de baja\b", r"\b(?:dame|denme|deme|dennos) de baja\b", r"\bde baja\b",
        r"\b(?:borrar|eliminar|quitar|sacar)(?:me|nos)? de (?:la|su|vuestra|tu|sus) (?:lista|listas|base de datos)\b",
        r"\b(?:eliminen|borren|quiten|saquen|eliminad|borrad) (?:mi|mis|nuestro|nuestra|nuestros) "
        r"(?:correo|direccion|datos|e-?mail)",
        r"\bno (?:me|nos) (?:envie|envien|mande|manden|escriba|escriban|contacte|contacten|envies|mandes|escribas|"
        r"contactes|moleste|molesten) mas\b",
        r"\bno (?:quiero|queremos) recibir (?:mas|ningun|ninguna)\b", r"\bdejen? de (?:enviar|escribir|mandar)",
        r"\bno (?:vuelva|vuelvan) a (?:escribir|contactar)",
        # English, more of each family: stop, no more, do not contact, delete, opt out, and their idioms
        r"\A\W*(?:stop|unsubscribe|remove|unsub)\W*\Z", r"\bunsub\b",
        r"\bstop (?:all |these |the |your |any )?(?:e-?mails|mails|messages|emailing|contact|spam)\b",
        r"\b(?:please|pls|just) stop\W*$",
        r"\b(?:don't|do not|dont) (?:want|wish) (?:to (?:receive|get|hear)|any (?:more|further)|(?:any )?more) "
        r"(?:of )?(?:these |your |this |such )?(?:e-?mails|mails|messages|emails|contact|from you)",
        r"\b(?:no longer|not) (?:wish|want) to (?:receive|be contacted|hear from|get)\b",
        r"\bnever (?:contact|e-?mail|write to|message) (?:me|us) again\b", r"\bcease (?:and desist|all contact)\b",
        r"\bdelete me\b", r"\b(?:remove|delete|erase) (?:me|us|my (?:e-?mail|address|data|details)) from\b",
        r"\b(?:lose|forget) (?:my|our) (?:e-?mail|address|number|details)\b",
        r"\b(?:take|get) (?:me|us) out of\b", r"\bnot (?:to )?(?:be )?contacted again\b",
        # German
        r"\b(?:loschen|streichen|entfernen|nehmen) sie mich\b",
        r"\bmich (?:bitte )?(?:loschen|streichen|entfernen|austragen)\b",
        r"\b(?:aus|von) (?:dem|der|ihrem|ihrer) (?:verteiler|liste) (?:nehmen|entfernen|streichen|loschen)\b",
        r"\b(?:will|mochte|mochten|wollen) (?:keine|keinerlei) (?:e-?mails|mails|nachrichten|post|werbung|"
        r"zuschriften|anschreiben)\b",
        r"\b(?:kontaktieren|schreiben|mailen) sie (?:mich|uns|mir) (?:bitte )?nicht (?:mehr|wieder)\b",
        r"\bschreiben sie mir nicht mehr\b", r"\bhoren sie auf,? (?:mir|mich|uns)\b", r"\bunterlassen sie\b",
        # French
        r"\bje ne (?:souhaite|veux|desire) plus (?:recevoir|etre (?:contacte|sollicite))",
        r"\b(?:supprimez|retirez|enlevez|effacez|rayez)[- ](?:moi|nous|mon adresse|mon e-?mail) (?:de|des)\b",
        r"\bmerci de (?:me |nous )?(?:retirer|supprimer|desinscrire|ne plus m'|ne plus me )",
        r"\bcessez de (?:m'|me |nous )", r"\bne m'ecrivez plus\b", r"\bne plus (?:m'|me )(?:ecrire|envoyer|contacter)",
        # Spanish
        r"\b(?:eliminen|borren|quiten|saquen|elimine|borre|quite|saque|eliminad|borrad|quitad|sacad|elimina|borra|"
        r"quita|saca)(?:me|nos)\b", r"\b(?:me|nos) (?:doy|damos|quiero dar|queremos dar) de baja\b",
        r"\bno (?:deseo|deseamos|quiero|queremos) (?:seguir )?recibir\b",
        r"\bno (?:deseo|quiero) que me (?:escriban|contacten|envien|manden)\b", r"\bdejar de recibir\b",
        r"\bdejen? de (?:contactar|molestar|escribir|enviar|mandar)(?:me|nos)?\b",
        # Italian
        r"\bdisiscriv\w*", r"\bdisiscrizione\b", r"\bcancella(?:temi|mi|rmi|re la mia iscrizione)\b",
        r"\b(?:rimuove|togliete|toglie|elimina|cancella)(?:temi|mi|rmi)\b", r"\brimuovimi\b",
        r"\b(?:cancellate|rimuovete|eliminate|togliete|cancellare|rimuovere|eliminare) (?:il mio|la mia|i miei|"
        r"il nostro|la nostra) (?:indirizzo|email|e-mail|mail|contatto|dati|nominativo)",
        r"\b(?:rimuov|cancell|togli|elimin|levat)\w*\b[^.!?\n]{0,30}\b(?:dalla|dalle|dal) (?:vostra |sua |tua )?"
        r"(?:lista|mailing list|newsletter|database|elenco|liste)\b",
        r"\bnon (?:voglio|vogliamo|desidero|desideriamo) (?:piu )?ricevere\b",
        r"\bnon (?:mi|ci) (?:scrivete|contattate|inviate|mandate|scriva|contatti|invii|mandi) piu\b",
        r"\bnon (?:contattatemi|scrivetemi|contattateci|scriveteci) piu\b",
        r"\bsmettete(?:la)? di (?:scriver|inviar|contattar|mandar)(?:mi|ci)\b",
        r"\bbasta (?:email|e-mail|mail|messaggi)\b", r"\bannull\w* (?:la mia |l')?iscrizione\b",
        # Dutch
        r"\buitschrijven\b", r"\bschrijf (?:me|mij|ons) uit\b", r"\bmeld (?:me|mij|ons) af\b", r"\bafmelden\b",
        r"\bverwijder (?:me|mij|ons|mijn (?:e-?mailadres|adres|gegevens|naam))\b",
        r"\bhaal (?:me|mij|ons) (?:van|uit) (?:de|uw|jullie|je)\b",
        r"\b(?:haal|verwijder|schrap|schrijf)\w*\b[^.!?\n]{0,30}\b(?:van|uit) (?:uw|jullie|je|de) "
        r"(?:mailinglijst|verzendlijst|mailinglist|bestand|database|lijst)\b",
        r"\bgeen (?:e-?mails|mails|berichten|mailtjes|nieuwsbrieven|post|reclame) meer\b",
        r"\bwil (?:graag )?geen (?:e-?mails|mails|berichten|mailtjes)\b",
        r"\bniet (?:meer|langer) (?:mailen|e-?mailen|benaderen|contacteren|sturen|ontvangen)\b",
        r"\bneem geen contact (?:meer )?op\b", r"\bstop met (?:mailen|e-?mailen|sturen|berichten)\b",
        # Portuguese
        r"\bdescadastr\w*", r"\bcancelar (?:a )?(?:minha )?(?:inscricao|subscricao|assinatura)\b",
        r"\b(?:remov|retir|exclu|apag|tir)\w*[- ]me\b",
        r"\bme (?:remova|removam|retire|retirem|tire|tirem|exclua|excluam|descadastre|descadastrem)\b",
        r"\b(?:remova|removam|remover|retirar|excluir|apagar|exclua|excluam) (?:o )?(?:meu|o meu) (?:e-?mail|"
        r"endereco|contato|contacto|nome|dados)",
        r"\b(?:remov|retir|exclu|apag|tir)\w*\b[^.!?\n]{0,30}\bda (?:sua |vossa |tua )?(?:lista|base de dados|"
        r"mailing)\b",
        r"\bnao (?:quero|queremos|desejo|desejamos) (?:mais )?receber\b",
        r"\bnao (?:me |nos )?(?:envie|enviem|mande|mandem|contacte|contactem|contate|contatem|escreva|escrevam) mais\b",
        r"\bparem de (?:me |nos )?(?:enviar|mandar|contactar|contatar|escrever)\b", r"\bdeixar de receber\b",
        # Polish
        r"\bwypisz(?:cie)? (?:mnie|nas)\b", r"\bwypisac\b", r"\bwypisanie\b",
        r"\bprosze (?:o )?(?:wypisanie|usuniecie)\b",
        r"\busun(?:cie)? (?:mnie|nas|moj (?:adres|e-?mail)|moje dane)\b",
        r"\busuniecie (?:mnie|mojego adresu|z listy|z bazy)\b",
        r"\b(?:usun|wypisz|wykresl|skresl)\w*\b[^.!?\n]{0,30}\bz (?:waszej |pana |panstwa |tej )?(?:listy|"
        r"bazy(?: danych)?|listy mailingowej|mailingu)\b",
        r"\bnie (?:chce|chcemy|zycze sobie|zyczymy sobie) (?:wiecej |juz )?(?:otrzymywac|dostawac)\b",
        r"\bnie (?:wysylajcie|wysylaj|piszcie|pisz) (?:mi |do mnie |nam |do nas )?(?:wiecej|juz)\b",
        r"\bprosze (?:juz )?nie (?:pisac|wysylac|kontaktowac)\b",
        r"\brezygnuj\w* (?:z )?(?:subskrypcji|newslettera|otrzymywania)",
        # Swedish
        r"\bavregistrera\b", r"\bavprenumerera\b", r"\bavanmal\w*",
        r"\bavsluta (?:min |mitt )?(?:prenumeration|prenumerationen|nyhetsbrev|utskick)\b",
        r"\bta bort (?:mig|oss|min (?:e-?post|adress|e-?postadress|mejladress)|mina uppgifter)\b",
        r"\bstryk (?:mig|oss)\b",
        r"\b(?:ta bort|stryk|radera|avregistrera)\b[^.!?\n]{0,30}\b(?:fran|ur) (?:er |din |eran |ert )?(?:lista|listan|"
        r"register|registret|utskickslistan|sandlistan|e-?postlistan|databas|databasen)\b",
        r"\bvill inte (?:ha|fa|ta emot) (?:fler|nagra fler|mer|flera) (?:mejl|mail|e-?post|meddelanden|utskick)\b",
        r"\binga (?:fler|mer) (?:mejl|mail|e-?post|meddelanden|utskick)\b",
        r"\bsluta (?:skicka|maila|mejla|kontakta|skriva)\b", r"\bkontakta (?:mig|oss) inte (?:igen|mer)\b",
        r"\b(?:maila|mejla|skriv) inte (?:till mig |till oss )?(?:mer|igen)\b",
    ),
    *_phrases(
        Category.REFERRAL, 0.85,
        # English
        r"\bnot the (?:right|best|correct|appropriate|relevant) (?:person|contact|one|people)\b",
        r"\bwrong (?:person|contact)\b",
        r"\b(?:right|best|correct|better|appropriate) (?:person|contact) "
        r"(?:is|would be|to (?:talk|speak|contact|reach))\b",
        r"\b(?:contact|reach out to|talk to|speak (?:to|with)|get in touch with|e-?mail|write to|ask|try|loop in) "
        r"(?:my |our |the )?(?:colleague|coworker|co-worker|manager|boss|head of|team lead|department|cto|ceo|cfo|coo|"
        r"cmo|founder|co-founder|partner|assistant|purchasing|procurement|office manager|it team|marketing team|"
        r"sales team|buyer)\b",
        rf"\b(?:contact|reach out to|talk to|speak (?:to|with)|get in touch with|e-?mail|write to|reach) "
        rf"(?:\w+ ){{0,3}}(?:at |via |on )?<?{A}>?",
        r"\bforward(?:ed|ing)? (?:this|it|your (?:e-?mail|message|note|request)) (?:on )?to\b",
        r"\bpass(?:ed|ing)? (?:this|it|your (?:e-?mail|message|note)) (?:on|along) to\b",
        r"\b(?:i'?ve|i have|i'm|i am|have) (?:cc'?d|cc'?ed|cc'?ing|copied|copying|looped in|looping in|added)\b",
        r"\b(?:he|she|they) (?:handles|is responsible for|are responsible for|is in charge of|are in charge of|"
        r"looks after|takes care of|owns|manages) (?:this|these|that|our|it|all)\b",
        r"\bis (?:responsible|in charge) (?:for|of) "
        r"(?:this|these|that|our|it|purchasing|procurement|marketing|sales)\b",
        r"\bno longer (?:with|at|works|working|in charge|responsible)\b", r"\b(?:left|has left) the company\b",
        # German
        r"\bnicht (?:der|die) (?:richtige|passende|zustandige)n? (?:ansprechpartner(?:in)?|person|kontakt)\b",
        r"\bnicht zustandig\b", r"\bzustandig (?:ist|sind|dafur|hierfur|ware)\b",
        r"\bansprechpartner(?:in)? (?:ist|ware|hierfur|dafur)\b",
        r"\b(?:wenden|melden) sie sich (?:bitte |gerne |doch )?(?:an|bei)\b", r"\bweitergeleitet\b",
        r"\bleite (?:ihre|die|diese|das|es) (?:\w+ )?(?:anfrage |nachricht |e-?mail )?weiter\b",
        r"\b(?:kontaktieren|schreiben) sie (?:bitte |gerne |doch )?(?:meine|meinen|unsere|unseren|herrn|frau)\b",
        r"\bin (?:kopie|cc) (?:gesetzt|genommen)\b", r"\bnicht mehr (?:im unternehmen|bei uns|fur .{0,20} zustandig)\b",
        # French
        r"\bpas (?:la|le) (?:bonne|bon) (?:personne|interlocuteur|contact)\b",
        r"\b(?:contactez|veuillez contacter|merci de contacter|adressez-vous a|adressez vous a|voyez avec|ecrivez a|"
        r"rapprochez-vous de)\s+(?!moi\b|nous\b)",
        r"\b(?:j'ai|je l'ai|nous avons) (?:transmis|transfere|fait suivre)\b", r"\bs'occupe (?:de|des|du)\b",
        r"\best (?:en charge|responsable) (?:de|des|du)\b", r"\bmis en copie\b",
        # Spanish
        r"\bno soy la persona\b", r"\bno soy (?:el|la) (?:adecuad[oa]|indicad[oa]|correct[oa]|responsable)\b",
        r"\b(?:contacte|contacta|contactar|escriba|escribe|hable|habla|pongase en contacto|dirijase|dirigete) "
        r"(?:con|a)\b",
        r"\b(?:he|lo he|la he|te he|le he) (?:reenviado|pasado|copiado)\b", r"\bse encarga (?:de|del)\b",
        r"\bes (?:el|la) responsable\b", r"\ben copia\b",
    ),
    *_phrases(
        Category.NEGATIVE, 0.88,
        # English
        r"\bnot (?:really |very |that |so |at all |currently |too |particularly )?interested\b",
        r"\b\w+n't (?:really |currently |that |particularly )?interested\b", r"\bno interest\b",
        r"\bno,? thanks?\b", r"\bno,? thank you\b", r"\bthanks?,? but no\b", r"\bthank you,? but no\b",
        r"\bnot (?:a |the )?(?:good |right )?fit\b", r"\bnot for (?:us|me)\b", r"\bnot relevant\b",
        r"\bnot a priority\b", r"\bnot (?:looking|in the market|buying)\b", r"\bnot (?:right )?now\b",
        r"\bnot at (?:this time|the moment|present)\b", r"\bnot this (?:year|quarter|time)\b",
        r"\b(?:don't|do not|doesn't|does not) (?:need|have (?:a |any )?need)\b", r"\bno need\b",
        r"\bwe(?:'re| are) (?:all )?(?:set|covered)\b", r"\bwe already (?:have|use|work with|got|partner)\b",
        r"\balready (?:have|using|use|work with) (?:a|an|our|someone|something|one|this|that|similar)\b",
        r"\bwe(?:'re| are) (?:happy|satisfied|content) with\b", r"\b(?:i'll|we'll|i will|we will|going to) pass\b",
        r"\bpass on this\b", r"\bno budget\b", r"\b(?:have to|must|will|going to) decline\b",
        r"\bnot something (?:we|i)\b",
        # German
        r"\bkein(?:erlei)? interesse\b", r"\bkein(?:en)? bedarf\b", r"\bnicht (?:interessiert|interessant|relevant)\b",
        r"\binteressiert (?:uns|mich) (?:leider |derzeit |aktuell )?nicht\b", r"\bkein thema\b",
        r"\bnein,? danke\b", r"\bdanke,? (?:aber )?nein\b", r"\bwir haben (?:bereits|schon)\b",
        r"\bhaben (?:bereits|schon) (?:einen|eine|ein)\b",
        r"\b(?:brauchen|benotigen) (?:wir |ich )?(?:so etwas |das )?(?:keine|keinen|kein|nicht)\b",
        r"\bpasst (?:leider |aktuell |derzeit )?nicht\b",
        r"\b(?:derzeit|momentan|aktuell|zurzeit|im moment) (?:leider )?(?:nicht|kein)\b", r"\bnicht jetzt\b",
        r"\bsind (?:gut |bestens )?versorgt\b", r"\bsehr zufrieden mit\b",
        # French
        r"\bpas (?:vraiment |du tout |tres |trop )?interess\w*", r"\bpas d'interet\b", r"\baucun interet\b",
        r"\bne (?:m'|nous |me )interesse (?:pas|plus)\b", r"\bnon,? merci\b", r"\bpas besoin\b", r"\baucun besoin\b",
        r"\b(?:nous avons|on a|j'ai) deja\b", r"\bpas pour (?:nous|moi)\b",
        r"\bpas (?:pour le moment|pour l'instant|en ce moment|maintenant)\b",
        r"\bnous sommes (?:deja )?(?:equipes|satisfaits)\b",
        # Spanish
        r"\bno (?:me|nos) interesa\b", r"\bno (?:estamos|estoy) interesad[oa]s?\b", r"\bno,? gracias\b",
        r"\bya (?:tenemos|contamos con|trabajamos con|usamos|utilizamos)\b",
        r"\bno (?:lo )?necesitamos\b", r"\bno nos hace falta\b",
        r"\bno es (?:de nuestro interes|para nosotros|prioridad)\b",
        r"\b(?:por ahora|de momento|ahora mismo|por el momento),? no\b",
        r"\bno (?:por ahora|de momento|por el momento)\b",
        r"\bsin interes\b", r"\bningun interes\b",
        # Italian, Dutch, Portuguese, Polish, Swedish
        r"\bnon (?:sono|siamo) interessat[oaie]\b", r"\bnon (?:mi|ci) interessa\b", r"\bno,? grazie\b",
        r"\bgeen interesse\b", r"\bniet geinteresseerd\b", r"\bnee,? (?:dank je|dank u|bedankt)\b",
        r"\bnao (?:tenho|temos) interesse\b", r"\bnao (?:estou|estamos) interessad[oa]s?\b",
        r"\bnao,? obrigad[oa]\b",
        r"\bnie (?:jestem|jestesmy) zainteresowan\w*", r"\bnie interesuje (?:mnie|nas)\b", r"\bnie,? dziekuj\w*",
        r"\binte intresserad\w*", r"\binget intresse\b", r"\bnej,? tack\b",
    ),
    *_phrases(
        Category.POSITIVE, 0.85,
        # English
        r"\binterested\b",
        r"\b(?:sounds|looks|seems) (?:very |really |quite |pretty |super )?(?:interesting|good|great|promising|useful|"
        r"relevant)\b",
        r"\blet'?s (?:talk|chat|connect|discuss|set up|schedule|book|meet|do it|hop on|jump on|find a time|speak)\b",
        r"\b(?:happy|glad|keen|open) to (?:talk|chat|connect|discuss|learn|hear|meet|jump on|hop on|take a look|have a|"
        r"explore)\b",
        r"\b(?:would|'d) (?:love|like|be happy|be glad|be keen|be open|be interested) to (?:talk|chat|learn|hear|see|"
        r"know|discuss|meet|connect|get|set up|schedule|try|explore|find out|book)\b",
        r"\bsend (?:me |us |over )?(?:some |more |the |a |your )?(?:details|info|information|deck|proposal|pricing|"
        r"price list|brochure|case stud(?:y|ies)|overview|presentation|quote|offer)\b",
        r"\bsend (?:it|them|that) over\b",
        r"\b(?:book|schedule|set up|arrange|organi[sz]e|have|jump on|hop on) (?:a |an |some )?(?:quick |short |brief |"
        r"\d+[- ]?min(?:ute)? )?(?:call|meeting|demo|chat|intro)\b",
        r"\btell me more\b", r"\b(?:more|further) (?:info|information|details)\b",
        r"\b(?:what|when) (?:time |day )?(?:works|suits) (?:for )?you\b",
        r"\bhow about (?:monday|tuesday|wednesday|thursday|friday|next week|tomorrow|this week)\b",
        r"\b(?:i'?m|i am|we'?re|we are) (?:free|available) (?:on|at|next|tomorrow|this|monday|tuesday|wednesday|"
        r"thursday|friday)\b",
        r"\bcalendly\.com\b", r"\bcount (?:me|us) in\b", r"\bsign (?:me|us) up\b",
        r"\byes,? (?:please|let'?s|i'?m|we'?re|sure|interested|send|definitely|absolutely|i'?d)\b",
        r"\A\s*(?:yes|yep|yeah|sure|absolutely|definitely|of course)\s*[.!]*\s*\Z",
        r"\b(?:give me|give us) a (?:call|ring)\b", r"\bcall me\b",
        # German
        r"\binteressiert\b",
        r"\b(?:klingt|hort sich|liest sich) (?:sehr |durchaus |ganz |wirklich |echt )?(?:interessant|gut|spannend|"
        r"vielversprechend)\b",
        r"\binteressant\b", r"\bgerne?\b",
        r"\blassen sie uns (?:sprechen|telefonieren|reden|austauschen|einen termin|treffen)\b",
        r"\btermin (?:vereinbaren|ausmachen|machen|finden|vorschlagen)\b",
        r"\b(?:schicken|senden|schick|sende) (?:sie )?(?:mir|uns) (?:gerne |bitte |doch )?(?:mehr |weitere |ein |eine |"
        r"einige |ihre )?(?:infos|informationen|unterlagen|details|angebot|prasentation|preise|preisliste)\b",
        r"\b(?:mehr|weitere|nahere) (?:infos|informationen|details|unterlagen)\b",
        r"\brufen sie (?:mich|uns) (?:gerne |bitte |doch )?an\b", r"\btelefonat\b", r"\btelefonieren\b",
        r"\binteresse (?:besteht|haben wir|hatte ich|hatten wir|ist da)\b", r"\b(?:bin|sind) dabei\b",
        # French
        r"\binteresse(?:e|s|es)?\b", r"\b(?:ca|cela) (?:m'|nous )interesse\b", r"\bavec plaisir\b", r"\bvolontiers\b",
        r"\b(?:envoyez|envoyer|transmettez|faites parvenir)[- ](?:moi|nous) (?:plus d'|des |davantage d'|votre |vos |"
        r"la |une )?(?:informations|infos|details|documentation|brochure|proposition|tarifs|devis|presentation|"
        r"plaquette)\b",
        r"\b(?:plus|davantage) d'(?:informations|infos|details)\b",
        r"\b(?:prenons|fixons|organisons|planifions|calons|programmons) (?:un )?(?:rendez-vous|rdv|appel|call|creneau|"
        r"echange|point)\b",
        r"\b(?:appelez|telephonez|contactez)[- ]moi\b", r"\bme contacter\b", r"\bdiscutons\b", r"\bparlons-en\b",
        r"\bechangeons\b", r"\b(?:ca|cela) (?:me|nous) (?:parait|semble) interessant\b",
        r"\bje suis (?:disponible|dispo)\b",
        # Spanish
        r"\b(?:me|nos) interesa(?:ria)?\b", r"\b(?:estamos|estoy) interesad[oa]s?\b",
        r"\b(?:suena|parece) (?:muy )?(?:interesante|bien|genial)\b", r"\bcon (?:mucho )?gusto\b",
        r"\bencantad[oa]s?\b", r"\bme encantaria\b",
        r"\b(?:envieme|envienos|mandeme|mandenos|enviame|mandame|envie|manden|envien)(?: usted)? (?:mas )?"
        r"(?:informacion|detalles|info|una propuesta|el catalogo|precios|presupuesto)\b",
        r"\bmas (?:informacion|detalles|info)\b",
        r"\b(?:agendemos|agendar|programemos|programar|organicemos|hagamos|tengamos|coordinemos) (?:una )?(?:llamada|"
        r"reunion|cita|videollamada|demo)\b",
        r"\bhablemos\b", r"\bllam(?:ame|eme|enme)\b", r"\bcuando (?:le|te) (?:viene|va) bien\b",
        r"\bme gustaria (?:saber|conocer|hablar|ver|recibir)\b",
        # English: yes, and a call or a time asked for (a positive reply that asks something stays positive)
        r"\A\W*(?:yes|yep|yeah|sure|absolutely|definitely|of course|sounds good)\b",
        r"\bopen to (?:a |an |it|that|this|talking|chatting|meeting|exploring|hearing|learning|"
        r"(?:a )?(?:quick |short )?(?:call|chat|conversation|meeting|demo))\b",
        r"\b(?:calendar|booking|meeting|scheduling|calendly|zoom|teams) (?:link|invite|invitation)\b",
        r"\bsend (?:me |us |over )?(?:a |an |your )?(?:calendar |meeting |zoom |teams )?(?:invite|invitation)\b",
        r"\bbook (?:something|a time|a slot|some time|time|a meeting|a call|us in|me in)\b",
        r"\b(?:can|could|shall|should) we (?:talk|chat|meet|speak|set up|schedule|book|do|jump|hop|find a time)\b",
        r"\b(?:are|would) you (?:be )?(?:free|available) (?:on|at|for|next|tomorrow|this|monday|tuesday|wednesday|"
        r"thursday|friday)\b",
        r"\bwhat (?:times?|days?|slots?|dates?) (?:work|suit|would work|are good|are you)\b",
        # Italian, Dutch, Portuguese, Polish, Swedish
        r"\binteressat[oaie]\b", r"\b(?:mi|ci) interessa\b", r"\bvolentieri\b", r"\bsentiamoci\b",
        r"\b(?:mi )?chiam(?:ami|atemi)\b", r"\bgeinteresseerd\b", r"\blijkt (?:me|ons) (?:goed|interessant|leuk)\b",
        r"\bbel (?:me|mij)\b", r"\binteressad[oa]s?\b", r"\btenho interesse\b", r"\bvamos conversar\b",
        r"\bzainteresowan\w*", r"\bchetnie\b", r"\bzadzwon\w*", r"\bintresserad\w*", r"\blater (?:bra|intressant)\b",
        r"\bring mig\b",
        negatable=True,
    ),
]

INTENT_ORDER = [Category.UNSUBSCRIBE, Category.REFERRAL, Category.NEGATIVE, Category.POSITIVE]

# For each phrase, the literal text it cannot match without (cam.inbox.literals), read once: a text is searched
# only for the phrases whose literals it contains, a handful of the three hundred for most replies, since a
# substring test costs a fraction of a search (and of one search for all of a category's phrases at once).
# The literals are filed by their first three characters, so that a text looks up its own three-character
# pieces rather than testing all five hundred literals; the few shorter ones are tested each time.
_GRAM = 3
_LITERALS_BY_GRAM: dict[str, list[tuple[str, tuple[int, ...]]]] = {}
_SHORT_LITERALS: list[tuple[str, tuple[int, ...]]] = []
_ALWAYS_SEARCHED: set[int] = set()  # phrases without a literal they need: none today, but sound if one comes


def _file_literals() -> None:
    by_literal: dict[str, list[int]] = {}
    for index, phrase in enumerate(PHRASES):
        literals = required_literals(phrase.pattern)
        if literals is None:
            _ALWAYS_SEARCHED.add(index)
            continue
        for literal in literals:
            by_literal.setdefault(literal, []).append(index)
    for literal, indexes in by_literal.items():
        if len(literal) < _GRAM:
            _SHORT_LITERALS.append((literal, tuple(indexes)))
        else:
            _LITERALS_BY_GRAM.setdefault(literal[:_GRAM], []).append((literal, tuple(indexes)))


_file_literals()


def candidate_phrases(text: str, category: str | None = None) -> set[int]:
    """Indexes into ``PHRASES`` (of ``category`` only, if given) of the phrases that may match ``text``:
    every other phrase cannot, its literal words being missing."""
    found = set(_ALWAYS_SEARCHED)
    for literal, indexes in _SHORT_LITERALS:
        if literal in text:
            found.update(indexes)
    for gram in {text[start:start + _GRAM] for start in range(len(text) - _GRAM + 1)}:
        for literal, indexes in _LITERALS_BY_GRAM.get(gram, ()):
            if literal in text:
                found.update(indexes)
    if category is not None:
        found = {index for index in found if PHRASES[index].category == category}
    return found


_NEGATORS = {"not", "no", "never", "nicht", "kein", "keine", "keinen", "keinem", "keiner", "nie", "niemals", "kaum",
             "pas", "plus", "jamais", "ne", "n'", "nunca", "tampoco", "ni", "sin", "without", "ohne", "sans", "hardly",
             "non", "mai", "niet", "geen", "nooit", "nao", "inte", "ej", "aldrig"}
_TRAILING_NEGATORS = {"nicht", "pas", "plus", "jamais"}
_CLAUSE = re.compile(r"[.,;:!?()\n]|\bbut\b|\baber\b|\bmais\b|\bpero\b|\bsondern\b|\bsino\b")
_DOUBLE_NEGATIVE = re.compile(r"(?:don't|do not|dont) hesitate|n'hesitez pas|zogern sie nicht|no dude|no dudes")
_QUESTION_START = re.compile(
    r"^(?:how|what|who|why|when|where|which|can you|could you|do you|does|is it|is this|are you|would you|"
    r"wie|was|wer|warum|wann|wo|welche[rsn]?|konnen sie|konnten sie|haben sie|gibt es|"
    r"comment|quel(?:le)?s?|qui|pourquoi|quand|combien|est-ce que|pouvez-vous|avez-vous|"
    r"como|que|quien|por que|cuando|cuanto|cual|donde|pueden|puede usted|tienen)\b")
_URL = re.compile(r"\b(?:https?://|www\.)\S+")
_SUBJECT_PREFIX = re.compile(r"^(?:(?:re|aw|wg|fw|fwd|tr|rv|sv|antw|ref)\s*(?:\[\d+\])?\s*:\s*)+")


def _words(text: str) -> list[str]:
    return re.findall(r"[\w']+", text)


def _negated(folded: str, start: int, end: int) -> bool:
    before = _CLAUSE.split(folded[max(0, start - 80):start])[-1]
    before = _DOUBLE_NEGATIVE.sub(" ", before)
    words = _words(before)[-4:]
    if any(word in _NEGATORS or word.endswith("n't") or word.startswith("n'") for word in words):
        return True
    after = _CLAUSE.split(folded[end:end + 40])[0]
    return any(word in _TRAILING_NEGATORS for word in _words(after)[:3])


# Words of the unsubscribe families that people misspell. A word one letter off (two for a long word: a letter
# missing, added, changed, or two swapped), with the same first letter, is read as the word, for the
# unsubscribe phrases only: missing a request to stop costs more than reading one into a typo.
TYPO_WORDS = (
    "unsubscribe", "unsubscribed", "unsubscribing", "subscription", "remove", "abmelden", "austragen", "abbestellen",
    "entfernen", "verteiler", "desabonner", "desabonnez", "desinscrire", "desinscrivez", "retirez", "supprimez",
    "eliminenme", "borrenme", "quitenme", "sacarme", "eliminarme", "disiscrivere", "disiscrivermi", "cancellatemi",
    "cancellarmi", "rimuovetemi", "rimuovermi", "uitschrijven", "afmelden", "verwijder", "verwijderen", "mailinglijst",
    "descadastrar", "descadastre", "descadastrem", "remova", "removam", "wypisac", "wypisanie", "usuniecie",
    "avregistrera", "avprenumerera", "prenumeration", "avsluta",
)
_NEVER_CORRECTED = {"remote", "remotely", "removed", "removes", "removal", "avsluta", "retires", "supprime"}
_TYPO_BY_FIRST: dict[str, tuple[str, ...]] = {}
for _word in TYPO_WORDS:
    _TYPO_BY_FIRST[_word[0]] = (*_TYPO_BY_FIRST.get(_word[0], ()), _word)
_WORD = re.compile(r"[a-z]{5,}")
_UMLAUT_DIGRAPH = re.compile(r"(?<=[a-z])([aou])e(?=[a-z])")

# Replies that lean towards "stop" without saying it: nothing else in them decides, and reading them as
# neutral would put the person into nurture, so they are read as a request to stop (with less confidence),
# which a person can correct.
DOUBTS = [re.compile(pattern) for pattern in (
    r"\b(?:how|where) did you get (?:hold of )?my (?:e-?mail|address|contact|details|number|name)\b",
    r"\bwho gave you my\b", r"\bi (?:never|did not|didn't) (?:sign(?:ed)? up|subscribe|opt(?:ed)? in|ask(?:ed)? for)\b",
    r"\bwhy (?:do|are) you (?:keep )?(?:e-?mailing|writing|contacting|sending)\b", r"\bthis is spam\b",
    r"\bwoher haben sie (?:meine|unsere) (?:adresse|e-?mail|daten|kontaktdaten)\b", r"\bnie angemeldet\b",
    r"\bou avez-vous (?:eu|obtenu|trouve|recupere) (?:mon|mes|notre)\b", r"\bje ne (?:me suis jamais|suis pas) inscrit",
    r"\bde donde (?:sacaron|obtuvieron|tienen|saco|obtuvo|tiene) (?:mi|mis|nuestro)\b",
    r"\bnunca me (?:suscribi|registre)\b",
    r"\bdove avete (?:preso|trovato|avuto) (?:il mio|la mia|i miei)\b", r"\bnon mi sono (?:mai )?iscritt",
    r"\b(?:waar|hoe) (?:hebt|heeft|heb|komt) (?:u|je|jullie) (?:mijn|aan mijn)\b",
    r"\bonde (?:conseguiram|obtiveram|arranjaram|conseguiu|obteve) (?:o )?meu\b",
    r"\bskad (?:macie|ma pan|ma pani|masz|panstwo maja) (?:moj|moje|nasz)\b",
    r"\bvar har (?:ni|du) fatt (?:min|mina|tag pa min)\b",
)]


def _distance(word: str, target: str, limit: int) -> int:
    """Optimal-string-alignment distance between ``word`` and ``target``, or ``limit + 1`` once past ``limit``."""
    if abs(len(word) - len(target)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(target) + 1))
    for i, char in enumerate(word, 1):
        current = [i] + [0] * len(target)
        for j, other in enumerate(target, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char != other))
            if i > 1 and j > 1 and char == target[j - 2] and word[i - 2] == other:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1]


@functools.lru_cache(maxsize=4096)
def _meant(word: str) -> str:
    """The unsubscribe word ``word`` is a misspelling of, or ``word`` itself."""
    if word in _NEVER_CORRECTED:
        return word
    for target in _TYPO_BY_FIRST.get(word[0], ()):
        if word == target:
            return word
        limit = 1 if len(target) < 9 else 2
        if abs(len(word) - len(target)) <= limit and _distance(word, target, limit) <= limit:
            return target
    return word


def corrected(folded: str) -> tuple[str, list[str]]:
    """``folded`` with misspelt unsubscribe words read as meant (see ``TYPO_WORDS``), and what was read so."""
    changes: list[str] = []

    def fix(match: re.Match[str]) -> str:
        word = match.group(0)
        meant = _meant(word)
        if meant != word:
            changes.append(f"{word!r} as {meant!r}")
        return meant

    return _WORD.sub(fix, folded), changes


class ReplyIntentClassifier(Classifier):
    """A person's reply: unsubscribe, referral, negative, positive, question or neutral, from its new text."""

    name = "reply intent"

    def classify(self, message: IncomingMessage) -> Classification:
        text = message.new_text
        folded = fold(_URL.sub(" ", text))
        subject = _SUBJECT_PREFIX.sub("", fold(message.subject)).strip()
        hits: dict[str, list[tuple[str, float]]] = {}
        negated: list[str] = []
        referred: list[tuple[int, int]] = []  # where the referral phrases are: the address is near one

        in_text = candidate_phrases(folded)
        in_subject = candidate_phrases(subject, Category.UNSUBSCRIBE)  # the subject is read for unsubscribing only
        for index in sorted(in_text | in_subject):  # in the order of PHRASES, which orders the reasons
            phrase = PHRASES[index]
            for where, searched, candidates in (("", folded, in_text), ("subject ", subject, in_subject)):
                if index not in candidates:
                    continue
                for match in phrase.pattern.finditer(searched):
                    if phrase.negatable and _negated(searched, match.start(), match.end()):
                        negated.append(match.group(0).strip())
                        continue
                    hits.setdefault(phrase.category, []).append((f"{where}{match.group(0).strip()!r}",
                                                                 phrase.confidence))
                    if phrase.category == Category.REFERRAL and not where:
                        referred.append((match.start(), match.end() + 120))
                    break
        if Category.UNSUBSCRIBE not in hits:
            self._typos(folded, subject, hits)
        base: dict[str, Any] = dict(new_text=text)
        category = next((category for category in INTENT_ORDER if category in hits), None)
        if category is None:
            doubt = next((said for pattern in DOUBTS if (said := pattern.search(folded))), None)
            if doubt is not None:
                return Classification(category=Category.UNSUBSCRIBE, confidence=0.6, reasons=[
                    f"in doubt between neutral and unsubscribe: {doubt.group(0)!r}; stopping is the safe reading",
                    "a person can correct it"], **base)
            return self._without_intent(text, folded, negated, base)

        found = hits[category]
        confidence = max(value for _, value in found) + 0.03 * (len(found) - 1)
        reasons = [f"{Category(category).label}: {', '.join(dict.fromkeys(label for label, _ in found))}"]
        for other in INTENT_ORDER:
            if other != category and other in hits:
                confidence -= 0.1
                reasons.append(f"also {Category(other).label.lower()}: "
                               f"{', '.join(label for label, _ in hits[other])} (outranked)")
        if negated:
            reasons.append(f"negated, so not positive: {', '.join(repr(word) for word in negated)}")
        if category == Category.POSITIVE and "?" in folded:
            asked = next((line.strip() for line in text.splitlines() if "?" in line), "")
            reasons.append(f"and asks: {asked[:120]!r}")
        referral = ""
        if category == Category.REFERRAL:
            referral = self._referral_address(message, folded, referred)
            if referral:
                confidence += 0.07
                reasons.append(f"referred to {referral}")
        return Classification(category=category, confidence=round(min(0.97, max(0.5, confidence)), 2),
                              reasons=reasons, referral_email=referral, **base)

    @staticmethod
    def _typos(folded: str, subject: str, hits: dict[str, list[tuple[str, float]]]) -> None:
        """Adds an unsubscribe request found once misspelt words are read as meant (``corrected``), and
        German written without umlauts ("loeschen", "Gruesse") read as with them."""
        for where, searched in (("", folded), ("subject ", subject)):
            spelt = _UMLAUT_DIGRAPH.sub(r"\1", searched)
            fixed, changes = corrected(spelt)
            if spelt != searched:
                changes = ["ae, oe, ue as a, o, u", *changes]
            if not changes:
                continue
            for index in sorted(candidate_phrases(fixed, Category.UNSUBSCRIBE)):
                found = PHRASES[index].pattern.search(fixed)
                if found:
                    hits[Category.UNSUBSCRIBE] = [(f"{where}{found.group(0).strip()!r}, reading "
                                                   f"{', '.join(changes)}", 0.85)]
                    return

    @staticmethod
    def _without_intent(text: str, folded: str, negated: list[str], base: dict[str, Any]) -> Classification:
        reasons = [f"negated, so not positive: {', '.join(repr(word) for word in negated)}"] if negated else []
        if not folded.strip():
            return Classification(category=Category.NEUTRAL, confidence=0.5,
                                  reasons=["no text of the sender's own (only quotes, a signature, or nothing)"],
                                  **base)
        question = "?" in folded
        opening = _QUESTION_START.search(folded.strip())
        if question or opening:
            shown = next((line.strip() for line in text.splitlines() if "?" in line), "") if question else ""
            reason = (f"a question: {shown[:120]!r}" if shown
                      else f"starts like a question: {cast(re.Match[str], opening).group(0)!r}")
            return Classification(category=Category.QUESTION, confidence=0.7 if question else 0.55,
                                  reasons=[reason, *reasons], **base)
        return Classification(category=Category.NEUTRAL, confidence=0.5,
                              reasons=["no phrase of any category", *reasons], **base)

    @staticmethod
    def _referral_address(message: IncomingMessage, folded: str, near: list[tuple[int, int]]) -> str:
        """The first address, not the sender's nor ours, near a referral phrase, else anywhere, else in Cc."""
        own = set(message.own_addresses)
        found = [match for match in ADDRESS.finditer(folded) if match.group(0) not in own]
        for start, end in near:
            for match in found:
                if start <= match.start() <= end:
                    return match.group(0)
        if found:
            return found[0].group(0)
        for address in header_addresses(message.message, "Cc"):
            if address not in own:
                return address
        return ""


CLASSIFIERS: list[Classifier] = [SesClassifier(), BounceClassifier(), ComplaintClassifier(), AutoReplyClassifier(),
                                 ReplyIntentClassifier()]


def classify_message(message: bytes | Message, *, today: datetime.date | None = None,
                     classifiers: Sequence[Classifier] | None = None) -> Classification:
    """What ``message`` (raw bytes or a parsed message) is, how sure we are, and why.

    Never raises for any bytes: what is not a message at all comes back as ``NEUTRAL`` with
    confidence 0 and the reason. ``today`` (default: the machine's date) places return dates
    written without a year. ``classifiers`` replaces ``CLASSIFIERS``; the first that answers decides.
    """
    if isinstance(message, bytes | bytearray):
        try:
            parsed: Message = read_message(bytes(message))
        except UnreadableMessage as exc:
            return Classification(category=Category.NEUTRAL, confidence=0.0, reasons=[f"not a message: {exc}"])
    else:
        parsed = message
    incoming = IncomingMessage(parsed, today=today or datetime.date.today())
    # A message cut at the nesting or part limit is classified on what was read, and says so.
    unread = unread_parts(parsed)
    for classifier in CLASSIFIERS if classifiers is None else classifiers:
        result = classifier.classify(incoming)
        if result is not None:
            return replace(result, new_text=result.new_text or incoming.new_text, reasons=[*result.reasons, *unread])
    return Classification(category=Category.NEUTRAL, confidence=0.5,
                          reasons=["no classifier recognised it", *unread], new_text=incoming.new_text)
