"""The person's profile sentences: other facts and preferences, and the people in their life.

Profile signals are split into sentences (:func:`fact_sentences`, boilerplate and numbering
removed) and the ones about the person become facts (:func:`personal_facts`: "User likes
hiking." -> "likes hiking"). Name, location, occupation and the like are read by
:mod:`~soulprint_pipeline.soulprint.signals`, from every source, dated. The people and pets in
their life come from the messages' mentions and the profile's sentences (:func:`relationships`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from soulprint_pipeline.soulprint.evidence import ProfileEvidence, find_relations
from soulprint_pipeline.soulprint.sections import NOT_ENOUGH_DATA
from soulprint_pipeline.soulprint.signals import sentences


def fact_sentences(texts: Iterable[str]) -> list[str]:
    """The distinct sentences of profile texts (custom instructions' "About me" with ChatGPT's
    wrapper already removed, memories), numbering and memory dates removed."""
    out: list[str] = []
    for text in texts:
        out += [sentence for sentence in sentences(text) if sentence not in out]
    return out


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
