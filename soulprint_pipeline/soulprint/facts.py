"""What the person says about themselves: facts read from custom instructions and memories.

Profile signals are split into sentences (:func:`fact_sentences`, boilerplate and numbering
removed); a name, an address, a location or an occupation is read only where a sentence states
it plainly ("my name is X", "call me X", "I live in X", "I am a X", "User works as a X"), and
is ``NOT_ENOUGH_DATA`` otherwise. The newest custom instructions' "How to respond" lines are
the person's standing instructions (:func:`how_to_respond`). The people and pets in their
life come from the messages' mentions and the profile's sentences (:func:`relationships`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

from soulprint_pipeline.soulprint.evidence import NOT_NAMES, ProfileEvidence, find_relations
from soulprint_pipeline.soulprint.sections import NOT_ENOUGH_DATA, _words

_BOILERPLATE_RE = re.compile(
    r"^\s*(?:about me|how to respond)\s*:\s*|"
    r"the user provided (?:the following information about themselves|the additional info "
    r"about how they would like you to respond)\s*[:.]\s*",
    re.IGNORECASE,
)
_NUMBERING_RE = re.compile(r"^\s*(?:\d+[.)]\s*)?(?:\[[^\]]*\]\.?\s*)?")
_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])\s+(?=\S)")
_STOP_AHEAD = r"(?=\s+(?:and|but|who|with|at|in|for|from|since|based|living|near)\b|[.,;!?\n]|$)"
_CAP_WORD = r"[A-ZÀ-ÖØ-Þ][\w'-]+"
_PLACE = (
    rf"{_CAP_WORD}(?:[ -](?:{_CAP_WORD}|de|del|da|do|upon|on))*"
    rf"(?:,\s*{_CAP_WORD}(?:\s{_CAP_WORD})*)?"
)
_NAME_PATTERNS = (
    re.compile(
        r"(?i:\b(?:my name is|my name's|user's name is|the user's name is|user is named"
        rf"|i am called|i'm called|name is))\s+(?P<v>{_CAP_WORD}(?:\s+{_CAP_WORD})?)"
    ),
    re.compile(rf"(?i:\b(?:call me|i go by))\s+(?P<v>{_CAP_WORD})"),
    re.compile(rf"(?i:\b(?:i am|i'm))\s+(?P<v>{_CAP_WORD})(?=\s*(?:[,.;!]|$)|\s+and\b)"),
)
_ADDRESS_RE = re.compile(rf"(?i:\b(?:call me|i go by|address me as))\s+(?P<v>{_CAP_WORD})")
_OCCUPATION_PATTERNS = (
    re.compile(
        r"(?i:\b(?:i|user|the user)\s+(?:currently\s+)?works?\s+as|\bi'm\s+working\s+as"
        r"|\bmy\s+(?:job|role|occupation|profession)\s+is)\s+(?:an?\s+|the\s+)?"
        rf"(?P<v>[^.,;!?\n]{{2,60}}?){_STOP_AHEAD}"
    ),
    re.compile(
        r"(?i:\b(?:i am|i'm|user is|the user is|i is)\s+(?:an?)\s+)"
        rf"(?P<v>[^.,;!?\n]{{2,60}}?){_STOP_AHEAD}"
    ),
)
_LOCATION_PATTERNS = (
    re.compile(
        r"(?i:\b(?:i|user|the user|we)\s+(?:currently\s+)?lives?\s+(?:in|near|outside|around)"
        r"|\b(?:i'm|i am|user is|the user is|we're|we are)\s+(?:currently\s+)?"
        r"(?:based|living|located)\s+(?:in|near)|\bbased\s+in"
        r"|\bmy\s+(?:home\s*town|city)\s+is)\s+(?:the\s+)?"
        rf"(?P<v>{_PLACE})"
    ),
    re.compile(
        r"(?i:\b(?:i'm|i am|user is|the user is|i is)\s+(?:originally\s+)?from)\s+(?:the\s+)?"
        rf"(?P<v>{_PLACE})"
    ),
)
_OCCUPATION_SUFFIXES = (
    "er", "or", "ist", "ian", "ant", "ent", "eer", "ect", "man", "woman", "person", "nurse",
    "chef", "cook", "pilot", "student", "analyst", "dev", "ceo", "cto", "coach", "founder",
    "owner", "consultant", "surgeon", "medic", "barista", "clerk", "artist", "scientist",
)  # fmt: skip
_NOT_OCCUPATIONS = _words(
    "vegetarian vegan pescatarian beginner fan lover member believer introvert extrovert "
    "parent mother father mom dad mum grandmother grandfather person human perfectionist "
    "optimist pessimist idealist realist runner reader foodie"
)
_NATIONALITY_ENDINGS = ("ese", "ish", "ian", "can", "ean")


def fact_sentences(texts: Iterable[str]) -> list[str]:
    """Sentences of custom instructions and memories, boilerplate and numbering removed.

    The "How to respond" lines of custom instructions are left out: they are instructions,
    read from the newest custom instructions only (see :func:`how_to_respond`).
    """
    sentences: list[str] = []
    for text in texts:
        for line in text.splitlines():
            if line.strip().lower().startswith("how to respond"):
                continue
            line = _BOILERPLATE_RE.sub("", _NUMBERING_RE.sub("", _BOILERPLATE_RE.sub("", line)))
            for sentence in _SENTENCE_SPLIT_RE.split(line):
                sentence = _BOILERPLATE_RE.sub("", sentence).strip()
                if sentence and sentence not in sentences:
                    sentences.append(sentence)
    return sentences


def how_to_respond(custom: str) -> list[str]:
    """The "How to respond" sentences of one custom-instructions text."""
    out: list[str] = []
    for line in custom.splitlines():
        if line.strip().lower().startswith("how to respond"):
            line = _BOILERPLATE_RE.sub("", _BOILERPLATE_RE.sub("", line))
            for sentence in _SENTENCE_SPLIT_RE.split(line):
                sentence = sentence.strip()
                if sentence and sentence not in out:
                    out.append(sentence)
    return out


def _first_match(patterns: Iterable[re.Pattern[str]], sentences: list[str], check: Any) -> str:
    for pattern in patterns:
        for sentence in sentences:
            for match in pattern.finditer(sentence):
                value = match.group("v").strip(" '\"-")
                if value and check(pattern, value):
                    return value
    return NOT_ENOUGH_DATA


def _name_ok(pattern: re.Pattern[str], value: str) -> bool:
    if value.split()[0] in NOT_NAMES:
        return False
    if pattern is _NAME_PATTERNS[2]:  # "I'm X.": a bare capitalized word, maybe a nationality
        return not value.lower().endswith(_NATIONALITY_ENDINGS)
    return True


def _occupation_ok(pattern: re.Pattern[str], value: str) -> bool:
    words = value.split()
    if not 1 <= len(words) <= 5:
        return False
    if pattern is _OCCUPATION_PATTERNS[0]:
        return True
    last = words[-1].lower()
    return last not in _NOT_OCCUPATIONS and last.endswith(_OCCUPATION_SUFFIXES)


def _location_ok(pattern: re.Pattern[str], value: str) -> bool:
    return value.split()[0] not in NOT_NAMES


_PERSON_PREFIX_RE = re.compile(r"^(?:(?:the )?user|i)(?:\s+|(?='m\s))(?=['a-z])", re.IGNORECASE)
_FIRST_PERSON = {"am": "is", "'m": "is", "have": "has", "'ve": "has", "was": "was", "do": "does"}
_KEEP_VERBS = frozenset(
    ["can", "could", "will", "would", "should", "shall", "may", "might", "must", "don't", "did"]
)


def _third_person(fact: str) -> str:
    """``"like hiking"`` (from "I like hiking") -> ``"likes hiking"``; a rough conjugation."""
    first, _, rest = fact.partition(" ")
    lower = first.lower()
    if lower in _FIRST_PERSON:
        verb = _FIRST_PERSON[lower]
    elif lower in _KEEP_VERBS or lower.endswith("s") or not lower.isalpha():
        verb = first
    elif lower.endswith(("ch", "sh", "x", "o")):
        verb = first + "es"
    elif lower.endswith("y") and lower[-2:-1] not in ("a", "e", "i", "o", "u"):
        verb = first[:-1] + "ies"
    else:
        verb = first + "s"
    return f"{verb} {rest}".strip() if rest else verb


def personal_facts(sentences: list[str], known: Iterable[str] = ()) -> list[str]:
    """Sentences about the person ("User likes hiking."), without the subject.

    A fact restating an already extracted value (``known``: the name, location...) is left
    out.
    """
    known_lower = [value.lower() for value in known if value != NOT_ENOUGH_DATA]
    facts: list[str] = []
    for sentence in sentences:
        match = _PERSON_PREFIX_RE.match(sentence)
        if not match:
            continue
        fact = _third_person(sentence[match.end() :].rstrip(".!").strip())
        lower = fact.lower()
        if any(value in lower for value in known_lower):
            continue
        if fact and lower not in (f.lower() for f in facts):
            facts.append(fact)
    return facts


def stated_name(sentences: list[str]) -> str:
    """The person's name as a sentence states it, or ``NOT_ENOUGH_DATA``."""
    return _first_match(_NAME_PATTERNS, sentences, _name_ok)


def stated_address(sentences: list[str]) -> str:
    """What the person asks to be called ("call me X"), or ``NOT_ENOUGH_DATA``."""
    return _first_match((_ADDRESS_RE,), sentences, lambda _p, _v: True)


def stated_location(sentences: list[str]) -> str:
    """Where the person lives or comes from, as a sentence states it, or ``NOT_ENOUGH_DATA``."""
    return _first_match(_LOCATION_PATTERNS, sentences, _location_ok)


def stated_occupation(sentences: list[str]) -> str:
    """The person's work, as a sentence states it, or ``NOT_ENOUGH_DATA``."""
    return _first_match(_OCCUPATION_PATTERNS, sentences, _occupation_ok)


def relationships(evidence: ProfileEvidence, facts: list[str]) -> list[str]:
    """Up to six people and pets in the person's life, most mentioned first.

    ``"Ana (sister)"``, or the relation alone (``"dog"``) when never named; one stated in the
    profile ``facts`` weighs three mentions in the messages.
    """
    counts: Counter[tuple[str, str]] = Counter(evidence.relations)
    for sentence in facts:
        for rel, name in find_relations(sentence):
            counts[(rel, name)] += 3  # stated in a profile signal: weigh it more
    by_relation: dict[str, Counter[str]] = {}
    for (rel, name), count in counts.items():
        by_relation.setdefault(rel, Counter())[name] += count
    ranked = sorted(by_relation.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    out: list[str] = []
    for rel, names in ranked[:6]:
        named = sorted(
            ((name, n) for name, n in names.items() if name), key=lambda item: (-item[1], item[0])
        )
        out.append(f"{named[0][0]} ({rel})" if named else rel)
    return out
