"""The reader over real exports from public projects (``fixtures/``, see its SOURCES.md).

Each expected row is written out as (conversation title, role, content type, start of text).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from soulprint_pipeline.export.reader import ExportReader
from soulprint_pipeline_tests.support.exports import REAL_FIXTURES

REAL = REAL_FIXTURES

EXPECTED_ROWS: dict[str, list[tuple[str | None, str, str, str]]] = {
    "chatgpt-librechat-export.json": [
        ("Conversation 1. Web Search", "user", "text", "What is the fuel consumption of vw"),
        ("Conversation 1. Web Search", "assistant", "text", "The fuel consumption of a Volkswagen"),
        ("Conversation 1. Web Search", "user", "text", "What about 10 year old model"),
        ("Conversation 1. Web Search", "assistant", "text", "The fuel consumption of a 2014"),
        ("Conversation 1. Web Search", "user", "text", "Is it for fully loaded"),
        ("Conversation 1. Web Search", "assistant", "text", "The fuel consumption figures for"),
        ("Conversation 2", "user", "text", "In programming how to find if all intervals"),
        ("Conversation 2", "assistant", "text", "To find the point where all intervals"),
        ("Conversation 2", "user", "text", "give me code in C#"),
        ("Conversation 2", "assistant", "text", "Certainly! Here's the same logic"),
    ],
    # current_node is the second regeneration; the mapping is not root-first.
    "chatgpt-librechat-tree.json": [
        ("Assist user with summary", "user", "text", "hi there"),
        ("Assist user with summary", "assistant", "text", "Hello! How can I assist you today?"),
        ("Assist user with summary", "user", "text", "hi again"),
        ("Assist user with summary", "assistant", "text", "Hey! Welcome back."),
        ("Assist user with summary", "user", "text", "tell me a joke"),
        ("Assist user with summary", "assistant", "text", "Sure, here's one for you:"),
    ],
    # current_node dangles: the newest leaf is taken, and the walk stops at the missing parent.
    "chatgpt-librechat-citations.json": [
        ("Citation Convo", "assistant", "text", "Signal Sciences is a web application security"),
    ],
    "chatgpt-librechat-modern-export.json": [
        (
            "Deploying the staging cluster",
            "user",
            "custom_instructions",
            "About me: The user is an SRE.\nHow to respond: Answer concisely.",
        ),
        ("Deploying the staging cluster", "user", "text", "How do I roll back the deploy?"),
        ("Deploying the staging cluster", "assistant", "text", "Run `helm rollback staging`."),
        ("Deploying the staging cluster", "user", "text", "And if that fails?"),
        ("Deploying the staging cluster", "assistant", "text", "Restore from the last known-good"),
        ("Weeknight pasta", "user", "text", "Something with anchovies?"),
        ("Weeknight pasta", "assistant", "text", "Puttanesca."),
    ],
    # msg-5 is an abandoned user edit; the visible system message is empty.
    "chatgpt-mitkury-branch.json": [
        ("Sample conversation with branch", "user", "text", "Hello! Can you help me"),
        ("Sample conversation with branch", "assistant", "text", "Of course! I'd be happy"),
        (
            "Sample conversation with branch",
            "user",
            "text",
            "How do I write a function in JavaScript?",
        ),
        ("Sample conversation with branch", "assistant", "text", "Here's how to write a function"),
    ],
    # Non-canonical shapes: no current_node, assistant-written code output and quotes.
    "chatgpt-byegpt-content-types.json": [
        ("Test Conversation One", "user", "text", "What is Python?"),
        (
            "Test Conversation One",
            "assistant",
            "text",
            "Python is a high-level programming language",
        ),
        ("Test Conversation One", "assistant", "code", "```python\nprint('Hello, World!')\n```"),
        ("Test Conversation One", "assistant", "execution_output", "Hello, World!"),
        ("Test Conversation One", "user", "multimodal_text", "Look at this image:\n[image]"),
        (
            "Test Conversation One",
            "assistant",
            "tether_quote",
            "According to the Python documentation",
        ),
        (None, "user", "text", "Hello!"),
    ],
    # No current_node: the newest leaf of the branch is the second answer.
    "chatgpt-contextcarry-gizmo.json": [
        ("Hello World Test", "user", "text", "What is TypeScript?"),
        ("Hello World Test", "assistant", "text", "TypeScript is a typed superset"),
        ("Branching Test", "user", "text", "Explain MQTT protocol"),
        ("Branching Test", "assistant", "text", "MQTT is a lightweight messaging protocol"),
    ],
    # A ZIP; the root node carries a user message; two assistant messages in a row.
    "chatgpt-synthetic-export.zip": [
        ("Vocabulary questions", "user", "text", "define incredulous"),
        ("Vocabulary questions", "assistant", "text", "Incredulous means unwilling"),
        ("Vocabulary questions", "assistant", "text", "A berth can mean a sleeping place"),
        ("Vocabulary questions", "user", "text", "What does that mean?"),
        ("Vocabulary questions", "assistant", "text", "Here it refers to a sleeping place."),
        ("Mixed questions", "user", "text", "What is Docker used for?"),
        ("Mixed questions", "assistant", "text", "Docker packages applications into containers."),
        ("Mixed questions", "user", "text", "what does stoppage time mean"),
        ("Mixed questions", "assistant", "text", "It is time added at the end of a soccer period."),
    ],
    # Newer Claude shape, a single object; content[] holds the words, not the empty `text`.
    "claude-osteele-bakery.json": [
        (
            "Interactive Bakery Comparison Visualization",
            "user",
            "text",
            "Make an interactive visualization",
        ),
        (
            "Interactive Bakery Comparison Visualization",
            "assistant",
            "text",
            " I'll create an interactive",
        ),
        (
            "Interactive Bakery Comparison Visualization",
            "user",
            "text",
            "What are your ideas for extending",
        ),
        (
            "Interactive Bakery Comparison Visualization",
            "assistant",
            "text",
            " I'll suggest several",
        ),
    ],
}

EXPECTED_STATS = {
    "chatgpt-librechat-export.json": dict(
        format="chatgpt",
        container="json",
        conversations=2,
        skipped={"message:hidden": 2, "message:not_for_the_person": 4, "message:tool_output": 5},
    ),
    "chatgpt-librechat-tree.json": dict(conversations=1, skipped={"message:hidden": 1}),
    "chatgpt-librechat-citations.json": dict(conversations=1, skipped={"message:tool_output": 1}),
    "chatgpt-librechat-modern-export.json": dict(
        conversations=3,
        messages=6,
        custom_instructions=1,
        skipped={"conversation:no_mapping": 1},
    ),
    "chatgpt-mitkury-branch.json": dict(conversations=1, skipped={"message:system": 1}),
    "chatgpt-byegpt-content-types.json": dict(
        conversations=3,
        skipped={
            "conversation:no_visible_messages": 1,
            "message:reasoning_recap": 1,
            "message:system": 1,
            "message:thoughts": 1,
        },
    ),
    "chatgpt-contextcarry-gizmo.json": dict(conversations=2, skipped={}),
    "chatgpt-synthetic-export.zip": dict(container="zip", documents=["conversations.json"]),
    "claude-osteele-bakery.json": dict(format="claude", conversations=1, skipped={}),
    "claude-simonw-artifacts.json": dict(format="claude", conversations=1, messages=20),
}


def _rows(name: str) -> tuple[list[dict], ExportReader]:
    reader = ExportReader(str(REAL / name))
    rows = [row for batch in reader.batches() for row in batch.to_pylist()]
    return rows, reader


def test_every_real_fixture_is_covered() -> None:
    present = {path.name for path in REAL.iterdir() if path.suffix in (".json", ".zip")}
    assert present == set(EXPECTED_STATS)


@pytest.mark.parametrize("name", sorted(EXPECTED_ROWS))
def test_real_export_rows(name: str) -> None:
    rows, _ = _rows(name)
    got = [(r["conversation_title"], r["role"], r["content_type"], r["text"]) for r in rows]
    assert len(got) == len(EXPECTED_ROWS[name])
    for (title, role, content_type, text), expected in zip(got, EXPECTED_ROWS[name], strict=True):
        assert (title, role, content_type) == expected[:3]
        assert text.startswith(expected[3]), (text[:80], expected[3])


@pytest.mark.parametrize("name", sorted(EXPECTED_STATS))
def test_real_export_stats(name: str) -> None:
    _, reader = _rows(name)
    summary = reader.stats.as_dict()
    for key, value in EXPECTED_STATS[name].items():
        assert summary[key] == value, key
    assert summary["backend"] == "yajl2_c"
    assert summary["bytes_read"] == summary["total_bytes"] == (REAL / name).stat().st_size


def test_positions_restart_per_conversation_and_times_are_utc() -> None:
    rows, _ = _rows("chatgpt-librechat-export.json")
    assert [r["position"] for r in rows] == [0, 1, 2, 3, 4, 5, 0, 1, 2, 3]
    first = rows[0]
    assert first["created_at"].tzinfo is not None
    assert first["created_at"].isoformat().startswith("2024-01-07T12:18:35")
    assert first["conversation_created_at"] <= first["created_at"]
    assert rows[1]["model_slug"] == "gpt-4" and rows[0]["model_slug"] is None


def test_claude_bulk_export_is_ordered_by_time_not_position() -> None:
    rows, _ = _rows("claude-simonw-artifacts.json")
    assert [r["role"] for r in rows] == ["user", "assistant"] * 10
    times = [r["created_at"] for r in rows]
    assert times == sorted(times)
    assert rows[0]["text"].startswith("Built me an artifact with no react")


def test_the_suite_needs_nothing_beside_the_repository() -> None:
    # a person who clones the project has only it: every fixture lives in the repository
    listed = set(re.findall(r"^\| (\S+\.(?:json|zip)) \|", (REAL / "SOURCES.md").read_text(), re.M))
    assert listed == set(EXPECTED_STATS)
    outside = "../" + "shared"  # spelled apart so this file does not match itself
    readers = [
        path.name
        for path in Path(__file__).parents[1].rglob("*.py")
        if outside in path.read_text() or "/work/" + "shared" in path.read_text()
    ]
    assert readers == []
