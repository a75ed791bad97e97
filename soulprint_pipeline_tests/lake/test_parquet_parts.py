"""Parquet parts: bounded, in order, nothing partial after a failure."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from soulprint_pipeline.lake.parquet_parts import PartWriter
from soulprint_pipeline.lake.store import Lake, StoredParts


def _batch(start: int) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({"n": list(range(start, start + 10))})


def test_parts_hold_a_bounded_number_of_batches_in_order(tmp_path: Path) -> None:
    with PartWriter(str(tmp_path / "parts"), batches_per_part=4) as writer:
        writer.write_all(_batch(10 * i) for i in range(10))
    assert [Path(p).name for p in writer.paths] == [
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.parquet",
    ]
    assert [pq.ParquetFile(p).metadata.num_row_groups for p in writer.paths] == [4, 4, 2]
    rows = pq.read_table(tmp_path / "parts").column("n").to_pylist()
    assert rows == list(range(100))
    assert writer.bytes_written == sum(Path(p).stat().st_size for p in writer.paths)


def test_a_failed_producer_leaves_no_partial_part(tmp_path: Path) -> None:
    def failing():
        yield _batch(0)
        raise RuntimeError("the parse failed")

    with pytest.raises(RuntimeError), PartWriter(str(tmp_path / "parts")) as writer:
        writer.write_all(failing())
    assert list((tmp_path / "parts").iterdir()) == []


def test_stored_parts_are_read_a_row_group_at_a_time(tmp_path: Path) -> None:
    with PartWriter(str(tmp_path / "parts"), batches_per_part=4) as writer:
        writer.write_all(_batch(10 * i) for i in range(10))
    parts = StoredParts(Lake(str(tmp_path)), {"parts": writer.paths})
    batches = list(parts.batches())
    assert [b.num_rows for b in batches] == [10] * 10  # never a whole part at once
    assert pa.Table.from_batches(batches).column("n").to_pylist() == list(range(100))
