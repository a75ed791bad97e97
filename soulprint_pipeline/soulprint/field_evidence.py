"""Evidence per field: the short quotes behind a soulprint's filled fields, for an audit.

The model is asked for a verbatim quote of the person's own words (or of the candidate fact it
used) per field it filled; the offline model gives the quotes of the statements it read. Every
quote passes :func:`checked_evidence`: one the model's input does not hold is dropped and
counted (a model may paraphrase or invent), as is one for a field left empty::

    finder = QuoteFinder(sample.person_texts())
    evidence = checked_evidence(answer.evidence, sections, finder)
    evidence.quotes                                # {"user.location": ["I live in Leeds"], ...}
    evidence.summary()                             # counts only: fit for metadata

The quotes are the person's text, so they are kept in one place only: the soulprint's JSON in
the lake (:func:`stored_soulprint`, under :data:`EVIDENCE_KEY` beside the five sections),
where a data engineer can audit a profile. Never in ``user_profiles``, the metadata or the
logs; :func:`sections_of` is how every reader of the stored JSON gets the sections back.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from soulprint_pipeline.soulprint.sections import NOT_ENOUGH_DATA, SECTION_FIELDS

#: The key of the evidence in the model's answer and in the stored soulprint JSON.
EVIDENCE_KEY = "evidence"
MAX_QUOTES = 3  # per field
MAX_QUOTE_CHARS = 300
MIN_QUOTE_CHARS = 4  # "I", "a", "Leo": found anywhere, proving nothing

#: Every field a quote may support, as "section.field".
FIELD_PATHS = tuple(
    f"{section}.{name}" for section, names in SECTION_FIELDS.items() for name in names
)

# typographic quotes a model may write for the person's straight ones
_TYPOGRAPHIC = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"'})


def _normal(text: str) -> str:
    """``text`` as quotes are compared: entities decoded (the input escapes ``<``, ``>`` and
    ``&``), typographic quotes straightened, whitespace folded, case folded."""
    return " ".join(html.unescape(text).translate(_TYPOGRAPHIC).split()).casefold()


class QuoteFinder:
    """Whether a quote is in the texts the model was given (the person's words only)."""

    def __init__(self, texts: Iterable[str]) -> None:
        # NUL never occurs in a normalized quote: a quote cannot span two texts
        self._haystack = "\x00".join(_normal(text) for text in texts)

    def __contains__(self, quote: str) -> bool:
        return _normal(quote) in self._haystack


@dataclass
class FieldEvidence:
    """The kept quotes by field, and how many were dropped."""

    quotes: dict[str, list[str]] = field(default_factory=dict)
    #: quotes the model's input does not hold
    dropped_not_in_input: int = 0
    #: quotes for a field unknown or left empty, too short, or not strings
    dropped_other: int = 0

    def summary(self) -> dict[str, int]:
        """Counts only (never a quote): what the metadata may carry."""
        return {
            "fields_with_evidence": len(self.quotes),
            "quotes": sum(len(quotes) for quotes in self.quotes.values()),
            "dropped_not_in_input": self.dropped_not_in_input,
            "dropped_other": self.dropped_other,
        }


def _filled(sections: Mapping[str, Any], path: str) -> bool:
    section, name = path.split(".", 1)
    value = sections.get(section, {}).get(name)
    return bool(value) and value != NOT_ENOUGH_DATA


def checked_evidence(
    raw: Any, sections: Mapping[str, Any], finder: QuoteFinder | None
) -> FieldEvidence:
    """The quotes of ``raw`` (``{"section.field": quote or [quotes]}``) that support a filled
    field of ``sections`` and that ``finder`` holds (every quote, without a finder: the
    offline model's are cut from the rows); at most :data:`MAX_QUOTES` a field, each cut to
    :data:`MAX_QUOTE_CHARS`. Anything else is dropped and counted, never an error: evidence is
    for an audit, and a soulprint without it is still a soulprint."""
    evidence = FieldEvidence()
    if not isinstance(raw, Mapping):
        evidence.dropped_other += raw is not None
        return evidence
    for path, given in raw.items():
        quotes = [given] if isinstance(given, str) else given
        if not isinstance(quotes, list | tuple):
            evidence.dropped_other += 1
            continue
        for quote in quotes:
            if not isinstance(quote, str):
                evidence.dropped_other += 1
                continue
            # as the person wrote it: the input's entities decoded, whitespace folded
            quote = " ".join(html.unescape(quote).split()).strip("\"'“”‘’").strip()
            known = path in FIELD_PATHS and _filled(sections, path)
            if not known or len(quote) < MIN_QUOTE_CHARS:
                evidence.dropped_other += 1
            elif finder is not None and quote not in finder:
                evidence.dropped_not_in_input += 1
            else:
                kept = evidence.quotes.setdefault(path, [])
                quote = quote[:MAX_QUOTE_CHARS]
                if len(kept) == MAX_QUOTES:
                    evidence.dropped_other += 1
                elif quote not in kept:
                    kept.append(quote)
    return evidence


def stored_soulprint(sections: Mapping[str, Any], quotes: Mapping[str, list[str]]) -> dict:
    """The soulprint's JSON in the lake: the five sections and, beside them, the evidence."""
    return {**sections, EVIDENCE_KEY: dict(quotes)}


def sections_of(stored: Mapping[str, Any]) -> dict[str, Any]:
    """The five sections of a stored soulprint JSON, without its evidence (the person's
    quotes, which go nowhere else)."""
    return {key: value for key, value in stored.items() if key != EVIDENCE_KEY}


def evidence_of(stored: Mapping[str, Any]) -> dict[str, list[str]]:
    """The evidence of a stored soulprint JSON (empty for one stored before prompt v3)."""
    return dict(stored.get(EVIDENCE_KEY) or {})
