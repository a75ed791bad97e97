"""Which messages of a conversation tree become rows: the branch the person saw, with its ids.

Run through the installed console script on real files, as a person would parse an export.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from soulprint_pipeline_tests.support.cli import CONSOLE_SCRIPT
from soulprint_pipeline_tests.support.exports import chatgpt_conversation

ROOT_PARENT = "00000000-0000-4000-8000-000000000000"


def _parsed_rows(tmp_path: Path, export: Any) -> list[dict[str, Any]]:
    (path := tmp_path / "conversations.json").write_text(json.dumps(export))
    result = subprocess.run(
        [str(CONSOLE_SCRIPT), "parse", str(path), "--out", str(tmp_path / "parts")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return pq.read_table(tmp_path / "parts").to_pylist()


def test_a_message_without_an_id_takes_its_node_key(tmp_path: Path) -> None:
    conversation = chatgpt_conversation(1, [("user", "hello"), ("assistant", "hi"), ("user", "x")])
    for node_id, node in conversation["mapping"].items():
        if node["message"] is not None:
            del node["message"]["id"]  # the node key is the only id, as some exports write it
            if node_id.endswith("m2"):
                node["message"]["id"] = {"not": "an id"}
                del node["id"]
    rows = _parsed_rows(tmp_path, [conversation])
    assert [row["message_id"] for row in rows] == ["c1-m0", "c1-m1", "c1-m2"]


def _claude_message(uuid: str, parent: str, sender: str, text: str, minute: int) -> dict:
    return {
        "uuid": uuid,
        "parent_message_uuid": parent,
        "sender": sender,
        "text": "",
        "content": [{"type": "text", "text": text}],
        "created_at": f"2025-03-01T10:{minute:02d}:00Z",
    }


def _claude_conversation(messages: list[dict], **fields: Any) -> dict:
    return {
        "uuid": "conv-1",
        "name": "Retries",
        "created_at": "2025-03-01T10:00:00Z",
        "chat_messages": messages,
        **fields,
    }


def test_a_claude_retry_without_a_current_leaf_gives_the_newest_branch_only(
    tmp_path: Path,
) -> None:
    # "question" was answered twice (a retry); the retry was followed up. File order is not time
    # order, and the conversation names no current leaf.
    messages = [
        _claude_message("q", ROOT_PARENT, "human", "question", 0),
        _claude_message("a2", "q", "assistant", "second answer", 5),
        _claude_message("a1", "q", "assistant", "first answer", 1),
        _claude_message("f1", "a1", "human", "thanks, first", 2),
        _claude_message("f2", "a2", "human", "thanks, second", 6),
        _claude_message("r2", "f2", "assistant", "you are welcome", 7),
    ]
    rows = _parsed_rows(tmp_path, [_claude_conversation(messages)])
    assert [row["text"] for row in rows] == [
        "question",
        "second answer",
        "thanks, second",
        "you are welcome",
    ]
    assert [row["message_id"] for row in rows] == ["q", "a2", "f2", "r2"]


def test_a_claude_edit_at_the_end_picks_the_newer_leaf(tmp_path: Path) -> None:
    messages = [
        _claude_message("q", ROOT_PARENT, "human", "question", 0),
        _claude_message("a1", "q", "assistant", "first answer", 1),
        _claude_message("a2", "q", "assistant", "second answer", 3),
    ]
    rows = _parsed_rows(tmp_path, [_claude_conversation(messages)])
    assert [row["text"] for row in rows] == ["question", "second answer"]


def test_a_named_current_leaf_still_wins_over_the_newest(tmp_path: Path) -> None:
    messages = [
        _claude_message("q", ROOT_PARENT, "human", "question", 0),
        _claude_message("a1", "q", "assistant", "first answer", 1),
        _claude_message("a2", "q", "assistant", "second answer", 3),
    ]
    conversation = _claude_conversation(messages, current_leaf_message_uuid="a1")
    rows = _parsed_rows(tmp_path, [conversation])
    assert [row["text"] for row in rows] == ["question", "first answer"]


def test_an_unlinked_claude_export_is_still_ordered_by_time(tmp_path: Path) -> None:
    messages = [
        {k: v for k, v in _claude_message(u, "", s, t, m).items() if k != "parent_message_uuid"}
        for u, s, t, m in [("b", "assistant", "answer", 2), ("a", "human", "question", 1)]
    ]
    rows = _parsed_rows(tmp_path, [_claude_conversation(messages)])
    assert [row["text"] for row in rows] == ["question", "answer"]
