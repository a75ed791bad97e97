"""Chunks cut from real rows, the cap on them, and LanceDB's swap of one user's memory."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from soulprint_pipeline.errors import ConfigurationError, message_for_person
from soulprint_pipeline.export.rows import SCHEMA
from soulprint_pipeline.memory.build import MemorySettings, _record_batch, build_memory
from soulprint_pipeline.memory.chunking import ChunkSettings, chunk_rows, plan
from soulprint_pipeline.memory.embedders import OfflineEmbedder
from soulprint_pipeline.memory.store import chunk_schema, open_memory_store


def _rows(conversations: dict[str, list[tuple[str, str]]], year: dict[str, int]) -> pa.RecordBatch:
    records = []
    for conversation_id, turns in conversations.items():
        created = datetime(year.get(conversation_id, 2024), 1, 1, tzinfo=UTC)
        for position, (role, text) in enumerate(turns):
            records.append(
                {
                    "conversation_id": conversation_id,
                    "conversation_title": f"Title {conversation_id}",
                    "conversation_created_at": created,
                    "message_id": f"{conversation_id}-{position}",
                    "position": position,
                    "role": role,
                    "content_type": "text",
                    "text": text,
                    "created_at": created,
                    "model_slug": None,
                }
            )
    return pa.RecordBatch.from_pylist(records, schema=SCHEMA)


def _sentence(n: int) -> str:
    return f"Sentence number {n} talks about gardening, tomatoes and the weather. "


def test_chunks_are_whole_turns_of_one_conversation_with_overlap() -> None:
    turns = [("user" if i % 2 == 0 else "assistant", _sentence(i) * 6) for i in range(12)]
    batch = _rows({"a": turns, "b": [("user", "short one")]}, {})
    chunks = list(chunk_rows([batch], ChunkSettings(target_tokens=300, overlap_tokens=120)))
    of_a = [chunk for chunk in chunks if chunk.conversation_id == "a"]
    assert [chunk.chunk_index for chunk in of_a] == list(range(len(of_a))) and len(of_a) > 3
    assert all(chunk.text.startswith("Conversation: Title a\n") for chunk in of_a)
    for before, after in zip(of_a, of_a[1:], strict=False):
        last_turn = before.text.splitlines()[-1]
        assert last_turn in after.text  # the last whole turn is carried over
    assert all(chunk.tokens <= 300 + 120 for chunk in of_a)
    [of_b] = [chunk for chunk in chunks if chunk.conversation_id == "b"]
    assert of_b.text == "Conversation: Title b\nUser: short one"  # never mixed with "a"


def test_a_long_message_is_cut_into_windows_at_whitespace() -> None:
    long_text = " ".join(f"word{n}" for n in range(3000))
    batch = _rows({"a": [("user", long_text)]}, {})
    chunks = list(chunk_rows([batch], ChunkSettings(target_tokens=200, overlap_tokens=30)))
    assert len(chunks) > 5
    words = set()
    for chunk in chunks:
        body = chunk.text.split("\n", 1)[1]
        assert not body.startswith("word") or body.split()[0].startswith("word")
        words.update(w for w in body.replace("User:", "").split() if w.startswith("word"))
        assert chunk.tokens <= 200 + 30
    assert {f"word{n}" for n in range(3000)} <= words  # nothing lost between windows


def test_the_cap_keeps_the_newest_and_most_substantial_conversations() -> None:
    conversations = {
        "old-long": [("user", _sentence(1) * 40)],
        "new-long": [("user", _sentence(2) * 40)],
        "new-tiny": [("user", "ok")],
    }
    batch = _rows(conversations, {"old-long": 2019, "new-long": 2025, "new-tiny": 2025})
    found = plan([batch], ChunkSettings(max_tokens=1000))
    assert found.capped and found.kept == {"new-long", "new-tiny"}
    assert found.kept_tokens <= 1000 < found.tokens
    assert plan([batch], ChunkSettings()).kept is None  # no cap: everything


def _batch(user: str, ids: list[str], dimension: int = 8):
    from soulprint_pipeline.memory.chunking import Chunk

    chunks = [Chunk(i, "t", None, None, None, n, f"text {i}", 3) for n, i in enumerate(ids)]
    vectors = np.eye(dimension, dtype=np.float32)[: len(ids)]
    return _record_batch(user, chunks, vectors, chunk_schema(dimension))


def test_lance_swaps_a_users_memory_only_when_the_build_is_published(tmp_path: Path) -> None:
    store = open_memory_store(str(tmp_path / "memory"), 8)
    store.stage("ann", "k1", _batch("ann", ["a", "b"]))
    store.stage("bob", "k9", _batch("bob", ["z"]))
    assert store.count("ann") == 0 and store.search("ann", [1.0] + [0.0] * 7, 5) == []
    assert store.publish("ann", "k1") == 2 and store.publish("bob", "k9") == 1
    store.stage("ann", "k2", _batch("ann", ["c", "d", "e"]))
    # a new build is staged: readers still see the whole old memory, and nothing of the new
    assert {hit.conversation_id for hit in store.search("ann", [1.0] + [0.0] * 7, 5)} == {"a", "b"}
    assert store.staged_hashes("ann", "k2") and store.staged_hashes("ann", "k1")
    assert store.publish("ann", "k2") == 3
    [best, *_] = store.search("ann", [0.0, 1.0] + [0.0] * 6, 5)
    assert best.conversation_id == "d" and abs(best.score - 1.0) < 1e-6
    assert {hit.conversation_id for hit in store.search("ann", [1.0] + [0.0] * 7, 5)} == {
        "c",
        "d",
        "e",
    }
    assert store.count("bob") == 1  # another user's memory is untouched
    store.stage("ann", "k3", _batch("ann", ["f"]))
    assert store.discard_other_builds("ann", "k4") == 1  # k3's stale staging; k2 is live
    assert store.count("ann") == 3


def test_a_lance_table_of_another_dimension_is_a_setting_to_change(tmp_path: Path) -> None:
    """Not "our storage did not answer; we will retry": no retry would help."""
    open_memory_store(str(tmp_path / "memory"), 8)
    with pytest.raises(ConfigurationError, match="embeddings of 8 values.*of 16") as caught:
        open_memory_store(str(tmp_path / "memory"), 16)
    assert message_for_person(caught.value) == str(caught.value)
    assert "did not answer" not in message_for_person(caught.value)


def test_a_rebuild_of_the_live_build_embeds_nothing(tmp_path: Path) -> None:
    from soulprint_pipeline.lake.parquet_parts import PartWriter
    from soulprint_pipeline.lake.store import Lake, StoredParts

    with PartWriter(str(tmp_path / "parts")) as writer:
        writer.write_all(iter([_rows({"a": [("user", _sentence(1) * 30)]}, {})]))
    parts = StoredParts(Lake(str(tmp_path)), {"parts": writer.paths, "version": "v1"})
    store = open_memory_store(str(tmp_path / "memory"), 64)
    first = build_memory("ann", parts, OfflineEmbedder(64), store, MemorySettings())
    again = build_memory("ann", parts, OfflineEmbedder(64), store, MemorySettings())
    assert first.embedded == first.chunks > 0
    assert again.embedded == 0 and again.resumed == again.chunks == first.chunks
