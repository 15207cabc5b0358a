"""Reports that mail systems send back: delivery failures (bounces) and feedback reports (complaints).

A bounce is recognised in two steps. First, is the message a report from a mail system at all? A
delivery status report (``multipart/report; report-type=delivery-status``), an
``X-Failed-Recipients`` header, or a sender such as ``MAILER-DAEMON@…`` or ``postmaster@…`` says so
on its own; a subject such as “Undeliverable:” or “Mail delivery failed”, or an empty return path,
only together with a failed recipient or a diagnostic in the text. A person's reply has none of
these, which is what keeps a reply that talks *about* a bounce from being taken for one; a forward
("Fwd:", "WG:", …) or a reply ("Re:", "AW:", … not from a mail system) that is not itself a report
is a person's message even when it quotes an old bounce.

Not every report is a failure: one whose recipients were all delivered, relayed or expanded (or
"deliverable", or a 2.x.x status), or a notice whose words say so and name no error, is ``Delivered``.

Then, who failed and why, from the most to the least reliable source, the first that names anyone:

1. the per-recipient blocks of the RFC 3464 report (``Action``, ``Status``, ``Original-Recipient``
   / ``Final-Recipient``, ``Diagnostic-Code``);
2. the ``X-Failed-Recipients`` header (Exim, Gmail);
3. the report's text, in the shapes the usual mail servers write it (Postfix, Sendmail, Exim,
   qmail, Exchange and Office 365, Gmail, Yahoo, Amazon SES, Courier, Domino, MDaemon, and the
   German, French and Spanish texts of several providers);
4. flufl.bounce's detectors;
5. any address in the report's text, when the text also gives a diagnostic;
6. the ``To`` of the original message the report carries (``message/rfc822``,
   ``text/rfc822-headers``, or the copy pasted below the text).

Where the original message's ``To`` is known, addresses from the heuristic sources (3 to 5) that are
not in it are dropped, as long as one that is remains.

Hard or soft: an ``Action: delayed``, a 4.x.x status or a 4xx reply is soft; so is a full mailbox
or an exceeded quota (even with 5.2.2 or 552), greylisting, “try again later”, and a refusal of the
message rather than the address (as spam, by a block list, for its size), since the address itself
may be fine. Otherwise 5.x.x, 5xx, and phrases such as
“user unknown” or “does not exist” are hard; a failure with no code and no phrase is taken as hard,
with less confidence.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message

import flufl.bounce

from cam.inbox.reports import (
    header_blocks,
    is_feedback_report,
    original_addresses,
    original_headers,
    parts_of_type,
    report_text,
    report_type,
)
from cam.inbox.text import ADDRESS, fold, header, header_addresses, sender_address

logger = logging.getLogger(__name__)


class _WithoutDetectorRuns(logging.Filter):
    """flufl.bounce logs each detector it runs at INFO: some twenty lines a bounce, nothing to act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Running detector")


logging.getLogger("flufl.bounce").addFilter(_WithoutDetectorRuns())

A = ADDRESS.pattern.replace("A-Z", "")  # matched against folded (lower-case) text

_DAEMONS = re.compile(r"^(?:mailer[-_.]?daemon|post[-_.]?master|mail[-_.]?daemon|mail[-_.]?delivery[-_.\w]*|mdaemon|"
                      r"microsoftexchange[0-9a-f]*|bounces?|nobody|noreply-dsn|no-reply-dsn|mailerdaemon|"
                      r"mail-notification|deliverystatus|ndr)(?:[+=@]|$)", re.I)
_DAEMON_NAMES = re.compile(r"mail delivery (?:system|subsystem|service|agent)|mailer[- ]daemon|postmaster|"
                           r"mail administrator|systemadministrator|internet mail delivery", re.I)
_BOUNCE_SUBJECT = re.compile(
    r"^(?:undeliver(?:ed|able)|delivery status notification|(?:mail |message )?delivery (?:has )?fail|"
    r"failure notice|returned mail|mail returned|returned to sender|could not (?:be )?deliver|"
    r"non[- ]?deliver|delivery (?:failure|problem|error|notification|report|delayed|incomplete)|"
    r"message not delivered|not delivered|delivery (?:status|warning)|warning: could not send|"
    r"mail delivery|undelivered mail|nondeliverable|message delayed|delayed mail|"
    r"unzustellbar|nicht zustellbar|zustellung fehlgeschlagen|unzustellbare|"
    r"non remis|non distribuable|echec de (?:la )?(?:remise|distribution)|message non delivre|"
    r"no se (?:puede|pudo) entregar|no entregado|imposible entregar|error de entrega)")
_EMPTY_RETURN_PATH = re.compile(r"^\s*<\s*>\s*$")
# A forward's or a reply's subject prefix, in the usual languages. A person's forward may quote an old
# bounce and is none; so is a reply, unless a mail system sent it (some answer "Re: <subject>").
_FORWARD_SUBJECT = re.compile(r"^\s*(?:fwd?|fw|wg|tr|rv|enc|doorst|i)\s*(?:\[\d+\])?\s*:")
_REPLY_SUBJECT = re.compile(r"^\s*(?:re|aw|sv|vs|antw|odp|res|r)\s*(?:\[\d+\])?\s*:")

SUCCESS_ACTIONS = ("delivered", "relayed", "expanded", "deliverable")
_SUCCESS_STATUS = re.compile(r"2\.\d{1,3}\.\d{1,3}\b")
# A report of success, in the words of the usual servers (Postfix's "successfully delivered", Exchange's
# "Delivery to these recipients or groups is complete", Gmail's relay notice) in several languages.
_SUCCESS_TEXT = re.compile(
    r"successfully delivered|success(?:ful)? (?:mail )?delivery|delivery (?:to [^\n]{0,80})?(?:was|is|has been) "
    r"(?:successful|complete)|delivery to (?:these|the following) recipients?(?: or groups)? (?:is complete|was "
    r"successful|succeeded)|(?:was|has been|have been) (?:successfully )?(?:delivered|relayed) to|relayed to non-dsn|"
    r"delivered to (?:the )?(?:mailbox|recipient)|erfolgreich (?:zugestellt|ubermittelt)|wurde zugestellt|"
    r"(?:a ete|ont ete) (?:remis|distribues?|livres?)|remis avec succes|entregado correctamente|fue entregado|"
    r"consegnat[oa] (?:con successo|correttamente)|succesvol afgeleverd|entregue com sucesso|dostarczon[aoy]|"
    r"har levererats")
# What a success notice never says.
_FAILED_TEXT = re.compile(r"could not be delivered|couldn't be delivered|undeliverable|delivery (?:has )?failed|"
                          r"failed permanently|permanent(?:ly)? fail|not (?:been )?delivered|unable to deliver|"
                          r"fehlgeschlagen|nicht zugestellt|n'a pas pu|no se (?:ha podido|pudo)")

# Lines that start with the failed address: Postfix, qmail, Yahoo ("<a@b>: …"), Sendmail ("<a@b>... User unknown").
_ANGLE_LINE = re.compile(rf"^[ \t]*<(?P<addr>{A})>(?:[ \t]*\(expanded from:?[ \t]*<?(?P<orig>{A})>?\))?"
                         r"[ \t]*(?::|\.\.\.)(?P<rest>.*)$", re.M)
# Intros after which the failed addresses are listed, one a line.
_LIST_INTRO = re.compile(
    r"following address(?:es|\(es\))? failed|"
    r"following recipients?(?:\(s\))?(?: address(?:es)?)? (?:failed|could not|couldn't|cannot|can't|was not|were not|"
    r"has been delayed|have been delayed|is delayed|are delayed|did not|had (?:permanent|transient))|"
    r"delivery to the following recipients? (?:failed|has been delayed|was aborted|is delayed)|"
    r"delivery has failed to these recipients|could not be delivered to (?:the following|these) recipients?|"
    r"following (?:recipient|address)(?:\(s\)|es|s)? (?:could not|cannot|was not|were not)|"
    r"following (?:address(?:es)?|recipients?)(?:\(e?s\))? (?:had|has|have|were)\b[^\n]{0,40}"
    r"(?:errors?|problems?|affected)|"
    r"error occurred while trying to deliver the mail to the following recipients|"
    r"unable to deliver (?:your |this )?message to the following (?:address|recipient)|"
    r"failed recipients?:|undeliverable (?:address|recipients?):|here is your list of failed recipients|"
    r"message could not be delivered to (?:some|the following) recipients|did not reach the following recipients?|"
    r"recipient\(s\) could not be reached|following list of recipients|"
    r"address(?:es)? to which the message has not yet been delivered|(?:was|were) not delivered to:?$|"
    r"could not be delivered to the following|"
    r"(?:die )?folgenden? (?:empfanger|adressen?)|konnte(?:n)? nicht zugestellt werden(?: an)?:|"
    r"(?:aux )?(?:destinataires?|adresses?)(?: ou groupes?)? suivante?s?|"
    r"(?:los )?(?:siguientes )?destinatarios? siguientes?|(?:los )?siguientes destinatarios", re.M)
# Sentences that name the failed address inline.
_INLINE = [re.compile(pattern, re.M) for pattern in (
    rf"(?:message|mail|e-?mail|nachricht) (?:to|for|addressed to|an) <?(?P<addr>{A})>? "
    r"(?:couldn't|could not|was not|wasn't|cannot|can't|has not|hasn't|did not|didn't|konnte nicht|ist nicht)",
    rf"(?:wasn't|was not|couldn't be|could not be|has not been|hasn't been|cannot be|can't be|were not|"
    rf"was unable to be) delivered to\s+<?(?P<addr>{A})>?",
    rf"(?:couldn't|could not|cannot|can't|unable to|failed to|was unable to) deliver (?:your |the |this )?"
    rf"(?:message |mail |e-?mail )?to\s+<?(?P<addr>{A})>?",
    rf"delivery to\s+<?(?P<addr>{A})>? (?:has )?failed",
    rf"undeliverable to\s+<?(?P<addr>{A})>?",
    rf"rcpt to:\s*<?(?P<addr>{A})>?",
    rf"(?:final|original)-recipient:\s*rfc822;\s*<?(?P<addr>{A})>?",
    rf"(?:failed|intended|invalid|unknown|bad) recipient(?: address)?:\s*<?(?P<addr>{A})>?",
    rf"(?:unknown user|user unknown|no such user|invalid user|unknown address):\s*<?(?P<addr>{A})>?",
    rf"^\s*(?:recipient|recipient address|empfanger|destinataire|destinatario|to):\s*<?(?P<addr>{A})>?\s*$",
    rf"undeliverable address:\s*<?(?P<addr>{A})>?",
    rf"error-for:\s*<?(?P<addr>{A})>?",
    rf"(?:user|mailbox|recipient|address|account|utilisateur|destinataire|empfanger|postfach|usuario|destinatario|"
    rf"buzon|adresse)\s+<?(?P<addr>{A})>?\s+(?:is\s+)?(?:unknown|does not exist|doesn't exist|not found|unavailable|"
    r"disabled|inactive|full|over quota|inconnue?|n'existe pas|existiert nicht|unbekannt|ist voll|no existe|"
    r"desconocido|esta lleno|not listed)",
    rf"^\s*(?P<addr>{A})\s*(?:\.\.\.|:)\s*(?:user unknown|unknown user|no such user|mailbox|user not found|"
    r"recipient|address|unrouteable|account|quota|over quota|invalid)",
    rf"\ban\s+<?(?P<addr>{A})>?\s+(?:konnte nicht|ist fehlgeschlagen|nicht zugestellt|war nicht)",
    rf"zustellung an\s+<?(?P<addr>{A})>?\s+(?:ist )?fehlgeschlagen",
    rf"\ba\s+<?(?P<addr>{A})>?\s+n'a pas pu etre",
    rf"(?:n'a pas pu etre (?:remis|distribue|livre)e?|impossible de (?:remettre|distribuer|livrer)[^\n]*?)\s+a\s+"
    rf"<?(?P<addr>{A})>?",
    rf"(?:no se (?:ha podido|pudo) entregar|no (?:ha )?pudo ser entregado)(?: el mensaje)?\s+a\s+<?(?P<addr>{A})>?",
    rf"your message (?:to|for) <?(?P<addr>{A})>? (?:was|has been) (?:automatically )?rejected",
    rf"mailbox (?:for|of)\s+<?(?P<addr>{A})>?\s+(?:is|was)",
)]

_ENHANCED = re.compile(r"(?<![\d.])([45]\.\d{1,3}\.\d{1,3})(?!\d|\.\d)")
_SMTP_CODE = re.compile(r"(?:^|[\s#'\"(;:\[=])([45][0-5]\d)(?=[\s\-:]|$)", re.M)

_SOFT = re.compile(
    r"(?:mailbox|mailfolder|mail folder|inbox|postfach|boite) (?:is |ist |est )?(?:full|voll|pleine)|"
    r"(?:over|exceed(?:ed|s)?|exceeding)(?: the)?(?: allowed| mailbox| disk)? ?"
    r"(?:quota|storage)|quota exceeded|"
    r"quota (?:exceeded|full)|over ?quota|insufficient (?:system )?storage|mailbox size limit|out of storage|"
    r"storage (?:space )?(?:full|exceeded)|"
    r"gr[ae]ylist|try again later|please try again|temporar(?:y|ily)|delayed|deferred|will (?:be )?retr(?:y|ied)|"
    r"still trying|not yet been delivered|could not send message for past|will keep trying|"
    # The server gave up after days of trying to reach the recipient's host: that says nothing about the address
    # (Exim's "retry timeout exceeded", RFC 3463's 4.4.7 / 5.4.7 "delivery time expired").
    r"retry timeout exceeded|delivery time expired|message expired|"
    r"postfach (?:ist )?voll|speicherplatz|kontingent|boite (?:aux lettres |de reception )?(?:est )?pleine|"
    r"quota (?:depasse|atteint)|buzon (?:esta )?lleno|cuota (?:excedida|superada)")
# Refusals that are about the message or the sender, not the address: the address may well work.
_BLOCKED = re.compile(r"\bspam\b|block ?list|black ?list|blocked|\bdnsbl\b|spamhaus|reputation|"
                      r"rejected (?:for|due to|by) policy|policy (?:rejection|reasons)|content rejected|"
                      r"size limit exceeded|message (?:is )?too (?:large|big)|exceeds? (?:the )?(?:maximum )?"
                      r"(?:message )?size")
_ADDRESS_GONE = re.compile(
    r"user unknown|unknown user|no such (?:user|mailbox|recipient|address|person)|does not exist|doesn't exist|"
    r"not exist|recipient not found|address not found|user not found|mailbox not found|couldn't be found|"
    r"could not be found|invalid (?:recipient|address|mailbox|user)|mailbox (?:unavailable|disabled|inactive)|"
    r"account (?:disabled|has been disabled|inactive|is disabled|does not exist|closed|suspended)|"
    r"unrouteable|unroutable|no mailbox|recipient address rejected|unknown (?:recipient|address|mailbox|local)|"
    r"not listed in|host (?:or domain )?not found|domain not found|no mx|nxdomain|bad destination|"
    r"recipnotfound|unbekannt|existiert nicht|gibt es nicht|ungultige|inconnue?|n'existe pas|introuvable|"
    r"no existe|desconocido|no valido|inexistente")
_PERMANENT = re.compile(r"permanent(?:ly)?|fatal error|gave up|giving up|endgultig|definitiv|definitivement")
_FAILURE_WORDS = re.compile(r"could not be delivered|couldn't be delivered|undeliver|not delivered|delivery failed|"
                            r"failed|failure|rejected|unable to deliver|returned|error|konnte nicht|fehlgeschlagen|"
                            r"n'a pas pu|echec|no se (?:ha podido|pudo)|delay")


@dataclass(frozen=True)
class Bounce:
    hard: bool
    failed_recipients: list[str]
    status_code: str
    confidence: float
    reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Delivered:
    """A mail system's notice that a message was delivered, relayed or expanded: no bounce."""

    reasons: list[str] = field(default_factory=list)


@dataclass
class _Failure:
    address: str
    action: str = ""
    status: str = ""
    diagnostic: str = ""


# --- who failed -------------------------------------------------------------------------------


def _address_in(value: str) -> str:
    """The address in a DSN field such as ``rfc822; <anna@example.com>``, lower case; ``""`` if none."""
    _kind, _, rest = value.partition(";")
    found = ADDRESS.search(rest or value)
    return found.group(0).lower() if found else ""


def _dsn_failures(message: Message) -> tuple[list[_Failure], bool]:
    """The failed or delayed recipients of the RFC 3464 blocks, and whether there were any blocks."""
    failures: list[_Failure] = []
    seen_blocks = False
    for part in parts_of_type(message, "message/delivery-status", "message/global-delivery-status",
                               "text/delivery-status"):
        for block in header_blocks(part):
            recipient = next((address for address in (_address_in(str(block.get(name, ""))) for name in
                              ("Original-Recipient", "Final-Recipient", "X-Actual-Recipient")) if address), "")
            if not recipient:
                continue
            seen_blocks = True
            action = " ".join(str(block.get("Action", "")).split()).lower()
            status = _ENHANCED.search(str(block.get("Status", "")))
            diagnostic = " ".join(str(block.get("Diagnostic-Code", "")).split())
            # Successes (RFC 3464, 2.3.3), and "deliverable", which some servers write for a success.
            if action.startswith(SUCCESS_ACTIONS) or _SUCCESS_STATUS.match(str(block.get("Status", "")).strip()):
                continue
            if not action and not (status and status.group(1)[0] in "45"):
                continue
            failures.append(_Failure(recipient, action=action, status=status.group(1) if status else "",
                                     diagnostic=diagnostic))
    return failures, seen_blocks


def _paragraph_after(text: str, position: int) -> str:
    """From ``position`` to the next blank line."""
    end = re.compile(r"\n[ \t]*\n").search(text, position)
    return text[position:end.start() if end else len(text)]


def _paragraph_around(text: str, start: int, end: int) -> str:
    before = text.rfind("\n\n", 0, start)
    after = re.compile(r"\n[ \t]*\n").search(text, end)
    return text[before + 2 if before >= 0 else 0:after.start() if after else len(text)]


def _text_failures(text: str) -> list[_Failure]:
    """Failed recipients named in the report's text, each with the diagnostic that follows or surrounds it."""
    failures: list[_Failure] = []

    def add(address: str, diagnostic: str) -> None:
        address = address.lower().rstrip(".")
        for failure in failures:
            if failure.address == address:
                if not failure.diagnostic:
                    failure.diagnostic = diagnostic
                return
        failures.append(_Failure(address, diagnostic=" ".join(diagnostic.split())))

    for match in _ANGLE_LINE.finditer(text):
        add(match.group("orig") or match.group("addr"), match.group("rest") + _paragraph_after(text, match.end()))
    for intro in _LIST_INTRO.finditer(text):
        lines = text[intro.end():].split("\n")[:40]
        found = 0
        misses = 0
        for index, line in enumerate(lines):
            stripped = line.strip().strip("*").strip()
            if not stripped:
                if found:
                    break
                continue
            addresses = re.findall(A, stripped)
            rest_words = re.sub(A, " ", stripped).split()
            if addresses and (len(rest_words) <= 8 or re.match(rf"[<'\"]?{A}", stripped)):
                found += 1
                diagnostic = "\n".join(lines[index + 1:index + 6])
                add(addresses[0], f"{stripped}\n{diagnostic}")
            elif found:
                break
            else:
                misses += 1
                if misses > 3:
                    break
    for pattern in _INLINE:
        for match in pattern.finditer(text):
            add(match.group("addr"), _paragraph_around(text, match.start(), match.end()))
    return failures


def _flufl_failures(message: Message) -> list[_Failure]:
    try:
        temporary, permanent = flufl.bounce.all_failures(message)
    except Exception:  # a third-party heuristic that fails on an odd message must not stop ours
        logger.debug("flufl.bounce failed on a message", exc_info=True)
        return []
    failures = [_Failure(address.decode("ascii", "replace").lower(), action="failed") for address in permanent]
    failures += [_Failure(address.decode("ascii", "replace").lower(), action="delayed") for address in temporary
                 if address not in permanent]
    return [failure for failure in failures if ADDRESS.fullmatch(failure.address)]


def _is_excluded(address: str, excluded: set[str]) -> bool:
    local = address.partition("@")[0]
    return address in excluded or bool(_DAEMONS.match(local))


# --- why ----------------------------------------------------------------------------------------


def _codes(text: str) -> tuple[str, str]:
    """The first enhanced status code (5.1.1) and the first SMTP reply code (550) in ``text``."""
    enhanced = _ENHANCED.search(text)
    smtp = _SMTP_CODE.search(text)
    return (enhanced.group(1) if enhanced else "", smtp.group(1) if smtp else "")


def _severity(failure: _Failure, report: str) -> tuple[bool, str, str]:
    """(hard?, status code, why) for one failed recipient.

    The recipient's own diagnostic decides; where it says nothing (no code, no telling phrase), the
    whole report text does.
    """
    diagnostic = fold(failure.diagnostic)
    codes = _codes(diagnostic)
    if codes == ("", ""):
        codes = _codes(report)
    verdict = _verdict(failure.action, failure.status, diagnostic, codes) if diagnostic else None
    verdict = verdict or _verdict(failure.action, failure.status, report, codes)
    return verdict or (True, failure.status or codes[0] or codes[1],
                       "no status code or diagnostic; a failed delivery is taken as permanent")


def _verdict(action: str, block_status: str, text: str, codes: tuple[str, str]) -> tuple[bool, str, str] | None:
    """(hard?, status code, why) from ``text`` and ``codes``, or ``None`` when they tell neither code nor cause."""
    enhanced, smtp = codes
    status = block_status or enhanced
    if status and status.endswith(".0.0") and enhanced and enhanced[0] == status[0]:
        status = enhanced  # the diagnostic's 5.1.1 says more than the block's 5.0.0
    code = status or smtp
    soft = _SOFT.search(text)
    blocked = _BLOCKED.search(text)
    if action.startswith("delayed"):
        return False, code, "Action: delayed"
    if code.startswith("4"):
        return False, code, f"{code} is a temporary failure"
    if soft:
        return False, code, f"the report says {soft.group(0)!r}"
    if status.endswith(".2.2"):
        return False, code, f"{status} means the mailbox is full"
    if blocked and not _ADDRESS_GONE.search(text):
        return False, code, f"refused for the message or the sender ({blocked.group(0)!r}), not for the address"
    if code.startswith("5"):
        return True, code, f"{code} is a permanent failure"
    hard = _ADDRESS_GONE.search(text) or _PERMANENT.search(text)
    if hard:
        return True, code, f"the report says {hard.group(0)!r}"
    return None


# --- the detectors ------------------------------------------------------------------------------


def _evidence(message: Message, subject: str) -> tuple[list[str], list[str]]:
    """Reasons that make ``message`` a mail system's report: (decisive ones, supporting ones)."""
    decisive: list[str] = []
    supporting: list[str] = []
    if report_type(message) in ("delivery-status", "global-delivery-status"):
        decisive.append(f"a delivery status report (multipart/report; report-type={report_type(message)})")
    elif parts_of_type(message, "message/delivery-status", "message/global-delivery-status"):
        decisive.append("carries a message/delivery-status part")
    if header(message, "X-Failed-Recipients"):
        decisive.append(f"X-Failed-Recipients: {header(message, 'X-Failed-Recipients')}")
    if header(message, "X-MS-Exchange-Message-Is-Ndr") or header(message, "X-MS-Exchange-Organization-Is-Ndr"):
        decisive.append("Exchange marks it as a non-delivery report")
    sender = sender_address(message)
    from_header = header(message, "From")
    if sender and _DAEMONS.match(sender.partition("@")[0]):
        decisive.append(f"sent by {sender}")
    elif _DAEMON_NAMES.search(from_header):
        decisive.append(f"sent by {from_header!r}")
    if _BOUNCE_SUBJECT.search(fold(subject).strip()):
        supporting.append(f"subject {subject!r}")
    if _EMPTY_RETURN_PATH.match(header(message, "Return-Path")) and not header(message, "In-Reply-To"):
        supporting.append("empty return path")
    return decisive, supporting


def _structural(message: Message) -> bool:
    """Does the message's own structure (not its words) make it a mail system's failure report?"""
    return bool(report_type(message) in ("delivery-status", "global-delivery-status")
                or parts_of_type(message, "message/delivery-status", "message/global-delivery-status")
                or header(message, "X-Failed-Recipients") or header(message, "X-MS-Exchange-Message-Is-Ndr")
                or header(message, "X-MS-Exchange-Organization-Is-Ndr"))


def _from_a_person(message: Message, subject: str) -> bool:
    """Is ``message`` a person's forward or reply (by its subject), not a mail system's report?"""
    if _structural(message):
        return False
    folded = fold(subject)
    if _FORWARD_SUBJECT.match(folded):
        return True
    sender = sender_address(message)
    return bool(_REPLY_SUBJECT.match(folded)) and not (
        (sender and _DAEMONS.match(sender.partition("@")[0])) or _DAEMON_NAMES.search(header(message, "From")))


def _success(message: Message, text: str) -> str:
    """Why a mail system's report (``text``: its words) is a notice of successful delivery, relay or
    expansion; ``""`` when it is not one. Such a notice names the recipient as a failure does, and is no bounce."""
    blocks = [block for part in parts_of_type(message, "message/delivery-status", "message/global-delivery-status",
                                              "text/delivery-status") for block in header_blocks(part)]
    actions = [" ".join(str(block.get("Action", "")).split()).lower() or "no Action"
               for block in blocks if block.get("Final-Recipient") or block.get("Original-Recipient")]
    if actions:
        return f"a delivery status report of success (Action: {', '.join(dict.fromkeys(actions))})"
    said = _SUCCESS_TEXT.search(text)
    if said is None or _FAILED_TEXT.search(text) or _ADDRESS_GONE.search(text) or _codes(text) != ("", ""):
        return ""
    return f"a notice of successful delivery: {said.group(0)!r}"


def detect_bounce(message: Message, *, subject: str) -> Bounce | Delivered | None:
    """The bounce ``message`` is; ``Delivered`` when it is a mail system's notice of success; ``None``
    when it is neither."""
    if is_feedback_report(message) or report_type(message) == "disposition-notification":
        return None
    decisive, supporting = _evidence(message, subject)
    if not decisive and not supporting:
        return None
    if _from_a_person(message, subject):
        return None  # a person's forward or reply, which may quote an old bounce
    text = report_text(message)
    original = original_headers(message)
    original_to = original_addresses(original, "To") + original_addresses(original, "Cc")
    # The report's sender and its addressee (our own mailbox), and the original's sender (us again).
    excluded = {sender_address(message), *header_addresses(message, "To"), *original_addresses(original, "From")}

    dsn, had_blocks = _dsn_failures(message)
    if not dsn:  # every recipient of its report delivered, relayed or expanded; or no report and words of success
        success = _success(message, text) if had_blocks or not _structural(message) else ""
        if success:
            return Delivered(reasons=[success, "a success notice is no bounce"])
    text_found = [failure for failure in _text_failures(text) if not _is_excluded(failure.address, excluded)]
    if not decisive and not (
            (text_found or _codes(text) != ("", "")) and _FAILURE_WORDS.search(f"{text} {fold(subject)}")):
        return None  # a bounce-like subject or an empty return path, but no failure in the text

    reasons = decisive + supporting

    def generic() -> list[_Failure]:
        if not (_SOFT.search(text) or _ADDRESS_GONE.search(text) or _codes(text) != ("", "")):
            return []
        return [_Failure(address.lower()) for address in dict.fromkeys(re.findall(A, text))
                if not _is_excluded(address.lower(), excluded)]

    # (name, how to find them, confidence, heuristic?), most reliable first; the first that finds anyone wins.
    sources: list[tuple[str, Callable[[], list[_Failure]], float, bool]] = [
        ("the delivery status report", lambda: dsn, 0.98, False),
        ("X-Failed-Recipients",
         lambda: [_Failure(address) for address in header_addresses(message, "X-Failed-Recipients")], 0.95, False),
        ("the report's text", lambda: text_found, 0.93, True),
        ("flufl.bounce", lambda: [f for f in _flufl_failures(message) if not _is_excluded(f.address, excluded)],
         0.88, True),
        ("an address in the report's text", generic, 0.8, True),
        ("the original message's To",
         lambda: [_Failure(address) for address in original_to if not _is_excluded(address, excluded)], 0.75, False),
    ]
    failures: list[_Failure] = []
    confidence, source_name = 0.6, ""
    for name, find, value, heuristic in sources:
        failures = find()
        if not failures:
            continue
        confidence, source_name = value, name
        if heuristic and original_to:
            failures = [failure for failure in failures if failure.address in original_to] or failures
        break
    if not failures and not decisive:
        return None

    # Diagnostics found in the text complete what another source lacks.
    by_address = {failure.address: failure for failure in text_found}
    hard_any, status_code, why = False, "", ""
    for failure in failures:
        extra = by_address.get(failure.address)
        if extra is not None and not failure.diagnostic:
            failure.diagnostic = extra.diagnostic
        hard, code, failure_why = _severity(failure, text)
        hard_any = hard_any or hard
        if code and not status_code:
            status_code = code
        if not why or hard:
            why = failure_why
        detail = f"Status {failure.status}" if failure.status else (f"code {code}" if code else "no code")
        reasons.append(f"{failure.address} failed ({detail}), found in {source_name}")
        if failure.action:
            reasons.append(f"Action: {failure.action}")
        if failure.diagnostic:
            reasons.append(f"diagnostic: {failure.diagnostic[:200]}")
    if not failures:
        hard_any, status_code, why = _severity(_Failure("", diagnostic=text), text)
        reasons.append("no failed recipient could be read")
    reasons.append(("hard: " if hard_any else "soft: ") + why)
    if not status_code:
        confidence -= 0.05
    return Bounce(hard=hard_any, failed_recipients=[failure.address for failure in failures],
                  status_code=status_code, confidence=round(confidence, 2), reasons=reasons)
