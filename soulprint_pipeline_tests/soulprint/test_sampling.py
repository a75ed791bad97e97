"""Which conversations the model sees: deterministic, inside the budget, signals always in."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from soulprint_pipeline.export.containers import MiB
from soulprint_pipeline.export.reader import ExportReader
from soulprint_pipeline.export.rows import CUSTOM_INSTRUCTIONS, MEMORY
from soulprint_pipeline.soulprint.sampling import (
    SampleLimits,
    estimate_tokens,
    render_sample,
    sample_conversations,
)
from soulprint_pipeline.testing.synthetic import write_export


@pytest.fixture(scope="module")
def batches(tmp_path_factory: pytest.TempPathFactory) -> list[pa.RecordBatch]:
    path = tmp_path_factory.mktemp("sampling") / "export.json"
    write_export(str(path), fmt="json", target_bytes=24 * MiB, seed=5)
    return list(ExportReader(str(path)).batches())


def test_the_sample_is_inside_the_budget_and_the_bounds(batches: list[pa.RecordBatch]) -> None:
    for budget in (8_000, 50_000):
        sample = sample_conversations(batches, SampleLimits(token_budget=budget))
        assert 5 <= len(sample.conversations) <= 50
        assert sample.estimated_tokens <= budget
        assert estimate_tokens(render_sample(sample)) <= budget * 1.05  # tags add a little
        assert sample.total_conversations > 300


def test_the_sample_is_deterministic(batches: list[pa.RecordBatch]) -> None:
    first = sample_conversations(batches)
    second = sample_conversations(list(reversed(list(reversed(batches)))))
    assert render_sample(first) == render_sample(second)


def test_custom_instructions_and_memories_are_always_in(batches: list[pa.RecordBatch]) -> None:
    sample = sample_conversations(batches, SampleLimits(token_budget=5_000))
    signals = pa.concat_tables([pa.Table.from_batches([b]) for b in batches])
    types = signals.column("content_type").to_pylist()
    assert CUSTOM_INSTRUCTIONS in types and MEMORY in types
    assert sample.custom_instructions and sample.memories
    block = render_sample(sample)
    assert "<custom_instructions>" in block and "<saved_memories>" in block


def test_substantial_conversations_are_preferred(batches: list[pa.RecordBatch]) -> None:
    sample = sample_conversations(batches, SampleLimits(token_budget=20_000))
    chosen = [c.user_words for c in sample.conversations]
    assert min(chosen) >= SampleLimits().min_user_words


def test_cost_does_not_grow_with_the_export(tmp_path: Path) -> None:
    small, large = tmp_path / "small.json", tmp_path / "large.json"
    write_export(str(small), fmt="json", target_bytes=4 * MiB, seed=8)
    write_export(str(large), fmt="json", target_bytes=16 * MiB, seed=8)
    tokens = [
        sample_conversations(ExportReader(str(path)).batches()).estimated_tokens
        for path in (small, large)
    ]
    assert max(tokens) <= 50_000
    assert tokens[1] <= tokens[0] * 1.2  # 4x the export, about the same prompt


def test_the_newest_custom_instructions_and_memories_come_first_dated() -> None:
    from datetime import UTC, datetime

    from soulprint_pipeline.export.rows import SCHEMA

    def row(conversation: str, year: int, content_type: str, text: str, role: str = "user"):
        return {
            "conversation_id": conversation,
            "conversation_title": conversation,
            "conversation_created_at": datetime(year, 3, 1, tzinfo=UTC),
            "message_id": f"{conversation}-{content_type}",
            "position": 0,
            "role": role,
            "content_type": content_type,
            "text": text,
            "created_at": None,  # as the reader writes custom instructions
            "model_slug": None,
        }

    rows = []
    for year in (2026, 2025, 2024, 2023):  # an export lists the newest conversation first
        rows.append(row(f"c{year}", year, CUSTOM_INSTRUCTIONS, f"I live in city-{year}."))
        rows.append(row(f"c{year}", year, "text", "a question " * 20))
    rows.append(row("c2024", 2024, MEMORY, "Has a cat named Miso.", "assistant"))
    rows.append(row("c2026", 2026, MEMORY, "Has  a cat named Miso.", "assistant"))  # again
    rows.append(row("c2025", 2025, MEMORY, "Runs on Sundays.", "assistant"))
    sample = sample_conversations([pa.RecordBatch.from_pylist(rows, schema=SCHEMA)])
    assert sample.custom_instructions == [
        "(2026-03-01) I live in city-2026.",
        "(2025-03-01) I live in city-2025.",
        "(2024-03-01) I live in city-2024.",
    ]
    assert sample.memories == [  # one snapshot of a memory saved twice: its newest
        "(2026-03-01) Has  a cat named Miso.",
        "(2025-03-01) Runs on Sundays.",
    ]
    assert render_sample(sample).index("city-2026") < render_sample(sample).index("city-2025")


def test_a_fact_stated_once_reaches_the_model_with_its_date_and_quote(tmp_path: Path) -> None:
    from soulprint_pipeline.testing.personas import PERSONAS, write_persona_export

    path = tmp_path / "persona.json"
    truth = write_persona_export(PERSONAS[2], str(path), conversations=400)
    once = [plant for plant, where in truth.plant_conversations.items() if len(where) == 1]
    sample = sample_conversations(ExportReader(str(path)).batches())
    block = render_sample(sample)
    sampled = "\n".join(c.render() for c in sample.conversations)
    assert once and not any(plant[:40] in sampled for plant in once)  # not in the sample...
    facts = block[block.index("<candidate_facts>") : block.index("</candidate_facts>")]
    assert "relationship: Imogen (daughter) [chat, 20" in facts  # ...yet dated, quoted, here
    assert '"My daughter Imogen starts university' in facts
    # the custom instructions without ChatGPT's wrapper, the newest version first
    custom = block[block.index("<custom_instructions>") : block.index("</custom_instructions>")]
    assert "acknowledge" not in custom and "```" not in custom
    assert custom.index("Solicitor") < custom.index("paralegal")
    # the budget goes to the person: assistant turns cut short, no tool output
    roles = [role for c in sample.conversations for role, _ in c.messages]
    assert "tool" not in roles
    assert all(
        len(text) <= SampleLimits().max_assistant_chars
        for c in sample.conversations
        for role, text in c.messages
        if role == "assistant"
    )
    lines = facts.splitlines()[1:]
    assert len(lines) == len(set(lines))  # one line per fact


#: One topic a quarter, oldest first: the person's interests move over two years.
TOPICS_BY_QUARTER = {
    "cooking": "a vegetarian dinner recipe: can I bake sourdough bread and a cake for the meal",
    "fitness": "my marathon training: a running workout, the gym and stretching after a race",
    "travel": "a trip itinerary for Lisbon: which flight and hotel for a short vacation",
    "music": "piano practice: the chords and scales of a song I want to play",
    "finance": "my budget: rent, savings and the mortgage, and whether to invest",
    "languages": "Spanish vocabulary and pronunciation, and how to translate idioms",
    "reading": "a novel with an author I like: which book and chapter to read next",
    "planning": "a routine with goals, a calendar and a deadline for each habit",
}


def _export_whose_topics_change(path: Path) -> dict[str, tuple[int, str, float]]:
    """A ChatGPT export of 24 months, one topic a quarter; the oldest quarters' conversations
    are the longest, the newest quarter has the most. ``conversation_id -> (month, topic,
    created)``."""
    import json
    from datetime import UTC, datetime

    from soulprint_pipeline_tests.support.exports import chatgpt_conversation

    truth: dict[str, tuple[int, str, float]] = {}
    conversations = []
    for quarter, (topic, words) in enumerate(TOPICS_BY_QUARTER.items()):
        for month in range(quarter * 3, quarter * 3 + 3):
            count = 30 if quarter == 7 else 8
            turns = 2 + 2 * (7 - quarter)  # older: longer
            for day in range(count):
                index = len(conversations)
                created = datetime(2024 + month // 12, month % 12 + 1, 1 + day, tzinfo=UTC)
                said = [
                    ("user", f"Question {n} about {words}?")
                    if n % 2 == 0
                    else ("assistant", "A reply.")
                    for n in range(turns)
                ]
                conversations.append(
                    chatgpt_conversation(index, said, create_time=created.timestamp())
                )
                truth[f"conv-{index}"] = (month, topic, created.timestamp())
    conversations.reverse()  # an export lists the newest first
    path.write_text(json.dumps(conversations))
    return truth


def test_the_sample_covers_every_period_and_topic_newest_first_within_each(
    tmp_path: Path,
) -> None:
    path = tmp_path / "conversations.json"
    truth = _export_whose_topics_change(path)
    sample = sample_conversations(ExportReader(str(path)).batches())
    chosen = [truth[c.conversation_id] for c in sample.conversations]
    assert len(chosen) == SampleLimits().max_conversations
    assert {topic for _, topic, _ in chosen} == set(TOPICS_BY_QUARTER)
    assert {month for month, _, _ in chosen} == set(range(24))  # every month of two years
    assert sample.coverage == {
        "period_months": 1,
        "periods": 24,
        "periods_sampled": 24,
        "themes": 8,
        "themes_sampled": 8,
    }
    # the person's words first: the assistant's lines add up to at most half of theirs
    for conversation in sample.conversations:
        said = [len(text) for role, text in conversation.messages if role == "user"]
        replied = [len(text) for role, text in conversation.messages if role == "assistant"]
        assert sum(replied) <= sum(said) // 2
    # within a month (all alike), the newest conversations are the ones taken
    for month in range(24):
        taken = sorted(created for m, _, created in chosen if m == month)
        in_month = sorted(created for m, _, created in truth.values() if m == month)
        assert taken == in_month[len(in_month) - len(taken) :], month


def test_a_long_history_is_cut_into_quarters_or_years() -> None:
    from soulprint_pipeline.soulprint.sampling import _period_months

    assert _period_months(set(range(20)), 25) == 1
    assert _period_months(set(range(60)), 25) == 3
    assert _period_months(set(range(200)), 25) == 12
