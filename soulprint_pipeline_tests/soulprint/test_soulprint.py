"""Tests for the soulprint sections, their validation and rendering, and the offline model."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from soulprint_pipeline.export.reader import ExportReader
from soulprint_pipeline.export.rows import SCHEMA
from soulprint_pipeline.soulprint.evidence import KEYWORD_LIMIT, ProfileEvidence, evidence_summary
from soulprint_pipeline.soulprint.offline import offline_soulprint
from soulprint_pipeline.soulprint.sections import (
    NOT_ENOUGH_DATA,
    SECTION_FIELDS,
    SECTION_NAMES,
    SoulprintValidationError,
    render_markdown,
    section_markdown,
    validate_sections,
)

T0 = dt.datetime(2025, 3, 14, 9, 30, tzinfo=dt.UTC)


def _row(
    position: int,
    role: str,
    text: str,
    content_type: str = "text",
    conversation: str = "c1",
    created_at: dt.datetime | None = T0,
) -> dict[str, Any]:
    return {
        "conversation_id": conversation,
        "conversation_title": "A chat",
        "conversation_created_at": T0,
        "message_id": f"{conversation}-{position}",
        "position": position,
        "role": role,
        "content_type": content_type,
        "text": text,
        "created_at": created_at,
        "model_slug": "gpt-4o" if role == "assistant" else None,
    }


def _batch(rows: list[dict[str, Any]]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(rows, schema=SCHEMA)


def _evidence(*batches: pa.RecordBatch) -> ProfileEvidence:
    evidence = ProfileEvidence()
    for batch in batches:
        evidence.add(batch)
    return evidence


def _full_sections() -> dict[str, dict[str, Any]]:
    return {
        section: {
            field: (["one", "two", "three"] if kind is list else f"{section} {field}")
            for field, kind in fields.items()
        }
        for section, fields in SECTION_FIELDS.items()
    }


@pytest.fixture(scope="module")
def export_evidence(tmp_path_factory: pytest.TempPathFactory) -> ProfileEvidence:
    path = tmp_path_factory.mktemp("export") / "conversations.json"
    from soulprint_pipeline.testing.synthetic import write_export

    write_export(str(path), fmt="json", target_bytes=2_000_000, seed=7)
    return _evidence(*ExportReader(str(path)).batches())


# --------------------------------------------------------------------------- validation


def test_schema_covers_the_five_sections() -> None:
    assert tuple(SECTION_FIELDS) == SECTION_NAMES == ("soul", "identity", "user", "agents", "tools")
    assert SECTION_FIELDS["soul"]["personality_traits"] is list
    assert SECTION_FIELDS["identity"]["ai_name"] is str


def test_validate_fills_missing_sections_and_fields() -> None:
    sections = validate_sections({"soul": {"communication_style": "  direct  "}})
    assert set(sections) == set(SECTION_NAMES)
    assert sections["soul"]["communication_style"] == "direct"
    assert sections["soul"]["personality_traits"] == []
    assert sections["soul"]["humor_style"] == NOT_ENOUGH_DATA
    for section, fields in SECTION_FIELDS.items():
        assert set(sections[section]) == set(fields)
    assert sections["tools"]["likely_usage"] == []
    assert sections["user"]["name"] == NOT_ENOUGH_DATA


def test_validate_treats_null_and_blank_as_missing() -> None:
    sections = validate_sections(
        {
            "user": None,
            "identity": {"vibe": "   ", "ai_name": None, "archetype": "Not enough data."},
        }
    )
    assert sections["user"]["interests"] == []
    assert sections["identity"]["vibe"] == NOT_ENOUGH_DATA
    assert sections["identity"]["ai_name"] == NOT_ENOUGH_DATA
    assert sections["identity"]["archetype"] == NOT_ENOUGH_DATA


@pytest.mark.parametrize(
    ("section", "field", "value", "expected"),
    [
        ("soul", "personality_traits", "curious", "list"),
        ("soul", "formality_level", 3, "string"),
        ("user", "interests", {"a": 1}, "list"),
        ("tools", "depth_preference", ["deep"], "string"),
    ],
)
def test_validate_rejects_wrong_types_naming_the_field(
    section: str, field: str, value: Any, expected: str
) -> None:
    raw = _full_sections()
    raw[section][field] = value
    with pytest.raises(SoulprintValidationError, match=rf"{section}\.{field}.*{expected}"):
        validate_sections(raw)


def test_validate_rejects_non_string_list_items_and_non_object_sections() -> None:
    raw = _full_sections()
    raw["agents"]["behavioral_rules"] = ["be kind", 42]
    with pytest.raises(SoulprintValidationError, match=r"agents\.behavioral_rules\[1\].*string"):
        validate_sections(raw)
    with pytest.raises(SoulprintValidationError, match="soul"):
        validate_sections({"soul": ["not", "an", "object"]})
    with pytest.raises(SoulprintValidationError):
        validate_sections(["soul"])  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["Assistant", "assistant", "  ASSISTANT "])
def test_validate_rejects_assistant_as_ai_name(name: str) -> None:
    raw = _full_sections()
    raw["identity"]["ai_name"] = name
    with pytest.raises(SoulprintValidationError, match=r"identity\.ai_name"):
        validate_sections(raw)


def test_validate_drops_unknown_fields_and_sections() -> None:
    raw = _full_sections()
    raw["soul"]["favourite_colour"] = "teal"
    raw["extras"] = {"anything": "else"}
    sections = validate_sections(raw)
    assert "favourite_colour" not in sections["soul"]
    assert "extras" not in sections


def test_validate_cleans_lists_and_caps_traits() -> None:
    raw = _full_sections()
    raw["soul"]["personality_traits"] = [f" trait {i} " for i in range(10)] + ["trait 1", ""]
    sections = validate_sections(raw)
    assert sections["soul"]["personality_traits"] == [f"trait {i}" for i in range(7)]


def test_validate_is_idempotent_and_does_not_mutate_input() -> None:
    raw = _full_sections()
    before = copy.deepcopy(raw)
    once = validate_sections(raw)
    assert raw == before
    assert validate_sections(once) == once


# --------------------------------------------------------------------------- rendering


def test_render_markdown_has_every_section_heading() -> None:
    raw = _full_sections()
    raw["user"]["relationships"] = []
    text = render_markdown(raw)
    for heading in ("## Soul", "## Identity", "## User", "## Agents", "## Tools"):
        assert heading in text
    assert "**Communication style:** soul communication_style" in text
    assert "**AI name:** identity ai_name" in text
    assert "**Personality traits:**\n- one\n- two\n- three" in text
    assert f"**Relationships:** {NOT_ENOUGH_DATA}" in text


def test_section_markdown_is_json_that_parses_back() -> None:
    sections = validate_sections(_full_sections())
    sections["user"]["name"] = "Zoë"
    columns = section_markdown(sections)
    assert set(columns) == {f"{name}_md" for name in SECTION_NAMES}
    for name in SECTION_NAMES:
        assert json.loads(columns[f"{name}_md"]) == sections[name]
    assert "Zoë" in columns["user_md"]  # kept readable, not \\u-escaped


# --------------------------------------------------------------------------- offline model


def test_offline_soulprint_on_a_generated_export(export_evidence: ProfileEvidence) -> None:
    sections = offline_soulprint(export_evidence)
    assert validate_sections(sections) == sections
    assert sections["user"]["interests"]
    assert 3 <= len(sections["soul"]["personality_traits"]) <= 7
    assert 3 <= len(sections["agents"]["behavioral_rules"]) <= 7
    identity = sections["identity"]
    assert identity["ai_name"].casefold() != "assistant"
    assert identity["ai_name"] != NOT_ENOUGH_DATA
    assert 2 <= len(identity["archetype"].split()) <= 4
    assert sections["tools"]["likely_usage"]
    assert sections["tools"]["depth_preference"] != NOT_ENOUGH_DATA
    # the generator's memories state these plainly ("User lives near Lisbon." ...)
    assert sections["user"]["location"] == "Lisbon"
    assert sections["user"]["occupation"] == "data engineer"
    assert any("Maya" in item for item in sections["user"]["relationships"])
    markdown = render_markdown(sections)
    assert markdown.count("\n## ") == 4


def test_offline_soulprint_is_deterministic(
    tmp_path: Path, export_evidence: ProfileEvidence
) -> None:
    from soulprint_pipeline.testing.synthetic import write_export

    path = tmp_path / "again.json"
    write_export(str(path), fmt="json", target_bytes=2_000_000, seed=7)
    again = _evidence(*ExportReader(str(path)).batches())
    first = offline_soulprint(export_evidence)
    assert offline_soulprint(export_evidence) == first
    assert offline_soulprint(again) == first
    assert evidence_summary(again) == evidence_summary(export_evidence)


def test_evidence_is_the_same_whatever_the_batch_size(tmp_path: Path) -> None:
    from soulprint_pipeline.testing.synthetic import write_export

    path = tmp_path / "small.json"
    write_export(str(path), fmt="json", target_bytes=300_000, seed=11)
    whole = _evidence(*ExportReader(str(path)).batches())
    pieces = _evidence(*ExportReader(str(path), batch_rows=37).batches())
    assert pieces.batches > whole.batches
    assert evidence_summary(pieces) | {"batches": 0} == evidence_summary(whole) | {"batches": 0}
    assert offline_soulprint(pieces) == offline_soulprint(whole)


def test_profile_facts_from_custom_instructions() -> None:
    batch = _batch(
        [
            _row(
                0,
                "user",
                "About me: My name is Ada and I am a marine biologist. I live in Lisbon.\n"
                "How to respond: Be concise. No emojis please.",
                content_type="custom_instructions",
            ),
            _row(1, "user", "What makes octopus camouflage work so fast?"),
            _row(2, "assistant", "Chromatophores under direct neural control."),
        ]
    )
    sections = offline_soulprint(_evidence(batch))
    user = sections["user"]
    assert user["name"] == "Ada"
    assert user["occupation"] == "marine biologist"
    assert user["location"] == "Lisbon"
    assert user["preferred_address"] == "Ada"
    assert "Be concise" in sections["soul"]["boundaries"]
    assert "No emojis please." in sections["agents"]["do_not"]
    assert sections["identity"]["emoji_style"].startswith("None")


def test_profile_facts_from_memories_and_first_person_forms() -> None:
    batch = _batch(
        [
            _row(0, "assistant", "1. [2025-01-11]. User works as a nurse.", content_type="memory"),
            _row(1, "assistant", "User's daughter is called Lena.", content_type="memory"),
            _row(2, "assistant", "I'm based in Porto, Portugal.", content_type="memory"),
            _row(3, "user", "Call me Jo. I like hiking on weekends."),
        ]
    )
    sections = offline_soulprint(_evidence(batch))
    user = sections["user"]
    assert user["occupation"] == "nurse"
    assert user["location"] == "Porto, Portugal"
    assert "Lena (daughter)" in user["relationships"]
    # "Call me Jo" was said in a chat message, not in a profile signal: not used as a name
    assert user["name"] == NOT_ENOUGH_DATA


def test_no_plain_statement_means_no_name() -> None:
    batch = _batch(
        [
            _row(0, "user", "About me: I love the sea.", content_type="custom_instructions"),
            _row(1, "user", "I am a huge fan of sailing. I'm tired."),
        ]
    )
    user = offline_soulprint(_evidence(batch))["user"]
    assert user["name"] == NOT_ENOUGH_DATA
    assert user["occupation"] == NOT_ENOUGH_DATA
    assert user["location"] == NOT_ENOUGH_DATA


def test_export_without_user_messages_is_valid_and_mostly_empty() -> None:
    batch = _batch(
        [
            _row(0, "assistant", "Hello! How can I help you today?"),
            _row(1, "tool", "[image]", content_type="multimodal_text"),
        ]
    )
    sections = offline_soulprint(_evidence(batch))
    assert validate_sections(sections) == sections
    assert sections["identity"]["ai_name"].casefold() != "assistant"
    values = [value for section in sections.values() for value in section.values()]
    empty = [value for value in values if value in (NOT_ENOUGH_DATA, [])]
    assert len(empty) >= len(values) - 5
    assert sections["soul"]["personality_traits"] == []
    assert sections["user"]["interests"] == []
    assert sections["agents"]["behavioral_rules"] == []
    assert offline_soulprint(ProfileEvidence()) == offline_soulprint(ProfileEvidence())
    assert validate_sections(offline_soulprint(ProfileEvidence()))


def test_evidence_counts_and_rates() -> None:
    batch = _batch(
        [
            _row(0, "user", "Could you please fix this? ```print(1)``` 🚀"),
            _row(1, "assistant", "Sure: " + "x" * 500),
            _row(2, "user", "thanks!! [image]", created_at=T0 + dt.timedelta(hours=5)),
            _row(3, "tool", "42", content_type="execution_output"),
            _row(0, "user", "Пожалуйста, помоги мне", conversation="c2", created_at=None),
            _row(1, "assistant", "web says", content_type="tether_quote", conversation="c2"),
            _row(2, "assistant", "A memory", content_type="memory", conversation="c2"),
        ]
    )
    evidence = _evidence(batch)
    summary = evidence_summary(evidence)
    assert summary["conversations"] == 2
    assert summary["user_messages"] == 3
    assert summary["assistant_messages"] == 2
    assert summary["tool_messages"] == 1
    assert summary["memories"] == 1
    assert summary["user_code_messages"] == 1
    assert summary["user_images"] == 1
    assert summary["execution_outputs"] == 1
    assert summary["tether_quotes"] == 1
    assert summary["question_rate"] == pytest.approx(1 / 3, abs=1e-3)
    assert summary["politeness_rate"] == pytest.approx(2 / 3, abs=1e-3)
    assert summary["emoji_rate"] == pytest.approx(1 / 3, abs=1e-3)
    assert evidence.hours[9] == 1 and evidence.hours[14] == 1 and sum(evidence.hours) == 2
    assert evidence.weekdays[4] == 2  # 2025-03-14 was a Friday
    assert evidence.script_messages["Cyrillic"] == 1
    assert evidence.memories == ["A memory"]


def test_evidence_summary_holds_no_user_text(export_evidence: ProfileEvidence) -> None:
    phrase = "zanzibar marmalade quokka"
    evidence = _evidence(
        _batch(
            [
                _row(0, "user", f"I keep thinking about {phrase} every day."),
                _row(1, "user", f"About me: {phrase}", content_type="custom_instructions"),
                _row(2, "assistant", f"{phrase} noted", content_type="memory"),
            ]
        )
    )
    for summary in (evidence_summary(evidence), evidence_summary(export_evidence)):
        text = json.dumps(summary)
        for word in phrase.split():
            assert word not in text
        assert all(isinstance(value, int | float | str) for value in summary.values())
    assert "lisbon" not in json.dumps(evidence_summary(export_evidence)).lower()


def test_keyword_counter_stays_bounded() -> None:
    def word(i: int) -> str:
        letters = []
        i += 26**3
        while i:
            i, r = divmod(i, 26)
            letters.append(chr(ord("a") + r))
        return "".join(letters)

    evidence = ProfileEvidence()
    per_message = 200
    for start in range(0, 120_000, 20_000):
        rows = [
            _row(i, "user", " ".join(word(j) for j in range(k, k + per_message)))
            for i, k in enumerate(range(start, start + 20_000, per_message))
        ]
        evidence.add(_batch(rows))
        assert len(evidence.keywords) <= KEYWORD_LIMIT
    assert evidence.keyword_prunes >= 1
    for i in range(60_000):
        evidence.add_keyword(f"extra{word(i)}")
        assert len(evidence.keywords) <= KEYWORD_LIMIT


def test_signals_are_bounded_and_newest_first() -> None:
    rows = [
        _row(
            i,
            "assistant",
            f"User fact number {i}",
            content_type="memory",
            created_at=T0 + dt.timedelta(minutes=i),
        )
        for i in range(500)
    ]
    rows += [
        _row(
            500 + i,
            "user",
            f"About me: version {i}",
            content_type="custom_instructions",
            created_at=T0 + dt.timedelta(days=i),
        )
        for i in range(10)
    ]
    evidence = _evidence(_batch(rows), _batch(rows))
    assert len(evidence.memories) == 200
    assert evidence.memories[0] == "User fact number 499"
    assert evidence.custom_instructions == [f"About me: version {i}" for i in (9, 8, 7)]
    assert evidence.memory_rows == 1000


def test_dictionary_encoded_columns_are_accepted() -> None:
    batch = _batch([_row(0, "user", "How do I bake sourdough bread?"), _row(1, "assistant", "Ok")])
    columns = [
        column.dictionary_encode() if name in ("role", "content_type") else column
        for name, column in zip(batch.schema.names, batch.columns, strict=True)
    ]
    encoded = pa.RecordBatch.from_arrays(columns, names=batch.schema.names)
    assert evidence_summary(_evidence(encoded)) == evidence_summary(_evidence(batch))
