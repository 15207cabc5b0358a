"""The words of a message: its readable body, and the new text of a reply.

``new_text`` keeps what the sender wrote in this message and drops what came before it or around
it: quoted lines (``> …``); everything under a reply header (“On … wrote:”, “Am … schrieb …:”,
“Le … a écrit :”, “El … escribió:”, “-----Original Message-----”, Outlook's “From: … Sent: …”
block and its line of underscores, a forwarded message); and the signature (after “-- ”, after a
closing line such as “Best regards,”, “Mit freundlichen Grüßen”, “Cordialement” or “Saludos”, or a
“Sent from my iPhone” line). In HTML bodies, ``<blockquote>`` and the quote containers of Gmail,
Outlook, Yahoo and Apple Mail are dropped before the text is read.

``fold`` is the form the classifier's phrases are matched against: lower case, accents removed,
typographic apostrophes made plain.

Nothing here raises on a malformed message: a part that cannot be decoded reads as UTF-8 with
replacement characters, a header that cannot be parsed reads as its raw text.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Hashable, Iterator
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses
from html.parser import HTMLParser
from typing import Any, TypeVar, cast

ADDRESS = re.compile(r"[A-Za-z0-9][A-Za-z0-9._%+\-=']*@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
                     r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}")
T = TypeVar("T")

# --- headers -----------------------------------------------------------------------------------


def memoized(message: Message, key: Hashable, compute: Callable[[], T]) -> T:
    """``compute()``, worked out once per message for a message read by
    ``cam.inbox.parsing.message_from_raw_for_reading`` (which keeps a memo: nothing changes such a message
    once read, and the classifiers and the matching ask it the same questions several times); afresh for
    any other message. ``key`` names the question; what is kept is shared, so it must not be changed."""
    memo: dict[Hashable, Any] | None = getattr(message, "_cam_memo", None)
    if memo is None:
        return compute()
    if key not in memo:
        memo[key] = compute()
    return cast(T, memo[key])


def header(message: Message, name: str) -> str:
    """The first ``name`` header as one line of decoded text; ``""`` when absent or unreadable."""
    return memoized(message, ("header", name.lower()), lambda: _header(message, name))


def _header(message: Message, name: str) -> str:
    raw = memoized(message, "raw headers", lambda: _first_raw_values(message)).get(name.lower())
    if raw is None:
        return ""
    # Raw 8-bit bytes in a header come through as surrogates: read them as UTF-8.
    raw = " ".join(raw.encode("utf-8", "surrogateescape").decode("utf-8", "replace").split())
    if "=?" not in raw:  # no encoded word: decoding gives the text back as it is
        return raw
    try:
        return str(make_header(decode_header(raw)))
    except Exception:  # an unknown charset or a broken encoded word: keep the words as written
        return raw


def _first_raw_values(message: Message) -> dict[str, str]:
    """Each header's first raw value, by lower-case name."""
    values: dict[str, str] = {}
    for key, value in message.raw_items():
        values.setdefault(key.lower(), value if isinstance(value, str) else str(value))
    return values


def header_addresses(message: Message, *names: str) -> list[str]:
    """Every address in the named headers, lower case, in order, without repeats."""
    return list(memoized(message, ("addresses", *(name.lower() for name in names)),
                         lambda: tuple(_header_addresses(message, names))))


def _header_addresses(message: Message, names: tuple[str, ...]) -> list[str]:
    values = [header(message, name) for name in names]
    found: list[str] = []
    for _name, address in getaddresses([value for value in values if value]):
        address = address.strip("<>").lower()
        if ADDRESS.fullmatch(address) and address not in found:
            found.append(address)
    return found


def sender_address(message: Message) -> str:
    """The From address, lower case; ``""`` when there is none."""
    addresses = header_addresses(message, "From")
    return addresses[0] if addresses else ""


# --- bodies ------------------------------------------------------------------------------------


def part_text(part: Message) -> str:
    """A text part's content decoded with its charset; undeclared or unknown charsets read as UTF-8."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        payload = part.get_payload()
        return payload if isinstance(payload, str) else ""
    charset = (part.get_content_charset() or "utf-8").lower()
    if charset in ("us-ascii", "ascii"):
        charset = "utf-8"  # 8-bit text labelled ASCII is common; UTF-8 reads ASCII the same
    try:
        text = payload.decode(charset, "replace")
    except LookupError:
        text = payload.decode("utf-8", "replace")
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


def leaf_parts(message: Message) -> Iterator[Message]:
    """The message's own non-multipart parts, in order, not descending into attached messages."""
    if message.is_multipart():
        if message.get_content_maintype() == "message":
            return  # message/rfc822 and friends: another message's parts, not this one's
        payload = message.get_payload()
        for part in payload if isinstance(payload, list) else []:
            if isinstance(part, Message):
                yield from leaf_parts(part)
    else:
        yield message


def is_text(part: Message) -> bool:
    """A text part, or a multipart one whose boundary was lost (its raw content is then the text)."""
    return part.get_content_maintype() == "text" or (part.get_content_maintype() == "multipart"
                                                      and not part.is_multipart())


def _is_attachment(part: Message) -> bool:
    return (part.get("Content-Disposition") or "").strip().lower().startswith("attachment")


def body_text(message: Message) -> str:
    """What a person reads as the message: the first plain-text part, else the first HTML part as text."""
    html = None
    for part in leaf_parts(message):
        if not is_text(part) or _is_attachment(part):
            continue
        subtype = part.get_content_subtype()
        if subtype == "plain" or part.get_content_maintype() == "multipart":
            return part_text(part)
        if subtype == "html" and html is None:
            html = part
    return html_to_text(part_text(html)) if html is not None else ""


class _ReplyHtmlReader(HTMLParser):
    """The text of an HTML reply without its quoted history: blockquotes and quote containers go."""

    BLOCKS = {"br", "p", "div", "tr", "li", "ul", "ol", "table", "pre", "hr", "h1", "h2", "h3", "h4",
              "h5", "h6", "section", "article", "header", "footer", "blockquote"}
    HIDDEN = {"script", "style", "head", "title", "template", "blockquote"}
    # Containers whose whole content is the quoted message (Gmail, Yahoo, Apple Mail, Thunderbird).
    QUOTE_CLASSES = ("gmail_quote", "yahoo_quoted", "moz-cite-prefix", "ms-outlook-quote")
    # Markers after which everything is the quoted message (Outlook on the web and desktop).
    STOP_IDS = ("divrplyfwdmsg", "appendonsend", "stopspelling", "mail-editor-reference-message-container")
    VOID = {"br", "hr", "img", "meta", "link", "input", "wbr", "col", "area", "base", "source"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.stack: list[bool] = []  # per open element: does it hide its content?
        self.stopped = False

    def _hidden(self) -> bool:
        return self.stopped or any(self.stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: (value or "").lower() for name, value in attrs}
        if any(marker in values.get("id", "") for marker in self.STOP_IDS):
            self.stopped = True
        hides = tag in self.HIDDEN or any(name in values.get("class", "") for name in self.QUOTE_CLASSES)
        if tag in self.BLOCKS and not self._hidden():
            self.parts.append("\n")
        if tag not in self.VOID:
            self.stack.append(hides)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.BLOCKS and not self._hidden():
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        if self.stack:
            self.stack.pop()
        if tag in self.BLOCKS and not self._hidden():
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden():
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """The text of an HTML body, one line per block, without blockquotes and quoted-message containers."""
    reader = _ReplyHtmlReader()
    try:
        reader.feed(html)
        reader.close()
    except Exception:  # HTMLParser is forgiving; keep what was read before anything it could not take
        pass
    lines = [" ".join(line.split()) for line in "".join(reader.parts).replace("\xa0", " ").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# --- new text ----------------------------------------------------------------------------------

# "… wrote:", and German's "Am … schrieb Anna <anna@…>:", where the name comes after the verb.
_WROTE = re.compile(r"(?:\bwrote|\bschrieb|\ba [ée]crit|\bescribi[óo]|\bha escrit[oa]|\bha scritto|\bschreef|"
                    r"\bescreveu|\bnapisa[łl](?:a|\(a\))?|\bskrev)"
                    r"(?:\s*:?\s*-*|\b[^:\n]{0,150}:)\s*$", re.I)
_WROTE_START = re.compile(r"^(?:-+\s*)?(?:on|am|le|el|il giorno|il|op|em|w dniu|dnia|den)\b", re.I)
_SEPARATOR = re.compile(
    r"^\s*[-=_*]{2,}\s*(?:original message|ursprüngliche nachricht|urspr\S*ngliche nachricht|original-nachricht|"
    r"message d'origine|message original|mensaje original|forwarded message|weitergeleitete nachricht|"
    r"message transf[ée]r[ée]|mensaje reenviado|messaggio originale|messaggio inoltrato|oorspronkelijk bericht|"
    r"origineel bericht|doorgestuurd bericht|mensagem original|mensagem encaminhada|wiadomo\S* oryginalna|"
    r"przekazana wiadomo\S*|ursprungligt meddelande|vidarebefordrat meddelande)\s*[-=_*]{2,}\s*$", re.I)
_FORWARDED = re.compile(r"^\s*(?:begin forwarded message|anfang der weitergeleiteten nachricht|"
                        r"d[ée]but du message r[ée]exp[ée]di[ée]|inicio del mensaje reenviado)\s*:\s*$", re.I)
_UNDERSCORES = re.compile(r"^\s*_{10,}\s*$")
_FROM_FIELD = re.compile(r"^\s*\*?(?:from|von|de|da|van|od|fr[åa]n)\s*\*?\s*:", re.I)
_OTHER_FIELD = re.compile(r"^\s*\*?(?:sent|date|to|subject|cc|gesendet|datum|an|betreff|envoy[ée]|[àa]|objet|"
                          r"enviado|fecha|para|asunto|inviato|data|oggetto|verzonden|aan|onderwerp|enviada|assunto|"
                          r"wys[łl]ano|wys[łl]ane|do|temat|skickat|till|[äa]mne)\s*\*?\s*:", re.I)
_SIGNATURE_DASHES = re.compile(r"^\s*--\s*$")
_MOBILE = re.compile(r"^\s*(?:sent from my|sent from mail for|sent from outlook|get outlook for|sent via|"
                     r"von meinem \S.*gesendet|gesendet von meinem|von meinem iphone|envoy[ée] de mon|"
                     r"envoy[ée] depuis|enviado desde|inviato da|verzonden (?:vanaf|met)|enviado do meu|"
                     r"wys[łl]ane z|skickat fr[åa]n)\b", re.I)
_CLOSING = re.compile(
    r"^\s*(?:"
    r"(?:best|kind|warm|warmest|many|with kind|with best)?\s*regards|best(?: wishes)?|cheers|"
    r"thanks(?: again| so much| a lot)?|thank you(?: so much)?|many thanks|all the best|sincerely|"
    r"yours(?: truly| sincerely)?|br|rgds|"
    r"(?:mit )?(?:freundlichen|besten|herzlichen|vielen|sch[öo]nen|liebe[n]?) gr[üu](?:ß|ss|e)(?:e|en)?|"
    r"viele gr[üu](?:ß|ss)e|beste gr[üu](?:ß|ss)e|liebe gr[üu](?:ß|ss)e|gru(?:ß|ss)|gr[üu](?:ß|ss)e|lg|vg|mfg|"
    r"danke(?: und gr[üu](?:ß|ss)e)?|vielen dank|"
    r"(?:bien )?cordialement|bien [àa] (?:vous|toi)|(?:meilleures |sinc[èe]res )?salutations(?: distingu[ée]es)?|"
    r"merci(?: beaucoup| bien)?|bonne journ[ée]e|belle journ[ée]e|[àa] bient[ôo]t|amicalement|"
    r"(?:un )?saludos?(?: cordiales)?|un (?:cordial )?saludo|atentamente|(?:muchas )?gracias|un abrazo|cordialmente|"
    r"(?:cordiali |distinti |cari )?saluti|un (?:caro )?saluto|buona giornata|grazie(?: mille)?|"
    r"(?:met )?vriendelijke groet(?:en)?|(?:hartelijke )?groet(?:en|jes)?|mvg|bedankt|dank je(?: wel)?|"
    r"atenciosamente|cumprimentos|abra[çc]os?|obrigad[oa]|"
    r"pozdrawiam|z powa[żz]aniem|dzi[ęe]kuj[ęe]|"
    r"(?:med )?(?:v[äa]nliga )?h[äa]lsningar|mvh|tack(?: s[åa] mycket)?"
    r")\s*[,.!]*\s*$", re.I)


def _is_reply_header(lines: list[str], index: int) -> bool:
    """Does the quoted history start at ``lines[index]`` (a reply or forward header)?"""
    line = lines[index].strip()
    if _SEPARATOR.match(line) or _FORWARDED.match(line):
        return True
    if _UNDERSCORES.match(line):
        return True
    if _FROM_FIELD.match(line):
        following = [candidate for candidate in lines[index + 1:index + 5] if candidate.strip()]
        return any(_OTHER_FIELD.match(candidate) for candidate in following[:3])
    if _WROTE_START.match(line) and len(line) < 300:
        # "On Mon, 2 Mar 2026 at 10:00, Anna <anna@…>" may wrap onto a second or third line.
        joined = line
        for extra in lines[index + 1:index + 3]:
            if _WROTE.search(joined):
                break
            joined = f"{joined} {extra.strip()}"
        return bool(_WROTE.search(joined)) and bool(re.search(r"\d|@", joined))
    # "Anna Schmidt <anna@…> wrote:" and "---- On Mon … wrote ----"
    return bool(_WROTE.search(line)) and len(line) < 300 and bool(re.search(r"@|\d", line))


# Closings that also open a message ("Thanks!\n\nWe'd love to …"): a signature only when little follows.
_THANKS = re.compile(r"^\s*(?:thanks|thank you|many thanks|merci|danke|vielen dank|gracias|muchas gracias|grazie|"
                     r"bedankt|dank je|obrigad[oa]|dzi[ęe]kuj[ęe]|tack)\b", re.I)


def _ends(lines: list[str], index: int) -> bool:
    """Is the closing at ``lines[index]`` the end of the message (a name and a signature may follow)?"""
    if not _THANKS.match(lines[index]):
        return True
    following = []
    for later in range(index + 1, len(lines)):
        if _is_reply_header(lines, later) or _SIGNATURE_DASHES.match(lines[later]):
            break
        if lines[later].strip() and not lines[later].strip().startswith(">"):
            following.append(lines[later].strip())
    return len(following) <= 4 and not any(line.endswith("?") or len(line) > 70 for line in following)


def new_text(body: str) -> str:
    """The sender's own words in ``body``: quotes, quoted history and the signature removed."""
    lines = body.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith(">") or stripped.startswith("|>"):
            continue
        if _is_reply_header(lines, index):
            break
        if _SIGNATURE_DASHES.match(line) or _MOBILE.match(stripped):
            break
        if _CLOSING.match(stripped) and any(previous.strip() for previous in kept) and _ends(lines, index):
            break
        kept.append(line.rstrip())
    text = "\n".join(kept).strip()
    return re.sub(r"\n{3,}", "\n\n", text)


# --- matching form -----------------------------------------------------------------------------

# Typographic quotes made plain, and the letters Unicode does not decompose into a base letter and an accent
# (Polish ł, Danish and Norwegian ø, æ, French œ).
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'", "´": "'", "“": '"', "”": '"', "„": '"', "«": '"',
                              "»": '"', "\xa0": " ", "ł": "l", "Ł": "l", "ø": "o", "Ø": "o", "æ": "ae", "Æ": "ae",
                              "œ": "oe", "Œ": "oe", "đ": "d", "Đ": "d"})


def fold(text: str) -> str:
    """``text`` for phrase matching: lower case, accents and ß folded (é→e, ü→u, ß→ss), spaces collapsed.

    Remembered for the last few texts up to ``FOLD_REMEMBERED`` characters: the readers of one message fold
    its subject and body several times."""
    return _fold_remembered(text) if len(text) <= FOLD_REMEMBERED else _fold(text)


FOLD_REMEMBERED = 64 * 1024


@functools.lru_cache(maxsize=32)
def _fold_remembered(text: str) -> str:
    return _fold(text)


def _fold(text: str) -> str:
    text = text.translate(_APOSTROPHES).lower().replace("ß", "ss")
    if not text.isascii():  # ASCII has no accents to take off
        text = "".join(char for char in unicodedata.normalize("NFKD", text) if not unicodedata.combining(char))
    return "\n".join(" ".join(line.split()) for line in text.split("\n"))
