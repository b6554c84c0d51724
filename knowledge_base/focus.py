"""Finding the question inside a clerk's message, and telling a failure report from a question.

Clerks write the way people write to a helpdesk: "Dobar dan, Marija iz opštine Ivanjica, radim na
pisarnici. Kako da pošaljem rešenje u eSanduče? Hvala unapred." Only the middle sentence is what
is asked; the greeting, the self-introduction (with a town name no entry knows) and the thanks
only dilute the match. `focus` keeps the clauses that are not courtesy; when nothing else is
left, the message *is* courtesy and is kept whole (so "Hvala!" still finds the thanks entry).

`is_failure_report` recognises "it does not work right now" messages ("ne radi mi eZUP, greška
500", "aktivacioni kod ne prolazi", "POS terminal ne radi"): they are support incidents for a
mentor, not how-to questions, however close a how-to entry looks.

Both work on normalised text (Latin, folded diacritics, lower case), so they hold for Cyrillic
and for text without diacritics alike.
"""

from __future__ import annotations

import re

from knowledge_base.normalize import normalize

# Sentences and clauses: a comma, semicolon or dash also separates "Dobar dan, ja sam ..., kako".
_SENTENCES = re.compile(r"(?<=[.!?…])\s+|\n+|[;:]\s+|\s[-–—]\s")
_CLAUSES = re.compile(r",\s*")

_GREETING = re.compile(
    r"^(dobar dan|dobro jutro|dobro vece|dobar vece|pozdrav\w*|zdravo|cao|hej|ej|hello|hi|hey|"
    r"good (morning|afternoon|evening|day)|dear \w+|postovan\w*|uvazen\w*)"
    r"\b"
)
# "Kolege," alone addresses the reader; "Koleginice stalno pominju eZUP" says something.
_ADDRESS = re.compile(r"^(kolege|kolega|koleginice|koleginica|colleagues)\b")
_ADDRESS_WORDS = 2
_THANKS = re.compile(
    r"\b(hvala|zahvaljujem|zahvalni?|unapred|thanks?|thank you|cheers|srdacan pozdrav|"
    r"srdacno|lep pozdrav|lp|s postovanjem|best regards|regards|kind regards)\b"
)
_INTRO = re.compile(
    r"\b(ja sam|zovem se|moje ime|radim (u|na|kao)|zaposlen\w* (sam|u|na)|pisem (vam )?iz|"
    r"javljam (vam )?se( iz)?|obracam (vam )?se|ovde \w+ iz|ja sam iz|mi smo iz|"
    r"iz (opstin\w*|grad\w*|opstinsk\w*|gradsk\w*|uprav\w*|lokaln\w*)|"
    r"(sluzbeni\w*|referent\w*|sef\w*|nacelni\w*|koordinator\w*) (u|na|za)|"
    r"my name|i am|i m|im from|i work|i am from|working (at|in|for)|we are from|this is \w+|"
    r"\w+ (here )?from the \w+( \w+)? (administration|municipality|office|department)|"
    r"nov\w* (sam )?(sam|kolega|koleginica|zaposlen\w*))\b"
)
# Words that make a clause a question (or a request) even when it begins like an introduction.
_ASKING = re.compile(
    r"\b(kako|sta|sto|da li|dal|gde|kada|kad|koji|koja|koje|kojim|ko|zasto|koliko|moze|mozemo|"
    r"mogu|smemo|treba|trebamo|trebam|zanima|interesuje|pitanje|pitam|molim|objasni\w*|"
    r"how|what|where|when|which|who|why|can|could|should|do we|do i|is it|is there|need)\b"
)
_SHORT_COURTESY_WORDS = 6
# "Imam jedno pitanje u vezi eSandučeta." announces a question without asking it.
_PREAMBLE = re.compile(
    r"^(imam|imamo|imala bih|imao bih) (jedno |kratko |jos jedno |jedno kratko |par |nekoliko )?"
    r"(pitanj\w*|nedoumic\w*)|^(i|we) have a (quick |short )?question|^(zanima|interesuje) me nesto"
)  # a greeting or thanks clause longer than this says something else


def _is_courtesy(clause: str) -> bool:
    text = normalize(clause)
    if not text:
        return True
    words = text.split()
    if _GREETING.match(text) and len(words) <= 4:
        return True
    if _ADDRESS.match(text) and len(words) <= _ADDRESS_WORDS:
        return True
    if _THANKS.search(text) and len(words) <= _SHORT_COURTESY_WORDS and not _ASKING.search(text):
        return True
    if _PREAMBLE.match(text) and len(words) <= 8:
        return True
    return _is_intro(text)


def _is_intro(text: str) -> bool:
    return bool(_INTRO.search(text)) and not _ASKING.search(text)


def _strip_greeting(clause: str) -> str:
    """'Dobar dan kako da ...' -> 'kako da ...' (a greeting glued to the question)."""
    text = normalize(clause)
    found = _GREETING.match(text)
    if found and len(text.split()) > 4:
        rest = text[found.end() :].strip()
        return rest or clause
    return clause


def _kept_sentences(message: str) -> list[str]:
    """The message's sentences without their courtesy clauses (empty ones dropped)."""
    kept: list[str] = []
    for sentence in _SENTENCES.split(message):
        clauses = [c for c in _CLAUSES.split(sentence) if c.strip()]
        introducing = False  # "Radim u upravi Knjaževac, u odeljenju za ...": still the intro
        parts: list[str] = []
        for clause in clauses:
            text = normalize(clause)
            if introducing and not _ASKING.search(text):
                continue
            introducing = _is_intro(text)
            if not _is_courtesy(clause):
                parts.append(_strip_greeting(clause))
        if parts:
            kept.append(", ".join(parts))
    return kept


def focus(message: str) -> str:
    """The part of `message` that asks something; the whole message when all is courtesy."""
    return " ".join(_kept_sentences(message)) or message


def asked_sentences(message: str) -> str | None:
    """Of a message of several sentences, the ones that end in a question mark: the context
    before them ("Stranka insistira da ...") dilutes what is asked. None when that is all of it,
    or none is marked."""
    kept = _kept_sentences(message)
    if len(kept) < 2:
        return None
    asked = [s for s in kept if s.rstrip().endswith("?")]
    if not asked or len(asked) == len(kept):
        return None
    return " ".join(asked)


# -- failure reports -----------------------------------------------------------------------

_FAILURE = re.compile(
    r"\b("
    r"ne radi|ne rade|nece da radi|van funkcije|ne funkcionis\w*|ne funkcionira|ne ide|"
    r"nije u funkciji|"
    r"ne prolazi|ne prolaze|ne prihvata|odbija|odbio|odbijen\w*|izbacuje|izbaci|"
    r"pao|pala|palo|pada|puca|ugasen\w*|nece da se (upali|pokrene|ukljuci)|ne pali|ne pale|"
    r"zakljucal\w*|skinut\w* dva puta|naplacen\w* dva puta|"
    r"zabagova\w*|zaglavi\w*|zablokira\w*|blokiran\w*|"
    r"ne ucitava|ne otvara se|nece da se otvori|ne prima|ne primaju|ne stize|ne stizu|"
    r"ne mogu da (pristupim|posaljem|otvorim|potpisem|udjem)|"
    r"ne mozemo da (pristupimo|posaljemo|otvorimo|potpisemo|udjemo)|"
    r"od jutros|od juce|od danas|vec (sat|dva sata|ceo dan|danima)|trenutno ne|"
    r"ne mogu da se (prijavim|ulogujem|logujem|ulogujemo|prijavimo|povezem|potpisem)|"
    r"ne mozemo da se (prijavimo|ulogujemo)|ne mogu da udjem|ne mozemo da udjemo|"
    r"nema veze|nema konekcije|ne konektuje|ne povezuje|istekla sesija|"
    r"gresk\w*|greska|gresci|error\w*|bug|kvar\w*|otkaz\w*|"
    r"doesn t work|does not work|isn t working|is not working|not working|won t|wont|"
    r"can t log|cannot log|can t sign|cannot sign|is down|went down|broken|fails|failed|failing|"
    r"crash\w*|rejected|rejects|refuses|refused|since (yesterday|this morning|today)|"
    r"returns (an? )?(http|error)|http [45]\d\d|timing out|times out|charged twice|"
    r"ne ocitava|ne ocitavaju|ne cita|ne vidi (karticu|licnu|citac|sertifikat)\w*|"
    r"nije isporucen\w*|(prikazuje|izbacuje|javlja|pokazuje) (nam |mi )?poruku|"
    r"out of order|not accepted|is not accepted|isn t accepted|doesn t accept|does not accept|"
    r"won t accept|not recogni[sz]ed|keeps (saying|showing)|(is|was|says|shows|as) invalid|"
    r"invalid (code|password|pin|certificate|token)|nevazec\w* (kod|pin|lozink\w*|sertifikat)|"
    r"odbijaju|declined|ne reaguje|ne reaguju|not responding|doesn t respond|does not respond|"
    r"ne stampa|ne cuva|doesn t save|won t save|vraca me|vrti se u krug|keeps loading|"
    r"ne (moze|mogu|mozemo) da se (skenira|ucita|otvori|posalje|potpise)|ne skenira\w*|"
    r"can t be scanned|cannot be scanned|won t scan|doesn t scan|"
    r"stopped working|revoked|been down|nobody can|no one can|nestal\w*|nestane|disappeared|"
    r"dissapeared|obrise|nemate prav\w* pristupa|access denied|permission denied|"
    r"i dalje (pise|stoji|prikazuje)|still (shows|says)|polja su prazna|"
    r"kaze da je neispravan|kazu da je neispravan|je neispravan"
    r")\b"
)
# Signs that something is broken right now (since when, an error code, a dead device): a report
# even when it asks whom to call ("ne radi od juče, kome da se obratimo?").
_REPORT_NOW = re.compile(
    r"\b(od (jutros|juce|sinoc|danas|ponedeljka|utorka|srede|cetvrtka|petka|subote|nedelje)|"
    r"since (yesterday|this morning|today|monday|tuesday|wednesday|thursday|friday|\w+day)|"
    r"vec (pola |jedan |dva |tri |\d+ )?(sat|sata|sati|minuta)|vec ceo dan|for an hour|"
    r"[45]\d\d (error|unauthorized|forbidden|greska)|(http|error|greska|kod) [45]\d\d|"
    r"unauthorized|forbidden|pokvaren\w*|ekran je crn|screen is black|"
    r"timeout|time out|timed out|service unavailable|nedostupan|nedostupn\w*)\b"
)
# A how-to question that merely mentions a failure ("šta da radimo ako stranka ne može da otvori
# dokument", "kome prijavljujemo kvar") is not a report: these words mark such a question.
_HOW_TO_ABOUT_FAILURE = re.compile(
    r"\b(kome (da )?(se )?(prijav\w*|javi\w*|obrati\w*)|gde (da )?(prijav\w*|javi\w*)|"
    r"kako (da )?(prijav\w*|javi\w*)|sta ako|sta da radimo ako|sta raditi ako|u slucaju|"
    r"ako stranka|ako gradjanin|ako primalac|who do i report|whom|where do i report|"
    r"how do i report|what if)\b"
)


def is_failure_report(message: str) -> bool:
    """Does the clerk report that something is broken now (an incident for a mentor)?"""
    text = normalize(message)
    if _REPORT_NOW.search(text):
        return True
    if not _FAILURE.search(text):
        return False
    return not _HOW_TO_ABOUT_FAILURE.search(text)
