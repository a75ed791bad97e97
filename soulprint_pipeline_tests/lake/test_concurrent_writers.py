"""Two writers of one user's partitions at once, on a local folder and on S3 (moto server).

Each writer follows the lake's protocol as the IO manager does (a raw copy, the rows parsed from
the version it copied, a soulprint from the rows it wrote; each staged with its inputs, the
chain made current at the end), with a random pause between steps so that the two interleave
differently in every trial. Counted per trial: *lost* (a writer failed, or a version the current
chain needs is gone), *mixed* (the current versions are not one upload's chain: raw from one
export, rows or soulprint from the other) and *duplicated* (one writer's soulprint current under
the other's rows). Before versions recorded their inputs and before a replaced version was kept
for ``SOULPRINT_LAKE_KEEP_SECONDS``, a commit deleted every other version folder: the other
writer failed on a vanished Parquet part, and the lake could end mixed.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from soulprint_pipeline.export.reader import ExportReader
from soulprint_pipeline.export.rows import DICTIONARY_COLUMNS
from soulprint_pipeline.lake.store import Lake, StoredParts
from soulprint_pipeline.lake.verify import chain_problems
from soulprint_pipeline_tests.support.exports import chatgpt_export_bytes
from soulprint_pipeline_tests.support.s3 import S3_BUCKET

pytestmark = pytest.mark.chaos

TRIALS = 10
USER = "u1"


def _write_chain(lake: Lake, export: str, start: threading.Barrier, pause: Callable[[], None]):
    """One import's writes: copy, parse, 'soulprint' (the rows counted and the export's hash)."""
    start.wait()
    raw_version = lake.new_version("raw_export", USER)
    copied = lake.copy_in(
        raw_version, export, storage_options=lake.storage_options, file_name="export.json"
    )
    raw = lake.stage(raw_version, {"kind": "export", **copied})
    pause()
    rows_version = lake.new_version("conversation_batches", USER)
    reader = ExportReader(raw["url"], storage_options=lake.storage_options or None)
    parts = lake.write_parts(rows_version, iter(reader), dictionary_columns=DICTIONARY_COLUMNS)
    rows = lake.stage(
        rows_version,
        {
            "kind": "parquet",
            "parts": parts.paths,
            "rows": reader.stats.rows,
            "source_sha256": raw["sha256"],
        },
        {"raw_export": raw},
    )
    pause()
    counted = sum(batch.num_rows for batch in StoredParts(lake, rows).batches(["position"]))
    soulprint_version = lake.new_version("quick_pass_soulprint", USER)
    sections = {"rows": counted, "export_sha256": raw["sha256"]}
    soulprint = lake.stage(
        soulprint_version,
        {"kind": "json", "file": lake.write_json(soulprint_version, "soulprint.json", sections)},
        {"conversation_batches": rows},
    )
    lake.promote_chain(soulprint)


def _trial(lake: Lake, exports: list[str], seed: int) -> str:
    """Two writers at once; the outcome: ``ok``, ``lost``, ``mixed`` or ``duplicated``."""
    start = threading.Barrier(len(exports))
    errors: list[BaseException] = []

    def write(export: str, rng: random.Random) -> None:
        try:
            _write_chain(lake, export, start, lambda: threading.Event().wait(rng.random() / 20))
        except BaseException as error:  # noqa: BLE001 - counted, then reported by the test
            errors.append(error)

    threads = [
        threading.Thread(target=write, args=(export, random.Random(seed * 10 + index)))
        for index, export in enumerate(exports)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    problems = chain_problems(lake, USER)
    for error in errors:
        print(f"trial {seed}: a writer failed: {type(error).__name__}: {error}")
    if problems:
        print(f"trial {seed}: {problems}")
    if errors or any("gone" in problem for problem in problems):
        return "lost"
    if problems:
        return "mixed"
    current = lake.current("quick_pass_soulprint", USER)
    assert current is not None
    sections = lake.read_json(current["file"])
    raw = lake.current("raw_export", USER)
    rows = lake.current("conversation_batches", USER)
    assert raw is not None and rows is not None
    if sections != {"rows": rows["rows"], "export_sha256": raw["sha256"]}:
        return "duplicated"
    return "ok"


def _run_trials(make_lake: Callable[[int], Lake], exports: list[str]) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    for trial in range(TRIALS):
        lake = make_lake(trial)
        outcomes[_trial(lake, exports, seed=trial)] += 1
        # every version of both writers is kept (the grace period), the current one complete
        assert lake.sweep().versions == 0
    print(f"{TRIALS} trials of two writers of one user: {dict(outcomes)}")
    return outcomes


def _exports(folder: Path) -> list[Path]:
    paths = []
    for index, conversations in enumerate((60, 90)):
        path = folder / f"export-{index}.json"
        path.write_bytes(chatgpt_export_bytes(conversations))
        paths.append(path)
    return paths


def test_two_writers_on_a_local_folder(tmp_path: Path) -> None:
    exports = [str(path) for path in _exports(tmp_path)]
    outcomes = _run_trials(lambda trial: Lake(str(tmp_path / f"lake-{trial}")), exports)
    assert outcomes == Counter(ok=TRIALS)


def test_two_writers_on_s3(tmp_path: Path, s3: Any, s3_server: dict[str, Any]) -> None:
    exports = []
    for path in _exports(tmp_path):
        s3.put(str(path), f"{S3_BUCKET}/uploads/{path.name}")
        exports.append(f"s3://{S3_BUCKET}/uploads/{path.name}")

    def make_lake(trial: int) -> Lake:
        return Lake(f"s3://{S3_BUCKET}/lake-{trial}", s3_server)

    assert _run_trials(make_lake, exports) == Counter(ok=TRIALS)


def test_a_sweep_removes_only_expired_versions_that_are_not_current(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    export = _exports(tmp_path)[0]
    raw = None
    for _ in range(3):
        version = lake.new_version("raw_export", USER)
        raw = lake.commit(version, {"kind": "export", **lake.copy_in(version, str(export))})
    assert raw is not None
    partition = tmp_path / "lake/raw_export" / USER

    def versions() -> list[str]:
        return sorted(path.name for path in partition.iterdir() if path.name != "current")

    assert len(versions()) == 3
    assert lake.sweep().versions == 0  # within the keeping time: a writer may still read them
    assert Lake(str(tmp_path / "lake"), keep_seconds=0).sweep().versions == 2
    assert versions() == [raw["version"]]
    assert lake.current("raw_export", USER) == raw
    # one pointer left: the older uploads' were removed as the newer ones were promoted
    assert [path.name for path in (partition / "current").iterdir()] == [f"{raw['upload']}.json"]
