"""One export, every container and URL scheme: the same rows come out."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pytest

from soulprint_pipeline.export.reader import ExportReader
from soulprint_pipeline_tests.support.exports import (
    chatgpt_conversation,
    chatgpt_export_bytes,
    zip_bytes,
)
from soulprint_pipeline_tests.support.s3 import S3_BUCKET


def _rows(url: str, **options: Any) -> list[tuple]:
    reader = ExportReader(url, storage_options=options or None)
    return [
        (r["conversation_id"], r["position"], r["role"], r["text"])
        for batch in reader.batches()
        for r in batch.to_pylist()
    ]


EXPORT = chatgpt_export_bytes(6)
EXPECTED = _rows  # computed per test from the bare JSON


@pytest.fixture(scope="module")
def expected(tmp_path_factory: pytest.TempPathFactory) -> list[tuple]:
    path = tmp_path_factory.mktemp("bare") / "conversations.json"
    path.write_bytes(EXPORT)
    rows = _rows(str(path))
    assert len(rows) == 12 and rows[0] == ("conv-0", 0, "user", "question 0 ✨")
    return rows


CONTAINERS = {
    # The file names lie on purpose: detection is by content, never by name.
    "export.zip": lambda: json.dumps({"conversations": json.loads(EXPORT)}).encode(),
    "wrapped.json": lambda: json.dumps({"conversations": json.loads(EXPORT)}).encode(),
    "bom.json": lambda: b"\xef\xbb\xbf" + EXPORT,
    "conversations.json.gz": lambda: gzip.compress(EXPORT),
    "upload.bin": lambda: gzip.compress(EXPORT),
    "export.json": lambda: zip_bytes({"conversations.json": EXPORT, "chat.html": b"<html/>"}),
    "folder.zip": lambda: zip_bytes({"export-2026-11/conversations.json": EXPORT}),
}


@pytest.mark.parametrize("name", sorted(CONTAINERS))
def test_every_container_gives_the_same_rows(
    tmp_path: Path, expected: list[tuple], name: str
) -> None:
    path = tmp_path / name
    path.write_bytes(CONTAINERS[name]())
    assert _rows(str(path)) == expected


def test_sharded_zip_members_are_read_in_numeric_order(
    tmp_path: Path, expected: list[tuple]
) -> None:
    conversations = json.loads(EXPORT)
    shards = {
        # written out of order, and 10 sorts before 2 as text
        "conversations-010.json": json.dumps(conversations[4:]).encode(),
        "conversations-000.json": json.dumps(conversations[:2]).encode(),
        "conversations-002.json": json.dumps(conversations[2:4]).encode(),
        "user.json": b"{}",
    }
    path = tmp_path / "sharded.zip"
    path.write_bytes(zip_bytes(shards))
    reader = ExportReader(str(path))
    rows = [
        (r["conversation_id"], r["position"], r["role"], r["text"])
        for batch in reader.batches()
        for r in batch.to_pylist()
    ]
    assert rows == expected
    assert reader.stats.documents == [
        "conversations-000.json",
        "conversations-002.json",
        "conversations-010.json",
    ]


def test_file_and_memory_urls(tmp_path: Path, expected: list[tuple]) -> None:
    path = tmp_path / "conversations.json"
    path.write_bytes(EXPORT)
    assert _rows(f"file://{path}") == expected
    with fsspec.open("memory://uploads/user-1/export.zip", "wb") as handle:
        handle.write(zip_bytes({"conversations.json": EXPORT}))
    assert _rows("memory://uploads/user-1/export.zip") == expected


def test_s3_zip_is_read_through_s3fs(
    s3: Any, s3_server: dict[str, Any], expected: list[tuple]
) -> None:
    url = f"s3://{S3_BUCKET}/user-1/export.zip"
    with s3.open(url, "wb") as handle:
        handle.write(zip_bytes({"conversations.json": EXPORT}))
    assert _rows(url, **s3_server) == expected


def test_single_conversation_object(tmp_path: Path) -> None:
    conversation = chatgpt_conversation(7, [("user", "hi"), ("assistant", "hello")])
    (path := tmp_path / "one.json").write_text(json.dumps(conversation))
    assert _rows(str(path)) == [("conv-7", 0, "user", "hi"), ("conv-7", 1, "assistant", "hello")]


def test_progress_is_monotone_and_ends_at_the_stored_size(tmp_path: Path) -> None:
    path = tmp_path / "export.json.gz"
    path.write_bytes(gzip.compress(chatgpt_export_bytes(3000)))
    seen: list[tuple[int, int]] = []
    reader = ExportReader(str(path), on_progress=lambda done, total: seen.append((done, total)))
    for _ in reader.batches():
        pass
    done = [d for d, _ in seen]
    assert done == sorted(done)
    assert len(set(done)) > 2  # it advanced during the parse, not only at the end
    assert seen[-1] == (path.stat().st_size, path.stat().st_size)


def test_batches_are_bounded_by_rows_and_by_text(tmp_path: Path) -> None:
    path = tmp_path / "conversations.json"
    path.write_bytes(chatgpt_export_bytes(500))
    by_rows = list(ExportReader(str(path), batch_rows=64).batches())
    assert [b.num_rows for b in by_rows] == [64] * 15 + [40]
    by_text = list(ExportReader(str(path), batch_text_chars=1000).batches())
    assert len(by_text) > 10
    assert all(sum(len(t) for t in b.column("text").to_pylist()) < 1000 + 20 for b in by_text)


def test_where_batches_are_cut_never_changes_the_rows(tmp_path: Path) -> None:
    path = tmp_path / "conversations.json"
    path.write_bytes(chatgpt_export_bytes(200))
    whole = pa.Table.from_batches(list(ExportReader(str(path)).batches()))
    for cut in ({"batch_rows": 7}, {"batch_text_chars": 300}):
        pieces = list(ExportReader(str(path), **cut).batches())
        assert len(pieces) > 10
        assert pa.Table.from_batches(pieces).equals(whole)
    positions: dict[str, list[int]] = {}
    for row in whole.select(["conversation_id", "position"]).to_pylist():
        positions.setdefault(row["conversation_id"], []).append(row["position"])
    assert all(p == list(range(len(p))) for p in positions.values())


@pytest.mark.parametrize(
    "name, data",
    [
        ("bare.json", lambda: EXPORT),
        ("gzipped.gz", lambda: gzip.compress(EXPORT)),
        ("zipped.zip", lambda: zip_bytes({"a/conversations.json": EXPORT})),
    ],
)
def test_json_bytes_are_the_decompressed_json(tmp_path: Path, name: str, data: Any) -> None:
    path = tmp_path / name
    path.write_bytes(data())
    reader = ExportReader(str(path))
    for _ in reader.batches():
        pass
    # the parser's input whatever the container; stored bytes are the file's size
    assert reader.stats.json_bytes == len(EXPORT)
    assert reader.stats.total_bytes == path.stat().st_size


def test_json_bytes_count_every_shard_once_in_workers(tmp_path: Path) -> None:
    conversations = json.loads(EXPORT)
    shards = {
        f"conversations-{i:03d}.json": json.dumps(conversations[i::2]).encode() for i in range(2)
    }
    path = tmp_path / "sharded.zip"
    path.write_bytes(zip_bytes(shards))
    for workers in (1, 2):
        reader = ExportReader(str(path), workers=workers)
        for _ in reader.batches():
            pass
        assert reader.stats.json_bytes == sum(map(len, shards.values())), workers
