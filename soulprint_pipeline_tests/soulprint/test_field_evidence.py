"""Evidence per field (issue 11): a quote behind each filled field, checked against what the
model was given, the person's words only."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa

from soulprint_pipeline.export.reader import ExportReader
from soulprint_pipeline.export.rows import SCHEMA
from soulprint_pipeline.soulprint.evidence import ProfileEvidence
from soulprint_pipeline.soulprint.field_evidence import (
    MAX_QUOTES,
    QuoteFinder,
    checked_evidence,
    sections_of,
    stored_soulprint,
)
from soulprint_pipeline.soulprint.offline import offline_quotes, offline_soulprint
from soulprint_pipeline.soulprint.sampling import render_sample, sample_conversations
from soulprint_pipeline.soulprint.sections import NOT_ENOUGH_DATA, validate_sections
from soulprint_pipeline.testing.personas import PERSONAS, write_persona_export

SECTIONS = validate_sections(
    {
        "identity": {"ai_name": "Nova"},
        "user": {"location": "Leeds", "interests": ["rowing", "baking"]},
    }
)


def _rows(texts: list[tuple[str, str]]) -> pa.RecordBatch:
    start = dt.datetime(2025, 5, 1, tzinfo=dt.UTC)
    return pa.RecordBatch.from_pylist(
        [
            {
                "conversation_id": "c1",
                "conversation_title": "A chat",
                "conversation_created_at": start,
                "message_id": f"m{position}",
                "position": position,
                "role": role,
                "content_type": "text",
                "text": text,
                "created_at": start + dt.timedelta(minutes=position),
                "model_slug": None,
            }
            for position, (role, text) in enumerate(texts)
        ],
        schema=SCHEMA,
    )


def test_a_quote_not_in_the_input_is_dropped_and_counted() -> None:
    finder = QuoteFinder(["We moved last year and I live in Leeds <now> with two cats."])
    evidence = checked_evidence(
        {
            "user.location": "i live in  LEEDS &lt;now&gt;",  # case, spaces, entities: the same
            "user.interests": ["I row on Sundays", "with two cats", 7],
            "user.name": "I live in Leeds",  # not filled
            "user.shoe_size": "I live in Leeds",  # no such field
            "soul.humor_style": "ha",  # not filled, and too short to prove anything
        },
        SECTIONS,
        finder,
    )
    assert evidence.quotes == {
        "user.location": ["i live in LEEDS <now>"],
        "user.interests": ["with two cats"],
    }
    assert evidence.summary() == {
        "fields_with_evidence": 2,
        "quotes": 2,
        "dropped_not_in_input": 1,
        "dropped_other": 4,
    }
    assert checked_evidence(None, SECTIONS, finder).summary()["dropped_other"] == 0
    assert checked_evidence(["a list"], SECTIONS, finder).summary()["dropped_other"] == 1
    many = checked_evidence(
        {"user.interests": ["with two cats"] * 2 + ["Leeds", "I live"] * 2}, SECTIONS, finder
    )
    assert len(many.quotes["user.interests"]) <= MAX_QUOTES


def test_only_the_persons_words_in_the_input_count() -> None:
    batch = _rows(
        [
            ("user", "I have taken up rowing on the canal, any tips for a beginner's stroke?"),
            ("assistant", "You clearly love rowing and live near the water in Leeds."),
        ]
    )
    sample = sample_conversations([batch])
    assert "love rowing" in render_sample(sample)  # the model saw it, as context
    evidence = checked_evidence(
        {
            "user.interests": ["I have taken up rowing on the canal", "You clearly love rowing"],
            "user.location": "live near the water in Leeds",
        },
        SECTIONS,
        QuoteFinder(sample.person_texts()),
    )
    assert evidence.quotes == {"user.interests": ["I have taken up rowing on the canal"]}
    assert evidence.dropped_not_in_input == 2


def test_the_stored_json_keeps_the_evidence_beside_the_sections() -> None:
    stored = stored_soulprint(SECTIONS, {"user.location": ["I live in Leeds"]})
    assert stored["evidence"] == {"user.location": ["I live in Leeds"]}
    assert sections_of(stored) == SECTIONS == validate_sections(stored)


def test_the_offline_quotes_are_the_persons_own_words(tmp_path: Path) -> None:
    path = tmp_path / "persona.json"
    write_persona_export(PERSONAS[0], str(path), conversations=150)
    batches = list(ExportReader(str(path)).batches())
    evidence = ProfileEvidence()
    for batch in batches:
        evidence.add(batch)
    sections = offline_soulprint(evidence)
    quotes = offline_quotes(evidence, sections)
    # the stated fields have their quote; inferred ones (style, usage) have none
    assert {"user.name", "user.location", "user.occupation", "user.preferred_address"} <= set(
        quotes
    )
    assert {"user.relationships", "user.interests", "agents.behavioral_rules"} <= set(quotes)
    assert not any(path.startswith(("soul.humor", "tools.")) for path in quotes)
    assert any("Denver" in quote for quote in quotes["user.location"])
    texts = [text for batch in batches for text in batch.column("text").to_pylist() if text]
    checked = checked_evidence(quotes, sections, QuoteFinder(texts))
    assert checked.quotes == quotes and checked.dropped_not_in_input == 0
    for path in quotes:
        section, name = path.split(".")
        assert sections[section][name] not in (NOT_ENOUGH_DATA, [])
