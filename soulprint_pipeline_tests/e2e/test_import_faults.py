"""The import command under faults: a second import of the same user at once is refused (so is
an import of a user whom a batch run of new users holds), and an import killed with ``kill -9``
leaves no run "in progress" forever: the next import fails it and imports the user again."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import dagster as dg
import pytest

from soulprint_pipeline.defs.partitions import BATCH_TAG, IMPORT_BATCH_VALUE, UPLOADS_TAG
from soulprint_pipeline.testing.synthetic import write_export
from soulprint_pipeline_tests.support.cli import (
    CONSOLE_SCRIPT,
    defaults_under,
    environment,
    run_cli,
)

pytestmark = pytest.mark.chaos


def _start_import(tmp_path: Path, export: Path) -> subprocess.Popen:
    command = [str(CONSOLE_SCRIPT), "import", str(export), "--user", "u1"]
    return subprocess.Popen(
        command,
        cwd=tmp_path,
        env=environment(**defaults_under(tmp_path)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_until_running(tmp_path: Path, process: subprocess.Popen) -> None:
    """Until the import holds the user (its lock file exists: its instance is set up by
    then) and its run has started."""
    lock = tmp_path / "home" / "locks" / "import-u1.lock"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, "the import ended before the test could catch it"
        if lock.exists() and _runs(tmp_path, dg.DagsterRunStatus.STARTED):
            return
        time.sleep(0.1)
    raise AssertionError("the import never started its run")


def _runs(tmp_path: Path, status: dg.DagsterRunStatus) -> list[dg.DagsterRun]:
    if not (tmp_path / "home" / "dagster.yaml").exists():
        return []
    with dg.DagsterInstance.from_config(str(tmp_path / "home")) as instance:
        return list(instance.get_runs(dg.RunsFilter(statuses=[status])))


def _row(tmp_path: Path) -> tuple[str, str]:
    with sqlite3.connect(tmp_path / "data" / "user_profiles.sqlite3") as database:
        return database.execute(
            "SELECT import_status, import_stage FROM user_profiles WHERE user_id = 'u1'"
        ).fetchone()


def _import_of_u1_refused(
    tmp_path: Path, export: Path, why: str
) -> subprocess.CompletedProcess[str]:
    """An import of u1 on ``export``, refused with one line: already running, ``why``."""
    refused = run_cli(
        "import", str(export), "--user", "u1", cwd=tmp_path, env=defaults_under(tmp_path)
    )
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        f"soulprint-pipeline: An import of u1 is already running {why}; wait for it."
    )
    return refused


def test_a_second_import_of_the_same_user_is_refused_while_the_first_runs(
    tmp_path: Path,
) -> None:
    export = tmp_path / "export.json"
    write_export(str(export), fmt="json", target_bytes=20 * 1024 * 1024, seed=5)
    first = _start_import(tmp_path, export)
    _wait_until_running(tmp_path, first)
    _import_of_u1_refused(tmp_path, export, "(another import command)")
    assert first.wait(timeout=300) == 0
    assert _row(tmp_path)[0] == "complete"


def test_an_import_is_refused_while_a_batch_run_of_new_users_holds_the_user(
    tmp_path: Path,
) -> None:
    """A batch run carries no partition tag; the user is found in its uploads, and left to it."""
    export = tmp_path / "export.json"
    write_export(str(export), fmt="json", target_bytes=64 * 1024, seed=9)
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    uploads = {user: [f"file://{export}", f"etag-{user}"] for user in ("u0", "u1", "u2")}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        batch = instance.add_run(
            dg.DagsterRun(
                job_name="import_user",
                run_id="0" * 8 + "-batch-run",
                status=dg.DagsterRunStatus.NOT_STARTED,
                tags={BATCH_TAG: IMPORT_BATCH_VALUE, UPLOADS_TAG: json.dumps(uploads)},
            )
        )
    refused = _import_of_u1_refused(
        tmp_path, export, "in Dagster (a batch run of new users' imports)"
    )
    assert "Traceback" not in refused.stdout + refused.stderr
    assert _runs(tmp_path, dg.DagsterRunStatus.NOT_STARTED) == [batch]  # left to the daemon

    other = run_cli(
        "import", str(export), "--user", "u9", cwd=tmp_path, env=defaults_under(tmp_path)
    )
    assert other.returncode == 0, other.stderr[-2000:]


def test_an_import_killed_mid_run_is_failed_and_imported_again_by_the_next(
    tmp_path: Path,
) -> None:
    export = tmp_path / "export.json"
    write_export(str(export), fmt="json", target_bytes=20 * 1024 * 1024, seed=6)
    killed = _start_import(tmp_path, export)
    _wait_until_running(tmp_path, killed)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    [dead] = _runs(tmp_path, dg.DagsterRunStatus.STARTED)  # nothing else will ever end it
    assert _row(tmp_path)[0] == "processing"

    settings = defaults_under(tmp_path)
    again = run_cli("import", str(export), "--user", "u1", cwd=tmp_path, env=settings)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"run {dead.run_id} of u1 had died with its process: marked failed" in again.stdout
    assert [run.run_id for run in _runs(tmp_path, dg.DagsterRunStatus.FAILURE)] == [dead.run_id]
    assert _runs(tmp_path, dg.DagsterRunStatus.STARTED) == []
    assert _row(tmp_path) == ("complete", "Complete")


def test_a_killed_re_import_of_a_complete_user_leaves_them_complete_with_their_soulprint(
    tmp_path: Path,
) -> None:
    from soulprint_pipeline.lake.store import Lake
    from soulprint_pipeline.lake.verify import chain_problems

    first = tmp_path / "first.json"
    write_export(str(first), fmt="json", target_bytes=2 * 1024 * 1024, seed=7)
    settings = defaults_under(tmp_path)
    done = run_cli("import", str(first), "--user", "u1", cwd=tmp_path, env=settings)
    assert done.returncode == 0, done.stderr[-2000:]
    lake = Lake(str(tmp_path / "data" / "lake"))
    before = {
        asset: lake.require(asset, "u1")["version"]
        for asset in ("raw_export", "conversation_batches", "quick_pass_soulprint")
    }
    with sqlite3.connect(tmp_path / "data" / "user_profiles.sqlite3") as database:
        saved = database.execute(
            "SELECT import_status, ai_name, total_messages FROM user_profiles"
        ).fetchone()
    assert saved[0] == "complete"

    second = tmp_path / "second.json"
    write_export(str(second), fmt="json", target_bytes=20 * 1024 * 1024, seed=8)
    killed = _start_import(tmp_path, second)
    _wait_until_running(tmp_path, killed)
    killed.send_signal(signal.SIGKILL)
    killed.wait()

    # the app still shows the last good import, and the lake's current chain is still its own
    with sqlite3.connect(tmp_path / "data" / "user_profiles.sqlite3") as database:
        row = database.execute(
            "SELECT import_status, ai_name, total_messages FROM user_profiles"
        ).fetchone()
    assert row == saved
    after = {asset: lake.require(asset, "u1")["version"] for asset in before}
    assert after == before
    assert chain_problems(lake, "u1") == []
