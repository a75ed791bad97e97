"""The reader against the seeded generator's ground truth, in every container form."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from soulprint_pipeline.export.containers import MiB, ReadLimits
from soulprint_pipeline.export.reader import ExportReader
from soulprint_pipeline.export.rows import CUSTOM_INSTRUCTIONS, MEMORY
from soulprint_pipeline.testing.synthetic import FORMATS, write_export
from soulprint_pipeline_tests.support.exports import chatgpt_conversation


@pytest.mark.parametrize("fmt", FORMATS)
def test_reader_matches_the_generators_truth(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"export.{fmt}"
    truth = write_export(str(path), fmt=fmt, target_bytes=3 * MiB, seed=7)
    reader = ExportReader(str(path), batch_rows=5_000)
    content_types: dict[str, int] = {}
    for batch in reader.batches():
        assert batch.num_rows <= 5_000
        for content_type in batch.column("content_type").to_pylist():
            content_types[content_type] = content_types.get(content_type, 0) + 1
    stats = reader.stats
    assert stats.conversations == truth.conversations
    assert stats.messages == truth.visible_messages
    assert (
        stats.custom_instructions == content_types[CUSTOM_INSTRUCTIONS] == truth.custom_instructions
    )
    assert stats.memories == content_types[MEMORY] == truth.memories
    assert stats.skipped["conversation:do_not_remember"] == truth.do_not_remember
    assert stats.skipped["conversation:no_mapping"] == truth.without_mapping
    assert stats.unknown_content_types == {}
    assert stats.bytes_read == stats.total_bytes == path.stat().st_size
    assert {"text", "multimodal_text", "code", "execution_output"} <= set(content_types)


def test_giant_conversation_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "giant.json"
    truth = write_export(
        str(path), fmt="json", target_bytes=24 * MiB, giant_conversation_bytes=20 * MiB, seed=3
    )
    reader = ExportReader(str(path))
    conversations = reader.conversations()
    first = next(conversations)
    assert all(type(m.text) is str for m in first.messages)
    assert sum(len(m.text) for m in first.messages) > 15 * MiB
    for _ in conversations:
        pass
    assert reader.stats.conversations == truth.conversations


def test_lean_reread_gives_the_same_rows_as_the_fast_path(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    write_export(str(path), fmt="json", target_bytes=2 * MiB, seed=11)
    fast = ExportReader(str(path))
    # a tiny bound sends the reader back to the start in lean mode after the first conversation
    lean = ExportReader(str(path), limits=ReadLimits(lean_after_bytes=4096))
    fast_rows = [row for batch in fast.batches() for row in batch.to_pylist()]
    lean_rows = [row for batch in lean.batches() for row in batch.to_pylist()]
    assert fast_rows == lean_rows and len(fast_rows) > 500
    assert fast.stats.as_dict() == lean.stats.as_dict()


def _rows(path: Path, **options: Any) -> list[dict[str, Any]]:
    return [
        row for batch in ExportReader(str(path), **options).batches() for row in batch.to_pylist()
    ]


def test_long_conversations_one_after_another_keep_every_text(tmp_path: Path) -> None:
    # Past its budget (here 20,000 characters) a lean conversation's texts wait in the spill
    # file; the parser reads ahead into the next conversation before the one before it is
    # batched, so the two must not share (or clear) each other's texts.
    turns = [
        ("user" if i % 2 == 0 else "assistant", f"T{i:03d} é" + "x" * (1 + (i * 7919) % 3000))
        for i in range(300)
    ]
    path = tmp_path / "export.json"
    path.write_text(json.dumps([chatgpt_conversation(k, turns) for k in range(3)]))
    fast = _rows(path, batch_text_chars=20_000)
    lean = _rows(path, batch_text_chars=20_000, limits=ReadLimits(lean_after_bytes=64))
    assert lean == fast
    assert [row["text"] for row in lean] == [text for _, text in turns] * 3


def test_lean_read_takes_the_nodes_in_any_order(tmp_path: Path) -> None:
    # the last node of a mapping is never compacted, so its text stays a str among UTF-8 bytes
    conversation = chatgpt_conversation(0, [("user", f"T{i:03d} " + "x" * 2000) for i in range(50)])
    conversation["mapping"]["c0-m0"] = conversation["mapping"].pop("c0-m0")
    path = tmp_path / "export.json"
    path.write_text(json.dumps([conversation]))
    lean = _rows(path, limits=ReadLimits(lean_after_bytes=64))
    assert lean == _rows(path)
    assert [row["text"][:4] for row in lean] == [f"T{i:03d}" for i in range(50)]
