"""The stored rows checked against rows.SCHEMA and the reader's counts."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from soulprint_pipeline.export.reader import ExportReader
from soulprint_pipeline.export.rows import DICTIONARY_COLUMNS, SCHEMA
from soulprint_pipeline.lake.store import Lake, StoredParts
from soulprint_pipeline.lake.verify import inspect_parts, schema_problems
from soulprint_pipeline_tests.support.exports import chatgpt_export_bytes


def _stored(tmp_path: Path, batches: list[pa.RecordBatch]) -> StoredParts:
    lake = Lake(str(tmp_path / "lake"))
    version = lake.new_version("conversation_batches", "ivy")
    parts = lake.write_parts(version, iter(batches), dictionary_columns=DICTIONARY_COLUMNS)
    return StoredParts(lake, {"parts": parts.paths})


def test_rows_as_the_reader_writes_them_match(tmp_path: Path) -> None:
    path = tmp_path / "conversations.json"
    path.write_bytes(chatgpt_export_bytes(7))
    reader = ExportReader(str(path))
    report = inspect_parts(_stored(tmp_path, list(reader.batches())))
    assert report.problems == []
    assert report.rows == reader.stats.rows == 14
    assert report.conversations == reader.stats.conversations_with_messages == 7


def test_a_part_of_another_shape_is_named_without_its_values(tmp_path: Path) -> None:
    path = tmp_path / "conversations.json"
    path.write_bytes(chatgpt_export_bytes(3))
    good = next(ExportReader(str(path)).batches())
    bad = good.set_column(
        SCHEMA.get_field_index("position"),
        pa.field("position", pa.string()),
        pa.array(["0"] * good.num_rows),
    ).drop_columns(["model_slug"])
    lake = Lake(str(tmp_path / "lake"))
    version = lake.new_version("conversation_batches", "ivy")
    first = lake.write_parts(version, iter([good]))
    second = lake.write_parts(lake.new_version("conversation_batches", "ivy"), iter([bad]))
    report = inspect_parts(StoredParts(lake, {"parts": first.paths + second.paths}))
    assert report.problems == ["part 1: missing columns ['model_slug'], unexpected columns []"]
    assert "question" not in " ".join(report.problems)


def test_schema_problems_name_the_column_and_types() -> None:
    changed = SCHEMA.set(SCHEMA.get_field_index("text"), pa.field("text", pa.int64()))
    assert schema_problems(changed) == ["text is int64, expected string"]
    dictionary = SCHEMA.set(0, pa.field("conversation_id", pa.dictionary(pa.int32(), pa.string())))
    assert schema_problems(dictionary) == []
