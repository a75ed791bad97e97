"""A sharded export parsed in several processes: the rows, counts, progress and errors of a
sequential read, from files, from S3 and through the asset graph."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest

from soulprint_pipeline.defs.io_manager import LakeIOManager
from soulprint_pipeline.defs.jobs import import_user
from soulprint_pipeline.defs.resources import S3Settings
from soulprint_pipeline.errors import (
    EmptyExportError,
    ExportError,
    InvalidJSONError,
    StructureLimitError,
)
from soulprint_pipeline.export import parallel
from soulprint_pipeline.export.containers import ReadLimits
from soulprint_pipeline.export.reader import ExportReader, ReadSettings, ReadStats
from soulprint_pipeline.export.rows import SCHEMA
from soulprint_pipeline.testing.synthetic import write_export
from soulprint_pipeline_tests.support.env import ASSETS, Env
from soulprint_pipeline_tests.support.exports import chatgpt_export_bytes, zip_bytes
from soulprint_pipeline_tests.support.s3 import S3_BUCKET


def _sharded(shards: list[bytes]) -> bytes:
    return zip_bytes({f"export/conversations-{i:03d}.json": s for i, s in enumerate(shards)})


def _read(
    url: str, workers: int, **storage_options: Any
) -> tuple[pa.Table, ReadStats, list[tuple[int, int]]]:
    seen: list[tuple[int, int]] = []
    reader = ExportReader(
        url,
        workers=workers,
        storage_options=storage_options or None,
        on_progress=lambda done, total: seen.append((done, total)),
    )
    table = pa.Table.from_batches(list(reader.batches()), schema=SCHEMA)
    return table, reader.stats, seen


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sharded") / "export.zip"
    write_export(str(path), fmt="zip-sharded", target_bytes=6_000_000, seed=11, shards=4)
    return path


def test_workers_give_the_rows_counts_and_progress_of_a_sequential_read(sharded: Path) -> None:
    sequential, one, _ = _read(str(sharded), workers=1)
    side_by_side, two, progress = _read(str(sharded), workers=2)
    assert sequential.num_rows > 1000
    assert side_by_side.equals(sequential)  # the same rows in the same order
    one_counts, two_counts = one.as_dict(), two.as_dict()
    # batches are also cut where a document ends, so there may be a few more of them
    assert two_counts.pop("batches") >= one_counts.pop("batches")
    assert two_counts == one_counts
    assert two.documents == [f"conversations-{i:03d}.json" for i in range(4)]
    done = [d for d, _ in progress]
    assert done == sorted(done)
    assert progress[-1] == (sharded.stat().st_size, sharded.stat().st_size)


def test_a_workers_progress_is_its_own_documents_share(sharded: Path) -> None:
    # each worker reports the stored bytes of its document, not the whole export's size, so
    # the parent's sum grows with the parse instead of jumping to the end
    seen: list[tuple[int, int]] = []
    member = "conversations-001.json"
    reader = ExportReader.of_document(
        ReadSettings(str(sharded)), member, on_progress=lambda d, t: seen.append((d, t))
    )
    for _ in reader.batches():
        pass
    with zipfile.ZipFile(sharded) as archive:
        stored = archive.getinfo(member).compress_size
    done, total = seen[-1]
    assert total == sharded.stat().st_size
    assert stored <= done < stored + 64 * 1024 < total
    assert reader.stats.documents == [f"conversations-{i:03d}.json" for i in range(4)]


def test_a_damaged_shard_fails_as_in_a_sequential_read(tmp_path: Path) -> None:
    damaged = chatgpt_export_bytes(40)
    path = tmp_path / "export.zip"
    path.write_bytes(_sharded([chatgpt_export_bytes(40), damaged[:-300] + b"}}", damaged]))
    with pytest.raises(ExportError) as sequential:
        list(ExportReader(str(path)).batches())
    with pytest.raises(ExportError) as side_by_side:
        list(ExportReader(str(path), workers=2).batches())
    assert isinstance(side_by_side.value, InvalidJSONError)
    assert type(side_by_side.value) is type(sequential.value)
    assert str(side_by_side.value) == str(sequential.value)
    assert "conversations-001.json" in str(side_by_side.value)


def test_an_empty_shard_is_fine_but_only_empty_shards_are_an_empty_export(tmp_path: Path) -> None:
    some = tmp_path / "some.zip"
    some.write_bytes(_sharded([b"[]", chatgpt_export_bytes(5), b"[]"]))
    table, stats, _ = _read(str(some), workers=2)
    assert stats.conversations == 5 and table.num_rows == stats.rows > 0
    none = tmp_path / "none.zip"
    none.write_bytes(_sharded([b"[]", b"[]"]))
    with pytest.raises(EmptyExportError):
        list(ExportReader(str(none), workers=2).batches())


def test_workers_read_a_sharded_export_from_s3(
    s3: Any, s3_server: dict[str, Any], sharded: Path
) -> None:
    url = f"s3://{S3_BUCKET}/user-1/export.zip"
    s3.put(str(sharded), url)
    table, stats, _ = _read(url, workers=2, **s3_server)
    assert table.equals(_read(str(sharded), workers=1)[0])
    assert stats.bytes_read == stats.total_bytes == sharded.stat().st_size


def test_parse_workers_in_the_import_job(
    env: Env,  # noqa: F811
    sharded: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[list[str]] = []
    parallel_batches = parallel.parallel_batches

    def counted(reader: ExportReader, documents: list[str], parse: Any) -> Any:
        calls.append(documents)
        return parallel_batches(reader, documents, parse)

    monkeypatch.setattr(parallel, "parallel_batches", counted)
    env.resources["lake"] = LakeIOManager(url=str(env.lake), s3=S3Settings(), parse_workers=2)
    env.defs = dg.Definitions(assets=ASSETS, jobs=[import_user], resources=env.resources)
    result = env.run_import("erin", env.upload("erin", "export.zip", sharded.read_bytes()))
    assert result.success
    assert len(calls) == 1 and len(calls[0]) == 4  # the four documents, in worker processes
    expected = _read(str(sharded), workers=1)[1]
    assert env.row("erin")["total_messages"] == expected.rows
    parsed = result.asset_materializations_for_node("conversation_batches")[0]
    assert parsed.metadata["conversations"].value == expected.conversations


def test_every_reader_setting_reaches_the_workers(sharded: Path) -> None:
    # the workers read with the reader's own settings: its batch bound and its limits
    reader = ExportReader(str(sharded), workers=2, batch_rows=7)
    sizes = [batch.num_rows for batch in reader.batches()]
    assert max(sizes) <= 7 and sum(sizes) == reader.stats.rows > 7
    strict = ExportReader(str(sharded), workers=2, limits=ReadLimits(max_depth=3))
    with pytest.raises(StructureLimitError, match="deeper than 3 levels"):
        for _ in strict.batches():
            pass
