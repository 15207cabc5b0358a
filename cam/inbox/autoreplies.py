"""Automatic replies: out-of-office notices and other machine answers, and the date a sender is back.

A message is an automatic reply when its headers say so (RFC 3834 ``Auto-Submitted`` other than
``no``; ``X-Autoreply``, ``X-Autorespond`` and their cousins; ``Precedence: auto_reply``, ``bulk`` or
``junk``; ``X-Auto-Response-Suppress``, which Exchange puts on its own automatic messages), when its
subject is one of the usual ones in English, German, French or Spanish (“Out of Office”, “Automatic
reply”, “Abwesenheitsnotiz”, “Réponse automatique”, “Respuesta automática”, …), or, with less
confidence, when its first lines say the sender is away (“I am out of the office”, “ich bin
abwesend”, “je suis absent”, “estoy fuera de la oficina”).

It is an out-of-office reply (rather than some other automatic answer, such as a ticket
acknowledgement) when the subject or the text speaks of an absence, or gives a return date.

The return date is read in every language the classifier reads (English, German, French, Spanish,
Italian, Dutch, Portuguese, Polish, Swedish), by one rule:

- a date named as the day the sender is back (“back on 12 March”, “returning March 12th”, “zurück am
  3.4.”, “ab dem 15. März wieder”, “de retour le 12 mars”, “de vuelta el 3 de abril”, “rientro il 12
  marzo”, “terug op 12 maart”, “de volta a 12 de março”, “wracam 12 marca”, “tillbaka den 12 mars”) is
  the return date itself;
- a date named as the end of the absence (“until 16 March”, “bis 16. März”, “jusqu'au 16 mars”, “hasta
  el 16 de marzo”, “fino al 16 marzo”, “tot en met 16 maart”, “até 16 de março”, “do 16 marca”, “till
  och med 16 mars”, or the end of a range “2–16 March”) is the last day away: the return date is the
  day after, the 17th. Read literally, “until 16 March” could mean back on the 16th; the day after is
  the later of the two, so a follow-up never lands while the person is still away;
- a date after “from” (“ab”, “à partir du”, “desde”, “dal”, “vanaf”, “a partir de”, “od”, “från”)
  is the first day away, not a return date.

A date written without a year is the first such day after ``today``; numeric dates are day first (3.4.
is the 3rd of April).
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from email.message import Message

from cam.inbox.text import ADDRESS, fold, header

# English, German, French, Spanish, Italian, Dutch, Portuguese, Polish (the genitive a date takes, and the
# nominative) and Swedish, folded (no accents, ł as l). Portuguese "out" (outubro) is left out: it is an English word.
MONTHS = {
    1: ("january", "jan", "januar", "janner", "janvier", "enero", "ene", "gennaio", "gen", "januari", "janeiro",
        "stycznia", "styczen", "sty"),
    2: ("february", "feb", "februar", "fevrier", "fev", "febrero", "febbraio", "februari", "fevereiro", "lutego",
        "luty", "lut"),
    3: ("march", "mar", "marz", "maerz", "mars", "marzo", "maart", "mrt", "marco", "marca", "marzec"),
    4: ("april", "apr", "avril", "avr", "abril", "abr", "aprile", "kwietnia", "kwiecien", "kwi"),
    5: ("may", "mai", "mayo", "maggio", "mag", "mei", "maio", "maja", "maj"),
    6: ("june", "jun", "juni", "juin", "junio", "giugno", "giu", "junho", "czerwca", "czerwiec", "cze"),
    7: ("july", "jul", "juli", "juillet", "juil", "julio", "luglio", "lug", "julho", "lipca", "lipiec", "lip"),
    8: ("august", "aug", "aout", "agosto", "ago", "augustus", "augusti", "sierpnia", "sierpien"),
    9: ("september", "sep", "sept", "septembre", "septiembre", "setiembre", "settembre", "setembro", "wrzesnia",
        "wrzesien", "wrz"),
    10: ("october", "oct", "oktober", "okt", "octobre", "octubre", "ottobre", "ott", "outubro", "pazdziernika",
         "pazdziernik", "paz"),
    11: ("november", "nov", "novembre", "noviembre", "novembro", "listopada", "listopad", "lis"),
    12: ("december", "dec", "dezember", "dez", "decembre", "diciembre", "dic", "dicembre", "dezembro", "grudnia",
         "grudzien", "gru"),
}
_MONTH_NUMBER = {name: number for number, names in MONTHS.items() for name in names}
_MONTH = "|".join(sorted(_MONTH_NUMBER, key=len, reverse=True))
WEEKDAYS = {
    0: ("monday", "montag", "lundi", "lunes", "lunedi", "maandag", "segunda-feira", "segunda", "poniedzialek",
        "poniedzialku", "mandag"),
    1: ("tuesday", "dienstag", "mardi", "martes", "martedi", "dinsdag", "terca-feira", "terca", "wtorek", "wtorku",
        "tisdag"),
    2: ("wednesday", "mittwoch", "mercredi", "miercoles", "mercoledi", "woensdag", "quarta-feira", "quarta", "sroda",
        "srode", "sredy", "onsdag"),
    3: ("thursday", "donnerstag", "jeudi", "jueves", "giovedi", "donderdag", "quinta-feira", "quinta", "czwartek",
        "czwartku", "torsdag"),
    4: ("friday", "freitag", "vendredi", "viernes", "venerdi", "vrijdag", "sexta-feira", "sexta", "piatek", "piatku",
        "fredag"),
    5: ("saturday", "samstag", "samedi", "sabado", "sabato", "zaterdag", "sobota", "sobote", "lordag"),
    6: ("sunday", "sonntag", "dimanche", "domingo", "domenica", "zondag", "niedziela", "niedziele", "sondag"),
}
_WEEKDAY_NUMBER = {name: number for number, names in WEEKDAYS.items() for name in names}
_WEEKDAY = "|".join(sorted(_WEEKDAY_NUMBER, key=len, reverse=True))

# Dates as people write them, on folded text (lower case, no accents).
_DATE_PATTERNS = [
    # 2026-03-12
    re.compile(r"\b(?P<year>20\d\d)-(?P<month>\d{1,2})-(?P<day>\d{1,2})\b"),
    # 12 March, 12th of March, 15. Marz, 1er avril, 3 de abril de 2026, 12 mars 2026
    re.compile(rf"\b(?P<day>\d{{1,2}})(?:st|nd|rd|th|er|o|\.)?\s*(?:of\s+|de\s+)?(?P<mname>{_MONTH})\b\.?"
               r"(?:\s*,?\s*(?:de\s+|del\s+)?(?P<year>20\d\d)\b)?"),
    # March 12th, March 12, 2026
    re.compile(rf"\b(?P<mname>{_MONTH})\.?\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\b(?:\s*,?\s*(?P<year>20\d\d)\b)?"),
    # 12.03.2026, 3.4., 12/03/2026, 12/3
    re.compile(r"(?<![\d.:/])(?P<day>\d{1,2})\.(?P<month>\d{1,2})\.(?P<year>(?:20)?\d\d)?(?![\d:])"),
    re.compile(r"(?<![\d.:/])(?P<day>\d{1,2})/(?P<month>\d{1,2})(?:/(?P<year>(?:20)?\d\d))?(?![\d:/])"),
    # back on Monday, ab Montag wieder
    re.compile(rf"\b(?P<weekday>{_WEEKDAY})\b"),
    re.compile(r"\b(?P<tomorrow>tomorrow|morgen|demain|manana|domani|amanha|jutro|imorgon)\b"),
]

# Words that make a date the return date, the last day away, or the first day away, in every language the
# classifier reads (see docs/classification.md, "Return dates").
_RETURN_WORDS = re.compile(
    r"\bback\b|\breturn(?:ing|s)?\b|\bin the office\b|\bavailable\b|\breachable\b|"
    r"\bzuruck|\bwieder\b|\bretour\b|\bvuelta\b|\bregres\w*|\bvuelvo\b|\bvolvere\b|\bdisponible\b|"
    r"\brientr\w*|\britorn\w*|\btorner\w*|\bdi nuovo\b|\bin ufficio\b|\bdisponibil\w*|"
    r"\bterug\b|\bweer (?:aanwezig|bereikbaar|beschikbaar|op kantoor)\b|\baanwezig\b|\bbeschikbaar\b|"
    r"\bvolt\w*|\bde volta\b|\bretorno\b|\bretorn\w*|\bregress\w*|\bdisponivel\b|"
    r"\bwracam\b|\bwroc\w*|\bpowrot\w*|\bz powrotem\b|\bdostepn\w*|\bw biurze\b|"
    r"\btillbaka\b|\bater\b|\bantraffbar\b|\bpa plats\b|\bi tjanst\b|\bpa kontoret\b")
_UNTIL_WORDS = re.compile(
    r"\buntil\b|\btill\b|\bthrough\b|\bthru\b|\bbis\b|\bjusqu'(?:au|a)\b|\bhasta\b|[-–]\s*$|"
    r"\bfino (?:al|a|all')|\bsino al\b|\btot en met\b|\bt/m\b|\btot\s+(?:de\s+|en met\s+)?$|\bate\b|"
    r"\b(?:az )?do\s+(?:dnia\s+)?$|\btill och med\b|\btom\s+$|"
    r"\d[^\d]{0,12}\b(?:to|au|al|a|tot|do|till)\s+(?:the\s+|le\s+|el\s+)?$")  # the end of a range: 2 to 12 March
_START_BEFORE = re.compile(r"(?:\bfrom|\bstarting|\bvom|\bab|\bdu|\ba partir du|\bdesde|\bdel|\ba partir del|"
                           r"\bdal|\ba partire dal|\bvanaf|\bvan|\ba partir de|\bde|\bod|\bfran|\bfrom)"
                           r"\s*(?:the\s+|dem\s+|le\s+|el\s+|dnia\s+|o dia\s+)?$")
_RETURN_AFTER = re.compile(r"^[^.!?\n]{0,20}\b(?:wieder|zuruck|de retour|back|de vuelta|di nuovo|terug|weer|"
                           r"aanwezig|de volta|z powrotem|dostepn\w*|tillbaka|ater)\b")
# Swedish abbreviations whose dots would end the clause before the date: "t.o.m." (through), "fr.o.m." (from).
_DOTTED = re.compile(r"\b(t|fr)\.o\.m\.?")
_WEAK_CONTEXT = re.compile(r"\b(?:on|am|le|el|until|till|bis|au|al|back|zuruck|retour|vuelta|il|dal|op|tot|em|ate|"
                           r"dnia|do|den|terug|tillbaka)\s+(?:the\s+|dem\s+)?$")
_CLAUSE_END = re.compile(r"[!?\n;]|\.\s")

_OUT_OF_OFFICE = re.compile(
    r"out of (?:the )?office|\booo\b|away from (?:the |my )?(?:office|desk)|\bon (?:annual |parental |sick )?leave\b|"
    r"\bon (?:vacation|holiday|holidays|a business trip)\b|\bi am away\b|\bi'm away\b|\bi am currently away\b|"
    r"\bout of town\b|\babsent\b|\babsence\b|"
    r"abwesen|nicht im (?:buro|bureau|haus|office)|\burlaub\b|\bim urlaub\b|ausser haus|ausserhalb des buros|"
    r"\bdienstreise\b|\belternzeit\b|"
    r"\bconge\b|\bconges\b|\bvacances\b|hors du bureau|en deplacement|"
    r"fuera de (?:la )?oficina|\bausente\b|\bausencia\b|de vacaciones|\bvacaciones\b|de viaje|"
    r"fuori (?:ufficio|sede)|\bassente\b|\bassenza\b|\bin ferie\b|\bferie\b|"
    r"\bafwezig\b|\bafwezigheid\b|niet (?:op kantoor|aanwezig)|\bop vakantie\b|\bvakantie\b|met verlof|"
    r"fora do escritorio|\bde ferias\b|\bferias\b|\bausencia\b|"
    r"\bnieobecn\w*|poza biurem|\burlop\w*|"
    r"\bfranvar\w*|\bsemester\b|\bledig\b|inte pa kontoret|\btjanstledig\b")

_AUTO_SUBJECT = re.compile(
    r"^(?:(?:re|aw|wg|fw|fwd|tr|rv|sv)\s*:\s*)*(?:"
    r"out of (?:the )?office|automatic reply|auto(?:matic)?[- ]?(?:reply|response|answer)|autoreply|autoresponse|"
    r"auto[- ]reply|away from (?:the )?office|on vacation|on holiday|on leave|i am away|i'm away|vacation reply|"
    r"abwesenheitsnotiz|abwesenheit|automatische antwort|automatische ruckantwort|autom\. antwort|"
    r"nicht im buro|urlaub|"
    r"reponse automatique|reponse auto|absence|absent|message d'absence|en conge|"
    r"respuesta automatica|respuesta automatica de ausencia|fuera de (?:la )?oficina|ausente|ausencia|"
    r"de vacaciones|risposta automatica|fuori ufficio|fuori sede|assente|automatisch antwoord|afwezig|"
    r"afwezigheidsmelding|resposta automatica|fora do escritorio|odpowiedz automatyczna|automatyczna odpowiedz|"
    r"nieobecnosc|poza biurem|autosvar|automatiskt svar|franvaro|franvarande)\b")

# The first lines of a message that says the sender is away, when nothing else says it is automatic.
_AWAY_OPENING = re.compile(
    r"\b(?:i am|i'm|i will be|i'll be) (?:currently |now )?(?:out of (?:the )?office|away|"
    r"on (?:vacation|holiday|leave)|out of town)\b|"
    r"\bich bin (?:derzeit |zurzeit |aktuell |momentan |bis \S+ )?(?:nicht im buro|abwesend|im urlaub|ausser haus)|"
    r"\bje suis (?:actuellement )?(?:absente?|en conge|en vacances|hors du bureau)|"
    r"\bestoy (?:actualmente )?(?:fuera de (?:la )?oficina|ausente|de vacaciones)|"
    r"\bsono (?:attualmente )?(?:fuori (?:ufficio|sede)|assente|in ferie)|"
    r"\bik ben (?:momenteel |tot \S+ )?(?:afwezig|niet op kantoor|op vakantie|met verlof)|"
    r"\bestou (?:atualmente |actualmente )?(?:fora do escritorio|ausente|de ferias)|"
    r"\bjestem (?:obecnie |aktualnie )?(?:poza biurem|nieobecn\w*|na urlopie)|"
    r"\bjag (?:ar|kommer att vara) (?:for narvarande |just nu )?(?:inte pa kontoret|franvarande|ledig|pa semester)")

_NO_LONGER = re.compile(
    r"no longer (?:with|at|employed|working|works)|has left (?:the company|us)|left the company|"
    r"nicht mehr (?:bei|im unternehmen|fur)|hat das unternehmen verlassen|"
    r"ne fait plus partie|a quitte (?:la societe|l'entreprise)|n'est plus|"
    r"ya no (?:trabaja|forma parte|esta)")


@dataclass(frozen=True)
class AutoReply:
    out_of_office: bool
    confidence: float
    reasons: list[str] = field(default_factory=list)
    return_date: datetime.date | None = None
    referral_email: str = ""


def _header_signals(message: Message) -> list[tuple[str, float]]:
    """(reason, confidence) for each header that marks the message as automatic."""
    signals: list[tuple[str, float]] = []
    auto_submitted = header(message, "Auto-Submitted").strip().lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        signals.append((f"Auto-Submitted: {auto_submitted}", 0.97))
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponse", "X-Autogenerated", "X-AutoReply-From",
                 "X-Mail-Autoreply", "X-Vacation", "X-Autoresponder"):
        value = header(message, name).strip()
        if value and value.lower() not in ("no", "false", "0"):
            signals.append((f"{name}: {value}", 0.95))
    precedence = header(message, "Precedence").strip().lower()
    if precedence in ("auto_reply", "auto-reply"):
        signals.append((f"Precedence: {precedence}", 0.95))
    elif precedence in ("bulk", "junk"):
        signals.append((f"Precedence: {precedence}", 0.8))
    suppress = header(message, "X-Auto-Response-Suppress").strip()
    if suppress:
        signals.append((f"X-Auto-Response-Suppress: {suppress}", 0.75))
    return signals


def detect_auto_reply(message: Message, *, subject: str, text: str,
                      today: datetime.date, own_addresses: tuple[str, ...] = ()) -> AutoReply | None:
    """The automatic reply ``message`` is, or ``None`` when nothing marks it as one.

    ``text`` is the message's new text; ``own_addresses`` are left out of ``referral_email``.
    """
    signals = _header_signals(message)
    folded_subject, folded_text = fold(subject), fold(text)
    subject_match = _AUTO_SUBJECT.search(folded_subject)
    if subject_match:
        signals.append((f"subject {subject!r}", 0.9))
    opening = folded_text[:400]
    away = _AWAY_OPENING.search(opening)
    if not signals and not away:
        return None
    reasons = [reason for reason, _ in signals]
    confidence = max((value for _, value in signals), default=0.0)
    if len(signals) > 1:
        confidence = min(0.99, confidence + 0.02 * (len(signals) - 1))
    if away:
        reasons.append(f"text says the sender is away: {away.group(0)!r}")
        confidence = max(confidence, 0.7)

    found_date, certainty = return_date(folded_text, today=today)
    if found_date is not None:
        reasons.append(f"return date {found_date.isoformat()}")
    absence = _OUT_OF_OFFICE.search(folded_subject) or _OUT_OF_OFFICE.search(folded_text)
    out_of_office = bool(away or absence or certainty == 2)
    if absence and not away:
        reasons.append(f"speaks of an absence: {absence.group(0)!r}")

    referral = ""
    if _NO_LONGER.search(folded_text) or out_of_office:
        for candidate in ADDRESS.findall(text):
            candidate = candidate.lower()
            if candidate not in own_addresses:
                referral = candidate
                reasons.append(f"names another address: {referral}")
                break
    return AutoReply(out_of_office=out_of_office, confidence=round(confidence, 2), reasons=reasons,
                     return_date=found_date, referral_email=referral)


def _resolve(day: int, month: int, year: int | None, today: datetime.date) -> datetime.date | None:
    """The date, with a missing year chosen so the date falls after ``today``."""
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    if year is not None:
        year = year + 2000 if year < 100 else year
        try:
            return datetime.date(year, month, day)
        except ValueError:
            return None
    for candidate_year in (today.year, today.year + 1, today.year + 2):
        try:
            candidate = datetime.date(candidate_year, month, day)
        except ValueError:  # 29 February in a year that has none
            continue
        if candidate > today:
            return candidate
    return None


def _dates(folded: str, today: datetime.date) -> list[tuple[int, int, datetime.date, str]]:
    """Every date in ``folded`` as (start, end, date, kind), in order of position, overlaps removed.

    ``kind`` is ``"date"``, ``"weekday"`` (Monday, tomorrow: only a return date in context), or
    ``"weak"`` (12/3 without a year, which may be something else, such as 24/7: likewise).
    """
    found: list[tuple[int, int, datetime.date, str]] = []
    for pattern in _DATE_PATTERNS:
        for match in pattern.finditer(folded):
            if any(start < match.end() and match.start() < end for start, end, _, _ in found):
                continue
            groups = match.groupdict()
            value: datetime.date | None
            kind = "date"
            if groups.get("weekday"):
                offset = (_WEEKDAY_NUMBER[groups["weekday"]] - today.weekday()) % 7 or 7
                value, kind = today + datetime.timedelta(days=offset), "weekday"
            elif groups.get("tomorrow"):
                value, kind = today + datetime.timedelta(days=1), "weekday"
            else:
                month = _MONTH_NUMBER[groups["mname"]] if groups.get("mname") else int(groups["month"])
                year = int(groups["year"]) if groups.get("year") else None
                value = _resolve(int(groups["day"]), month, year, today)
                if "/" in match.group(0) and year is None:
                    kind = "weak"
            if value is not None:
                found.append((match.start(), match.end(), value, kind))
    return sorted(found)


def _last(pattern: re.Pattern[str], text: str) -> int:
    """Where the last match of ``pattern`` in ``text`` ends; -1 when there is none."""
    return max((match.end() for match in pattern.finditer(text)), default=-1)


def return_date(folded: str, *, today: datetime.date) -> tuple[datetime.date | None, int]:
    """The date the sender of an out-of-office text (folded) is back, and how sure: ``(None, 0)`` if none.

    The second value is 2 when a word such as “back” or “until” places the date, 1 for a lone date.
    """
    folded = _DOTTED.sub(lambda found: f"{found.group(1)}om", folded)
    candidates: list[tuple[int, int, datetime.date]] = []  # (certainty, is an exact date, date)
    for start, end, value, kind in _dates(folded, today):
        before = folded[max(0, start - 60):start]
        clause = _CLAUSE_END.split(before)[-1]
        if kind == "weak" and not _WEAK_CONTEXT.search(clause):
            continue  # 12/3 only right after "on", "until", "back" …: "available 24/7" is no date
        back_at, until_at = _last(_RETURN_WORDS, clause), _last(_UNTIL_WORDS, clause)
        if until_at > back_at:
            candidates.append((2, kind == "date", value + datetime.timedelta(days=1)))
        elif back_at >= 0 or _RETURN_AFTER.search(folded[end:end + 40]):
            candidates.append((2, kind == "date", value))
        elif kind == "date" and not _START_BEFORE.search(clause):
            candidates.append((1, True, value))
    if not candidates:
        return None, 0
    certainty, _exact, value = max(candidates)
    return value, certainty
