"""The soulprint's five sections: their fields, validation and rendering.

Every model backend returns the same five JSON objects (see DESIGN.md, "The soulprint's
sections"); :func:`validate_sections` is the one gate they all pass through, so the app
always reads complete, well-typed sections::

    sections = validate_sections(raw)              # fills gaps, rejects wrong types
    soulprint_text = render_markdown(sections)     # what the app shows
    columns = section_markdown(sections)           # {"soul_md": "<JSON text>", ...}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

# --------------------------------------------------------------------------- the sections


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


SECTION_NAMES = ("soul", "identity", "user", "agents", "tools")
NOT_ENOUGH_DATA = "not enough data"

#: Each section's fields and their JSON type (``str``, or ``list`` of strings), in the order
#: they are stored and rendered.
SECTION_FIELDS: dict[str, dict[str, type]] = {
    "soul": {
        "communication_style": str,
        "personality_traits": list,
        "tone_preferences": str,
        "boundaries": str,
        "humor_style": str,
        "formality_level": str,
        "emotional_patterns": str,
    },
    "identity": {
        "ai_name": str,
        "archetype": str,
        "vibe": str,
        "emoji_style": str,
        "signature_greeting": str,
    },
    "user": {
        "name": str,
        "location": str,
        "occupation": str,
        "relationships": list,
        "interests": list,
        "life_context": str,
        "preferred_address": str,
    },
    "agents": {
        "response_style": str,
        "behavioral_rules": list,
        "context_adaptation": str,
        "memory_directives": str,
        "do_not": list,
    },
    "tools": {
        "likely_usage": list,
        "capabilities_emphasis": list,
        "output_preferences": str,
        "depth_preference": str,
    },
}

#: What each field holds, shown in the prompt's schema (a model shown only "..." guesses).
FIELD_DEFINITIONS: dict[str, dict[str, str]] = {
    "soul": {
        "communication_style": "how the person writes: length, structure, directness, language",
        "personality_traits": "3-7 traits their own messages show, one or two words each",
        "tone_preferences": "the tone they respond well to, from how they write and ask",
        "boundaries": "what they ask the assistant to respect or avoid, in their words",
        "humor_style": "whether and how humor shows in their messages",
        "formality_level": "formal, semi-formal or casual, and what shows it",
        "emotional_patterns": "whether they share feelings, stress or excitement, and how",
    },
    "identity": {
        "ai_name": "a creative name for the person's own AI that suits them; never Assistant",
        "archetype": "2 to 4 words naming the role their AI plays for them",
        "vibe": "a few words on the personality their AI should have",
        "emoji_style": "how much emoji their AI should use, following the person",
        "signature_greeting": "one short greeting their AI could open with, by their name",
    },
    "user": {
        "name": "the person's name as they state it",
        "location": "where they live now (city, region or country), as stated",
        "occupation": "their job or role now, as stated",
        "relationships": "people and pets by name with the relation, e.g. Harriet (wife)",
        "interests": "topics they pursue or keep coming back to; never filler words",
        "life_context": "their current situation in a sentence or two: projects, life stage",
        "preferred_address": "what they want to be called (a preferred name, else their name)",
    },
    "agents": {
        "response_style": "how their AI should answer: length, structure, register",
        "behavioral_rules": "up to 7 rules for their AI, their own instructions first",
        "context_adaptation": "how their AI should change with the topic or mood",
        "memory_directives": "what their AI should remember about them and refer back to",
        "do_not": "things their AI must not do, their own don'ts first",
    },
    "tools": {
        "likely_usage": "what they use the assistant for, most frequent first",
        "capabilities_emphasis": "capabilities they rely on (code, browsing, images, ...)",
        "output_preferences": "formats they prefer for answers (lists, tables, code, prose)",
        "depth_preference": "how deep answers should go: brief, moderate or in-depth",
    },
}

#: Lists longer than this are cut (DESIGN.md asks for 3-7 traits and rules).
LIST_LIMITS = {"personality_traits": 7, "behavioral_rules": 7}
MAX_LIST_ITEMS = 12
MAX_STRING_CHARS = 2000

_SECTION_TITLES = {name: name.capitalize() for name in SECTION_NAMES}
_FIELD_LABELS = {"ai_name": "AI name", "do_not": "Do not"}


class SoulprintValidationError(ValueError):
    """A model's sections do not fit the schema; the message names ``section.field``."""


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _is_placeholder(text: str) -> bool:
    return text.rstrip(".").strip().casefold() == NOT_ENOUGH_DATA


def _clean_string(text: str) -> str:
    text = text.strip()
    if not text or _is_placeholder(text):
        return NOT_ENOUGH_DATA
    if len(text) > MAX_STRING_CHARS:
        text = text[: MAX_STRING_CHARS - 1].rstrip() + "…"
    return text


def validate_sections(raw: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Check and normalize a model's sections into the schema of :data:`SECTION_FIELDS`.

    Missing sections and fields (or ``null`` ones) are filled: strings with
    :data:`NOT_ENOUGH_DATA`, lists with ``[]``. Unknown sections and fields are dropped.
    Strings are stripped (an empty one, or any spelling of "not enough data", becomes
    :data:`NOT_ENOUGH_DATA`; very long ones are cut to ``MAX_STRING_CHARS``). List items must
    be strings; they are stripped, blanks and duplicates dropped, and the list cut to its limit
    (7 for ``personality_traits`` and ``behavioral_rules``, ``MAX_LIST_ITEMS`` otherwise).

    Raises :class:`SoulprintValidationError`, naming ``section.field`` and the expected type,
    when a value has the wrong type, and when ``identity.ai_name`` is "Assistant" (any case).
    """
    if not isinstance(raw, Mapping):
        raise SoulprintValidationError(
            f"soulprint: expected an object of sections, got {_type_name(raw)}"
        )
    sections: dict[str, dict[str, Any]] = {}
    for section, fields in SECTION_FIELDS.items():
        given = raw.get(section)
        if given is None:
            given = {}
        if not isinstance(given, Mapping):
            raise SoulprintValidationError(
                f"{section}: expected an object, got {_type_name(given)}"
            )
        clean: dict[str, Any] = {}
        for field, kind in fields.items():
            where = f"{section}.{field}"
            value = given.get(field)
            if value is None:
                clean[field] = NOT_ENOUGH_DATA if kind is str else []
            elif kind is str:
                if not isinstance(value, str):
                    raise SoulprintValidationError(
                        f"{where}: expected a string, got {_type_name(value)}"
                    )
                clean[field] = _clean_string(value)
            else:
                if not isinstance(value, list | tuple):
                    raise SoulprintValidationError(
                        f"{where}: expected a list of strings, got {_type_name(value)}"
                    )
                items: list[str] = []
                for index, item in enumerate(value):
                    if not isinstance(item, str):
                        raise SoulprintValidationError(
                            f"{where}[{index}]: expected a string, got {_type_name(item)}"
                        )
                    item = _clean_string(item)
                    if item != NOT_ENOUGH_DATA and item not in items:
                        items.append(item)
                clean[field] = items[: LIST_LIMITS.get(field, MAX_LIST_ITEMS)]
        sections[section] = clean
    ai_name = sections["identity"]["ai_name"]
    if ai_name.strip(" .!\"'").casefold() == "assistant":
        raise SoulprintValidationError(
            f"identity.ai_name: expected a creative name, not {ai_name!r}"
        )
    return sections


def _cap(text: str) -> str:
    """``text`` with its first letter upper-cased (``str.capitalize`` lowers the rest)."""
    return text[:1].upper() + text[1:]


def _label(field: str) -> str:
    return _FIELD_LABELS.get(field, field.replace("_", " ").capitalize())


def render_markdown(sections: Mapping[str, Any]) -> str:
    """The sections as readable markdown (the ``soulprint_text`` the app shows).

    One ``## Title`` heading per section, one ``**Label:** value`` line per field, lists as
    bullets (an empty list reads "not enough data"). The input is validated first.
    """
    sections = validate_sections(sections)
    lines: list[str] = []
    for section, fields in SECTION_FIELDS.items():
        if lines:
            lines.append("")
        lines.append(f"## {_SECTION_TITLES[section]}")
        lines.append("")
        for field in fields:
            value = sections[section][field]
            if isinstance(value, list):
                if value:
                    lines.append(f"**{_label(field)}:**")
                    lines.extend(f"- {item}" for item in value)
                else:
                    lines.append(f"**{_label(field)}:** {NOT_ENOUGH_DATA}")
            else:
                lines.append(f"**{_label(field)}:** {value}")
    return "\n".join(lines) + "\n"


def section_markdown(sections: Mapping[str, Any]) -> dict[str, str]:
    """The per-section columns: ``{"soul_md": <JSON text of soul>, ..., "tools_md": ...}``.

    The ``*_md`` columns hold JSON text despite their names (DESIGN.md). Keys keep the schema's
    field order; non-ASCII text is kept as is. The input is validated first.
    """
    sections = validate_sections(sections)
    return {
        f"{section}_md": json.dumps(sections[section], ensure_ascii=False)
        for section in SECTION_NAMES
    }
