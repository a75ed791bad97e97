"""A real PostgreSQL stopped in the middle of an import (``pg_ctl stop -m immediate``) and
started again after it: the import command ends with one line and no traceback, and
``mirror_reconcile_sensor`` brings the row to the lake's truth once the server is back."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from soulprint_pipeline.defs.io_manager import LakeIOManager
from soulprint_pipeline.defs.reconcile import mirror_reconcile_sensor
from soulprint_pipeline.defs.resources import ProfilesResource, S3Settings
from soulprint_pipeline.lake.store import Lake
from soulprint_pipeline.lake.verify import chain_problems
from soulprint_pipeline.testing.synthetic import write_export
from soulprint_pipeline_tests.support.cli import CONSOLE_SCRIPT, defaults_under, environment
from soulprint_pipeline_tests.support.postgres import own_server

pytestmark = pytest.mark.chaos

USER = "u1"
#: The stages of a run under way, before the soulprint is saved.
RUNNING = ("Downloading export", "Parsing conversations", "Generating soulprint")


def _row(url: str) -> tuple | None:
    """(status, stage, percent, conversations, messages) of the user's row; None if there is
    none yet (nor a table) or the server does not answer."""
    try:
        with psycopg.connect(url, connect_timeout=2) as connection:
            return connection.execute(
                "SELECT import_status, import_stage, progress_percent, total_conversations, "
                "total_messages FROM user_profiles WHERE user_id = %s",
                (USER,),
            ).fetchone()
    except (psycopg.OperationalError, psycopg.errors.UndefinedTable):
        return None


def test_postgres_stopped_mid_import_converges_once_back(tmp_path: Path) -> None:
    export = tmp_path / "export.json"
    write_export(str(export), fmt="json", target_bytes=20 * 1024 * 1024, seed=11)
    with own_server() as server:
        url = server.create_database("profiles")
        settings = {**defaults_under(tmp_path), "SOULPRINT_PROFILES_URL": url}
        importing = subprocess.Popen(
            [str(CONSOLE_SCRIPT), "import", str(export), "--user", USER],
            cwd=tmp_path,
            env=environment(**settings),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # stopped once the run's first step has told the row it is working
        deadline = time.monotonic() + 180
        while (row := _row(url)) is None or row[1] not in RUNNING:
            assert importing.poll() is None, importing.communicate()
            assert time.monotonic() < deadline, "the import never started its run"
            time.sleep(0.05)
        server.halt()
        out, err = importing.communicate(timeout=600)
        print(f"server stopped at {row[1]!r}; import exit {importing.returncode}")
        print(f"stderr: {err.strip()!r}")
        down = [line for line in out.splitlines() if "skipped" in line or "given up" in line]
        print(f"{len(down)} progress lines said a write was skipped or given up")
        assert importing.returncode == 0, err
        assert "Traceback" not in out + err
        assert len(err.strip().splitlines()) == 1, err
        assert "user_profiles did not answer" in err
        # the soulprint's final write was given up while the server was down
        assert any("given up; the row lags the lake" in line for line in down)
        lake = Lake(str(tmp_path / "data" / "lake"))
        assert chain_problems(lake, USER) == []
        rows = lake.require("conversation_batches", USER)

        server.resume()
        back = time.monotonic()
        lagging = _row(url)
        assert lagging is not None and lagging[0] == "processing", lagging  # the app still waits
        resources = {
            "profiles": ProfilesResource(url=url),
            "lake": LakeIOManager(url=str(tmp_path / "data" / "lake"), s3=S3Settings()),
        }
        cursor = None
        with dg.DagsterInstance.from_config(str(tmp_path / "home")) as instance:
            for _tick in range(5):
                with dg.build_sensor_context(
                    instance=instance, cursor=cursor, resources=resources
                ) as context:
                    mirror_reconcile_sensor(context)
                    cursor = context.cursor
                if _row(url) == ("complete", "Complete", 100, rows["conversations"], rows["rows"]):
                    break
        converged = time.monotonic() - back
        print(f"row converged {converged:.1f} s after the server was back, in {_tick + 1} tick(s)")
        assert _row(url) == ("complete", "Complete", 100, rows["conversations"], rows["rows"])
