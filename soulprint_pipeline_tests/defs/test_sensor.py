"""The upload sensor: a new export in Storage starts that user's import, once."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from soulprint_pipeline.defs.assets import ASSETS
from soulprint_pipeline.defs.jobs import import_user
from soulprint_pipeline.defs.partitions import UPLOAD_TAG, users
from soulprint_pipeline.defs.resources import S3Settings, UploadsResource
from soulprint_pipeline.defs.sensors import Cursor, upload_sensor
from soulprint_pipeline_tests.support.env import Env
from soulprint_pipeline_tests.support.exports import chatgpt_export_bytes
from soulprint_pipeline_tests.support.s3 import S3_BUCKET

OLD = time.time() - 3600  # uploads finished an hour ago, long settled


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    monkeypatch.setenv("SOULPRINT_SENSOR_SETTLE_SECONDS", "10")
    with dg.instance_for_test() as instance:
        yield Env(tmp_path, f"sqlite:///{tmp_path / 'profiles.sqlite3'}", instance)


def _put(env: Env, relative: str, data: bytes, modified: float = OLD) -> Path:
    path = env.uploads / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (modified, modified))
    return path


def _tick(env: Env, cursor: str | None = None) -> dg.SensorResult:
    defs = dg.Definitions(
        assets=ASSETS,
        jobs=[import_user],
        sensors=[upload_sensor],
        resources=env.resources,
    )
    with dg.build_sensor_context(
        instance=env.instance, cursor=cursor, definitions=defs, resources=env.resources
    ) as context:
        result = upload_sensor(context)
    for request in result.dynamic_partitions_requests or []:
        env.instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
    return result


def test_new_uploads_start_one_run_each_and_the_cursor_remembers(env: Env) -> None:
    _put(env, "user-a/export.zip", b"zip", OLD)
    _put(env, "user-b/conversations.json", b"[]", OLD + 1)
    result = _tick(env)
    assert [r.partition_key for r in result.run_requests] == ["user-a", "user-b"]
    added = result.dynamic_partitions_requests[0]
    assert added.partitions_def_name == users.name and added.partition_keys == ["user-a", "user-b"]
    first = result.run_requests[0]
    assert first.tags[UPLOAD_TAG] == str(env.uploads / "user-a" / "export.zip")
    assert first.run_key.startswith("user-a:")
    # the next tick sees nothing new
    again = _tick(env, result.cursor)
    assert again.run_requests == [] and again.cursor == result.cursor


def test_a_replaced_upload_is_imported_again(env: Env) -> None:
    path = _put(env, "user-a/export.zip", b"first", OLD)
    first = _tick(env)
    _put(env, "user-a/export.zip", b"second version", OLD + 60)
    second = _tick(env, first.cursor)
    assert [r.partition_key for r in second.run_requests] == ["user-a"]
    assert second.run_requests[0].run_key != first.run_requests[0].run_key
    assert path.read_bytes() == b"second version"


def test_files_that_are_not_exports_are_skipped_without_failing(env: Env) -> None:
    _put(env, "user-a/.DS_Store", b"junk")
    _put(env, "at-the-root.zip", b"zip")
    _put(env, "user-a/nested/deeper.zip", b"zip")
    _put(env, "bad.user/export.zip", b"zip")
    _put(env, "user-a/notes.txt", b"text")
    _put(env, "user-a/empty.json", b"")
    _put(env, "user-b/export.zip", b"zip")
    result = _tick(env)
    assert [r.partition_key for r in result.run_requests] == ["user-b"]


def test_an_upload_still_being_written_waits_and_is_not_lost(env: Env) -> None:
    _put(env, "user-a/export.zip", b"done", OLD)
    growing = _put(env, "user-b/export.zip", b"partial", time.time())
    first = _tick(env)
    assert [r.partition_key for r in first.run_requests] == ["user-a"]
    os.utime(growing, (OLD + 5, OLD + 5))  # it settled
    second = _tick(env, first.cursor)
    assert [r.partition_key for r in second.run_requests] == ["user-b"]


def test_uploads_over_the_per_tick_cap_are_taken_next_tick(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOULPRINT_SENSOR_MAX_RUNS_PER_TICK", "2")
    for i in range(5):
        _put(env, f"user-{i}/export.zip", b"zip", OLD + i)
    seen, cursor = [], None
    for _ in range(4):
        result = _tick(env, cursor)
        seen.append([r.partition_key for r in result.run_requests])
        cursor = result.cursor
    assert seen == [["user-0", "user-1"], ["user-2", "user-3"], ["user-4"], []]


def test_uploads_sharing_a_timestamp_are_all_taken(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOULPRINT_SENSOR_MAX_RUNS_PER_TICK", "1")
    for user in ("user-a", "user-b", "user-c"):
        _put(env, f"{user}/export.zip", b"zip", OLD)
    seen, cursor = [], None
    for _ in range(4):
        result = _tick(env, cursor)
        seen += [r.partition_key for r in result.run_requests]
        cursor = result.cursor
    assert seen == ["user-a", "user-b", "user-c"]
    assert Cursor.parse(cursor).watermark == pytest.approx(OLD)


def test_an_upload_already_imported_is_not_imported_again(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload = _put(env, "user-a/export.json", chatgpt_export_bytes(3))
    tick = _tick(env)
    request = tick.run_requests[0]
    result = env.defs.resolve_job_def("import_user").execute_in_process(
        instance=env.instance, partition_key="user-a", tags=request.tags
    )
    assert result.success and env.row("user-a")["import_status"] == "complete"
    # a first start on a bucket that was imported before: no cursor, yet nothing to do
    assert _tick(env).run_requests == []
    # the same bytes uploaded again later under another name are a new object: imported
    monkeypatch.setenv("SOULPRINT_SENSOR_SETTLE_SECONDS", "0")
    _put(env, "user-a/again.json", upload.read_bytes(), time.time())
    assert [r.partition_key for r in _tick(env, tick.cursor).run_requests] == ["user-a"]


def test_s3_uploads_are_found_and_imported(
    tmp_path: Path, s3: Any, s3_server: dict[str, Any]
) -> None:
    client = s3_server["client_kwargs"]
    settings = S3Settings(
        endpoint_url=client["endpoint_url"],
        access_key_id=s3_server["key"],
        secret_access_key=s3_server["secret"],
        region=client["region_name"],
    )
    with s3.open(f"{S3_BUCKET}/user-s3/export.json", "wb") as handle:
        handle.write(chatgpt_export_bytes(4))
    with dg.instance_for_test() as instance:
        env = Env(tmp_path, f"sqlite:///{tmp_path / 'profiles.sqlite3'}", instance)
        env.resources["uploads"] = UploadsResource(url=f"s3://{S3_BUCKET}", s3=settings)
        env.defs = dg.Definitions(
            assets=ASSETS,
            jobs=[import_user],
            resources=env.resources,
        )
        os.environ["SOULPRINT_SENSOR_SETTLE_SECONDS"] = "0"
        try:
            result = _tick(env)
        finally:
            del os.environ["SOULPRINT_SENSOR_SETTLE_SECONDS"]
        [request] = result.run_requests
        assert request.tags[UPLOAD_TAG] == f"s3://{S3_BUCKET}/user-s3/export.json"
        assert request.run_key.startswith("user-s3:")  # the ETag
        run = env.defs.resolve_job_def("import_user").execute_in_process(
            instance=instance, partition_key="user-s3", tags=request.tags
        )
        assert run.success
        assert env.row("user-s3")["total_messages"] == 8
