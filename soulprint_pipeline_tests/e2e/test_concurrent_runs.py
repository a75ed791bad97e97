"""Two Dagster runs of one user at once, in two processes, on one instance and one lake.

The import command locks a user, and the run queue keeps one run per user, but a run launched
from the UI, a backfill or a re-execution is not kept apart from an import: two run workers
of the same user can write the lake at once. Each trial starts two processes that execute the
import job for the same user (``support/run_job.py``), one on export A and one on export B,
released together with a different small delay each trial. Counted per trial: *failed* (a run
failed; *lost* when with ``FileNotFoundError``: the other run deleted a version it was using)
and *mixed* (the current raw copy, rows and ``user_profiles`` row do not all come from one
export, or the row does not carry the lake's current soulprint, or is not ``complete``).

On main before the lake kept replaced versions and recorded each version's inputs (c134db9),
the same 5 trials (the run workers on that checkout) gave a failed run in 5 of 5: 4 on a
Parquet part the other run's commit had deleted (``FileNotFoundError``), 1 on the raw copy
(``StorageError``); none ended mixed. With the lake's protocol: 0 failed, 0 mixed.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from soulprint_pipeline.defs.partitions import PARTITION_TAG, users
from soulprint_pipeline.export.reader import ExportReader
from soulprint_pipeline.lake.store import Lake
from soulprint_pipeline.lake.verify import chain_problems
from soulprint_pipeline.mirror.agreement import disagreements
from soulprint_pipeline.mirror.registry import open_profile_store
from soulprint_pipeline.soulprint.field_evidence import sections_of
from soulprint_pipeline.testing.synthetic import write_export
from soulprint_pipeline_tests.support import run_job
from soulprint_pipeline_tests.support.cli import defaults_under, environment

pytestmark = pytest.mark.chaos

TRIALS = 5
_RUN_TIMEOUT = 600


def _instance(home: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(home))


def _rows_of(export: Path) -> int:
    reader = ExportReader(str(export))
    for _ in reader:
        pass
    return reader.stats.rows


def _run_pair(
    root: Path, user_id: str, exports: list[Path], delays: list[float], extra_env: dict[str, str]
) -> list[subprocess.CompletedProcess[str]]:
    """Both runs, released together (once both processes have loaded the code location)."""
    go = root / f"go-{user_id}"
    settings = {**defaults_under(root), **extra_env}
    processes = []
    for index, (export, delay) in enumerate(zip(exports, delays, strict=True)):
        ready = root / f"ready-{user_id}-{index}"
        command = [sys.executable, run_job.__file__, user_id, str(export), str(ready), str(go)]
        processes.append(
            (
                ready,
                subprocess.Popen(
                    [*command, f"{delay:.3f}"],
                    cwd=root,
                    env=environment(**settings),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                ),
            )
        )
    while not all(ready.exists() for ready, _ in processes):
        for _, process in processes:
            assert process.poll() is None, process.communicate()[1][-2000:]
        time.sleep(0.05)
    go.touch()
    results = []
    for _, process in processes:
        out, err = process.communicate(timeout=_RUN_TIMEOUT)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return results


def _failures(instance: dg.DagsterInstance, user_id: str) -> list[str]:
    """The error class of each failed step of the user's failed runs (``run`` if none)."""
    found = []
    runs = instance.get_runs(
        dg.RunsFilter(tags={PARTITION_TAG: user_id}, statuses=[dg.DagsterRunStatus.FAILURE])
    )
    for run in runs:
        errors = [
            record.dagster_event.step_failure_data.error
            for record in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
        ]
        classes = [_root_cause(error) for error in errors if error is not None]
        found.extend(classes or ["run"])
    return found


def _root_cause(error: Any) -> str:
    while error.cause is not None:
        error = error.cause
    return error.cls_name or "?"


def trial(root: Path, seed: int, extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """One trial of two runs of one user at once; what it left (see the module docstring)."""
    rng = random.Random(seed)
    user_id = f"u{seed}"
    uploads = root / "data" / "uploads" / user_id
    uploads.mkdir(parents=True, exist_ok=True)
    exports = [uploads / "export-a.json", uploads / "export-b.json"]
    for index, export in enumerate(exports):
        write_export(
            str(export), fmt="json", target_bytes=(1 + index) * 1024 * 1024, seed=seed * 2 + index
        )
    origin_by_rows = {_rows_of(export): name for export, name in zip(exports, "AB", strict=True)}
    assert len(origin_by_rows) == 2

    home = root / "home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with _instance(home) as instance:
        if not instance.has_dynamic_partition(users.name, user_id):
            instance.add_dynamic_partitions(users.name, [user_id])
    delays = [rng.random() * 0.5, rng.random() * 0.5]
    results = _run_pair(root, user_id, exports, delays, extra_env or {})
    with _instance(home) as instance:
        failures = _failures(instance, user_id)

    lake = Lake(str(root / "data" / "lake"))
    raw = lake.current("raw_export", user_id) or {}
    rows = lake.current("conversation_batches", user_id) or {}
    soulprint = lake.current("quick_pass_soulprint", user_id)
    origins = {
        "raw": {"export-a.json": "A", "export-b.json": "B"}.get(Path(raw.get("url", "")).name),
        "rows": origin_by_rows.get(rows.get("rows", -1)),
    }
    store = open_profile_store(f"sqlite:///{root / 'data' / 'user_profiles.sqlite3'}")
    try:
        row = store.get(user_id) or {}
    finally:
        store.close()
    origins["row"] = origin_by_rows.get(row.get("total_messages", -1))
    sections = sections_of(lake.read_json(soulprint["file"])) if soulprint else {}
    mixed = (
        None in origins.values()
        or len(set(origins.values())) != 1
        or bool(disagreements(row, sections))
        or row.get("import_status") != "complete"
    )
    return {
        "exit_codes": [result.returncode for result in results],
        "stderr": [result.stderr[-1500:] for result in results],
        "failures": failures,
        "lost": "FileNotFoundError" in failures,
        "mixed": mixed,
        "origins": origins,
        "status": row.get("import_status"),
        "chain_problems": chain_problems(lake, user_id) if soulprint else ["no soulprint"],
    }


def test_two_runs_of_one_user_in_two_processes_leave_one_uploads_chain(tmp_path: Path) -> None:
    outcomes: Counter[str] = Counter()
    for seed in range(TRIALS):
        result = trial(tmp_path, seed)
        stderr = result.pop("stderr")
        print(f"trial {seed}: {result}")
        assert result["exit_codes"] == [0, 0], (result["failures"], stderr)
        assert result["failures"] == []
        assert result["chain_problems"] == []
        assert not result["mixed"], result
        outcomes[result["origins"]["raw"]] += 1
    # the winner is the upload whose raw copy was versioned last: either, by the delays
    print(f"{TRIALS} trials of two runs of one user: current chain from {dict(outcomes)}")
