"""Whether the app's row carries the lake's soulprint."""

from __future__ import annotations

from soulprint_pipeline.mirror.agreement import disagreements

SECTIONS = {"identity": {"ai_name": "Nova", "archetype": "The Builder"}, "soul": {"x": "y"}}


def test_a_row_with_the_lakes_soulprint_agrees() -> None:
    row = {"soulprint": SECTIONS, "ai_name": "Nova", "archetype": "The Builder", "other": 1}
    assert disagreements(row, SECTIONS) == []


def test_differences_are_named_by_column_only() -> None:
    row = {"soulprint": {**SECTIONS, "soul": {"x": "z"}}, "ai_name": "Vega", "archetype": None}
    assert disagreements(row, SECTIONS) == ["soulprint", "ai_name", "archetype"]
    assert disagreements(None, SECTIONS) == ["row"]
