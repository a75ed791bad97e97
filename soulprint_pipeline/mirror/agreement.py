"""Whether the app's ``user_profiles`` row carries the soulprint the lake holds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The row's columns that must say what the lake's soulprint says.
COMPARED = ("soulprint", "ai_name", "archetype")


def disagreements(row: Mapping[str, Any] | None, sections: Mapping[str, Any]) -> list[str]:
    """The names of the row's columns that differ from the lake's ``sections`` (the values
    stay out: they are the person's soulprint); ``["row"]`` when there is no row."""
    if not row:
        return ["row"]
    identity = sections.get("identity") or {}
    expected = {
        "soulprint": dict(sections),
        "ai_name": identity.get("ai_name"),
        "archetype": identity.get("archetype"),
    }
    return [column for column in COMPARED if row.get(column) != expected[column]]
