"""The nightly lake sweep: replaced versions past SOULPRINT_LAKE_KEEP_SECONDS are deleted
although their partition is never written again; current and fresh ones are kept."""

from __future__ import annotations

import posixpath
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from soulprint_pipeline.defs.io_manager import LakeIOManager
from soulprint_pipeline.defs.maintenance import lake_maintenance, lake_maintenance_schedule
from soulprint_pipeline.defs.resources import S3Settings
from soulprint_pipeline.lake.store import Lake, Version

pytestmark = pytest.mark.chaos

KEEP = 3600


def _version_at(lake: Lake, user_id: str, when: datetime, payload: bytes) -> dict:
    """A raw_export version named as if written at ``when``, with one file, committed."""
    name = f"{when:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}"
    folder = posixpath.join(lake.base_url, "raw_export", user_id, name)
    lake.fs.makedirs(folder, exist_ok=True)
    version = Version("raw_export", user_id, name, folder)
    lake.write_bytes(version, "export.json", payload)
    return lake.commit(version, {"kind": "export", "bytes": len(payload)})


def test_the_nightly_sweep_deletes_expired_replaced_versions_only(tmp_path: Path) -> None:
    # written while the replaced versions were within their keeping time (a day, here), so
    # the writes' own clean-up kept them; the sweep keeps versions an hour
    lake = Lake(str(tmp_path / "lake"), keep_seconds=24 * 3600)
    now = datetime.now(UTC)
    # ann: an expired replaced version, a fresh replaced one, and the current one
    expired = _version_at(lake, "ann", now - timedelta(hours=5), b"x" * 5000)
    fresh = _version_at(lake, "ann", now - timedelta(minutes=10), b"y" * 300)
    current = _version_at(lake, "ann", now - timedelta(minutes=5), b"z" * 200)
    # bob: one version, written long ago and still current
    kept_old = _version_at(lake, "bob", now - timedelta(days=30), b"b" * 700)
    # no write of ann's partition will come to delete it: only a sweep can
    folder = tmp_path / "lake/raw_export/ann" / expired["version"]
    expired_bytes = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    assert expired_bytes > 5000  # the export copy and its manifest

    resources = {
        "lake": LakeIOManager(url=str(tmp_path / "lake"), s3=S3Settings(), keep_seconds=KEEP)
    }
    with dg.instance_for_test() as instance:
        result = lake_maintenance.execute_in_process(instance=instance, resources=resources)
    assert result.success
    [output] = [
        event for event in result.all_events if event.event_type == dg.DagsterEventType.STEP_OUTPUT
    ]
    metadata = output.step_output_data.metadata
    assert metadata["versions_removed"].value == 1
    assert metadata["bytes_freed"].value == expired_bytes
    assert metadata["keep_seconds"].value == KEEP

    def versions(user_id: str) -> set[str]:
        return {p.name for p in (tmp_path / "lake/raw_export" / user_id).iterdir()} - {"current"}

    assert versions("ann") == {fresh["version"], current["version"]}
    assert versions("bob") == {kept_old["version"]}
    assert lake.current("raw_export", "ann") == current
    assert lake.current("raw_export", "bob") == kept_old


def test_the_sweep_is_scheduled_nightly() -> None:
    from soulprint_pipeline.definitions import defs

    assert defs.resolve_schedule_def(lake_maintenance_schedule.name).job_name == "lake_maintenance"
    assert lake_maintenance_schedule.cron_schedule == "0 3 * * *"
    assert lake_maintenance_schedule.default_status == dg.DefaultScheduleStatus.RUNNING
