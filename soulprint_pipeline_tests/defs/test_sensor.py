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
from soulprint_pipeline.defs.sensors import Cursor
from soulprint_pipeline_tests.support.env import Env
from soulprint_pipeline_tests.support.exports import chatgpt_export_bytes
from soulprint_pipeline_tests.support.s3 import S3_BUCKET
from soulprint_pipeline_tests.support.ticks import upload_tick

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


def test_new_uploads_start_one_run_each_and_the_cursor_remembers(env: Env) -> None:
    _put(env, "user-a/export.zip", b"zip", OLD)
    _put(env, "user-b/conversations.json", b"[]", OLD + 1)
    result = upload_tick(env)
    assert [r.partition_key for r in result.run_requests] == ["user-a", "user-b"]
    added = result.dynamic_partitions_requests[0]
    assert added.partitions_def_name == users.name and added.partition_keys == ["user-a", "user-b"]
    first = result.run_requests[0]
    assert first.tags[UPLOAD_TAG] == str(env.uploads / "user-a" / "export.zip")
    assert first.run_key.startswith("user-a:")
    # the next tick sees nothing new
    again = upload_tick(env, result.cursor)
    assert again.run_requests == [] and again.cursor == result.cursor


def test_a_replaced_upload_is_imported_again(env: Env) -> None:
    path = _put(env, "user-a/export.zip", b"first", OLD)
    first = upload_tick(env)
    _put(env, "user-a/export.zip", b"second version", OLD + 60)
    second = upload_tick(env, first.cursor)
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
    result = upload_tick(env)
    assert [r.partition_key for r in result.run_requests] == ["user-b"]


def test_an_upload_still_being_written_waits_and_is_not_lost(env: Env) -> None:
    _put(env, "user-a/export.zip", b"done", OLD)
    growing = _put(env, "user-b/export.zip", b"partial", time.time())
    first = upload_tick(env)
    assert [r.partition_key for r in first.run_requests] == ["user-a"]
    os.utime(growing, (OLD + 5, OLD + 5))  # it settled
    second = upload_tick(env, first.cursor)
    assert [r.partition_key for r in second.run_requests] == ["user-b"]


def test_uploads_over_the_per_tick_cap_are_taken_next_tick(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOULPRINT_SENSOR_MAX_RUNS_PER_TICK", "2")
    monkeypatch.setenv("SOULPRINT_IMPORT_BATCH", "1")  # a run per upload (batches: below)
    for i in range(5):
        _put(env, f"user-{i}/export.zip", b"zip", OLD + i)
    seen, cursor = [], None
    for _ in range(4):
        result = upload_tick(env, cursor)
        seen.append([r.partition_key for r in result.run_requests])
        cursor = result.cursor
    assert seen == [["user-0", "user-1"], ["user-2", "user-3"], ["user-4"], []]


def test_uploads_sharing_a_timestamp_are_all_taken(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOULPRINT_SENSOR_MAX_RUNS_PER_TICK", "1")
    monkeypatch.setenv("SOULPRINT_IMPORT_BATCH", "1")  # a run per upload (batches: below)
    for user in ("user-a", "user-b", "user-c"):
        _put(env, f"{user}/export.zip", b"zip", OLD)
    seen, cursor = [], None
    for _ in range(4):
        result = upload_tick(env, cursor)
        seen += [r.partition_key for r in result.run_requests]
        cursor = result.cursor
    assert seen == ["user-a", "user-b", "user-c"]
    assert Cursor.parse(cursor).watermark == pytest.approx(OLD)


def test_an_upload_already_imported_is_not_imported_again(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload = _put(env, "user-a/export.json", chatgpt_export_bytes(3))
    tick = upload_tick(env)
    request = tick.run_requests[0]
    result = env.defs.resolve_job_def("import_user").execute_in_process(
        instance=env.instance, partition_key="user-a", tags=request.tags
    )
    assert result.success and env.row("user-a")["import_status"] == "complete"
    # a first start on a bucket that was imported before: no cursor, yet nothing to do
    assert upload_tick(env).run_requests == []
    # the same bytes uploaded again later under another name are a new object: imported
    monkeypatch.setenv("SOULPRINT_SENSOR_SETTLE_SECONDS", "0")
    _put(env, "user-a/again.json", upload.read_bytes(), time.time())
    assert [r.partition_key for r in upload_tick(env, tick.cursor).run_requests] == ["user-a"]


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
            result = upload_tick(env)
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


# --- fault injection (issue 10): late uploads, duplicates, the cursor's size, links out ---


def _keys(result: dg.SensorResult) -> list[str]:
    return [r.run_key for r in result.run_requests]


@pytest.mark.chaos
def test_an_upload_moved_in_with_an_old_mtime_is_requested_next_tick(env: Env) -> None:
    _put(env, "user-a/export.zip", b"first", OLD + 100)
    first = upload_tick(env, submit=True)
    assert [r.partition_key for r in first.run_requests] == ["user-a"]
    # `mv` keeps the file's mtime: both are older than the watermark the first tick set
    _put(env, "user-b/export.zip", b"moved in late", OLD)
    _put(env, "user-a/older-export.json", b"also late", OLD + 50)
    second = upload_tick(env, first.cursor, submit=True)
    assert sorted(r.partition_key for r in second.run_requests) == ["user-a", "user-b"]
    assert Cursor.parse(second.cursor).watermark == Cursor.parse(first.cursor).watermark
    third = upload_tick(env, second.cursor, submit=True)
    assert third.run_requests == [] and third.cursor == second.cursor


@pytest.mark.chaos
def test_fifteen_late_uploads_over_many_ticks_none_lost_none_duplicated(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's scenario (15 of 15 lost): late uploads among on-time ones, a cap of 3, a
    deletion and a replacement on the way; every identity requested exactly once."""
    monkeypatch.setenv("SOULPRINT_SENSOR_MAX_RUNS_PER_TICK", "3")
    monkeypatch.setenv("SOULPRINT_IMPORT_BATCH", "1")  # a run per upload (batches: below)
    requested: list[str] = []
    cursor = None
    for i in range(10):
        _put(env, f"user-{i}/export.zip", f"on time {i}".encode(), OLD + 1000 + i)
    for round_ in range(15):
        # one late upload per round, older than everything taken so far
        _put(env, f"late-{round_}/export.json", f"late {round_}".encode(), OLD + round_)
        if round_ == 5:
            (env.uploads / "user-0" / "export.zip").unlink()  # the app cleans up
        if round_ == 7:
            _put(env, "user-1/export.zip", b"replaced", OLD + 2000)
        result = upload_tick(env, cursor, submit=True)
        requested += _keys(result)
        cursor = result.cursor
    for _ in range(10):  # drain
        result = upload_tick(env, cursor, submit=True)
        requested += _keys(result)
        cursor = result.cursor
    assert len(requested) == len(set(requested)), "a duplicate run request"
    users_requested = {key.split(":")[0] for key in requested}
    assert {f"late-{i}" for i in range(15)} <= users_requested  # 0 of 15 lost
    assert len(requested) == 15 + 10 + 1  # late ones, on-time ones, the replacement
    assert upload_tick(env, cursor, submit=True).run_requests == []


@pytest.mark.chaos
def test_the_cursor_stays_the_same_size_as_the_bucket_grows(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOULPRINT_SENSOR_MAX_RUNS_PER_TICK", "500")
    monkeypatch.setenv("SOULPRINT_IMPORT_BATCH", "1")  # a run per upload (batches: below)
    sizes, requested, cursor = [], 0, None
    for batch in range(4):  # 2,000 uploads over 10 users, 500 at a time
        for i in range(500):
            n = batch * 500 + i
            _put(env, f"user-{n % 10}/export-{n:04d}.json", b"[]", OLD + n)
        result = upload_tick(env, cursor, submit=True)
        requested += len(result.run_requests)
        cursor = result.cursor
        sizes.append(len(cursor))
    assert requested == 2_000
    assert max(sizes) < 1_000 and max(sizes) - min(sizes) <= 40  # constant, not per object
    assert "user-" not in cursor and "export" not in cursor  # no names in the cursor


@pytest.mark.chaos
def test_s3_a_multipart_upload_finished_after_the_watermark_passed_its_start(
    tmp_path: Path, s3: Any, s3_server: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """S3 dates a multipart upload by when it started: a slow upload completes with a
    LastModified older than uploads taken meanwhile."""
    import boto3
    import moto.s3.models

    client_kwargs = s3_server["client_kwargs"]
    client = boto3.client(
        "s3",
        aws_access_key_id=s3_server["key"],
        aws_secret_access_key=s3_server["secret"],
        **client_kwargs,
    )
    started = moto.s3.models.utcnow()
    part = client.create_multipart_upload(Bucket=S3_BUCKET, Key="user-slow/export.json")
    etag = client.upload_part(
        Bucket=S3_BUCKET,
        Key="user-slow/export.json",
        UploadId=part["UploadId"],
        PartNumber=1,
        Body=chatgpt_export_bytes(2),
    )["ETag"]
    time.sleep(1.1)  # S3 times are whole seconds
    client.put_object(Bucket=S3_BUCKET, Key="user-fast/export.json", Body=b"[]")
    monkeypatch.setenv("SOULPRINT_SENSOR_SETTLE_SECONDS", "0")
    with dg.instance_for_test() as instance:
        env = Env(tmp_path, f"sqlite:///{tmp_path / 'profiles.sqlite3'}", instance)
        env.resources["uploads"] = UploadsResource(
            url=f"s3://{S3_BUCKET}",
            s3=S3Settings(
                endpoint_url=client_kwargs["endpoint_url"],
                access_key_id=s3_server["key"],
                secret_access_key=s3_server["secret"],
                region=client_kwargs["region_name"],
            ),
        )
        first = upload_tick(env, submit=True)
        assert [r.partition_key for r in first.run_requests] == ["user-fast"]
        # completed now, dated when it started (as S3 does; moto would date it now)
        monkeypatch.setattr(moto.s3.models, "utcnow", lambda: started)
        client.complete_multipart_upload(
            Bucket=S3_BUCKET,
            Key="user-slow/export.json",
            UploadId=part["UploadId"],
            MultipartUpload={"Parts": [{"ETag": etag, "PartNumber": 1}]},
        )
        monkeypatch.undo()
        monkeypatch.setenv("SOULPRINT_SENSOR_SETTLE_SECONDS", "0")
        modified = client.head_object(Bucket=S3_BUCKET, Key="user-slow/export.json")
        assert modified["LastModified"].timestamp() < Cursor.parse(first.cursor).watermark
        second = upload_tick(env, first.cursor, submit=True)
        assert [r.partition_key for r in second.run_requests] == ["user-slow"]
        assert upload_tick(env, second.cursor, submit=True).run_requests == []


def _link(env: Env, relative: str, target: Path) -> Path:
    path = env.uploads / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)
    os.utime(path, (OLD, OLD), follow_symlinks=False)
    return path


@pytest.mark.chaos
def test_a_link_out_of_the_uploads_folder_is_skipped_and_one_inside_is_taken(
    env: Env, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere" / "private.json"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(chatgpt_export_bytes(2))
    os.utime(elsewhere, (OLD, OLD))
    _link(env, "user-out/export.json", elsewhere)
    inside = _put(env, "user-in/.staging/real.json", chatgpt_export_bytes(2))
    _link(env, "user-in/export.json", inside)
    result = upload_tick(env)
    assert [r.partition_key for r in result.run_requests] == ["user-in"]
    logged = "a link to a file outside the uploads folder"
    assert upload_tick(env, result.cursor).run_requests == []
    # the latest upload of a re-run from the UI never picks the link out either
    uploads = env.resources["uploads"]
    assert uploads.uploads_of("user-out") == []
    assert [u.name for u in uploads.uploads_of("user-in")] == ["export.json"]
    only_out = _link(env, "user-other/export.json", elsewhere)
    skipped = upload_tick(env, result.cursor)
    assert skipped.run_requests == []
    assert logged in skipped.skip_reason.skip_message
    assert only_out.exists()


@pytest.mark.chaos
def test_an_import_of_a_link_out_of_the_uploads_folder_fails_without_reading_it(
    env: Env, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere" / "private.json"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(chatgpt_export_bytes(2).replace(b"Hello", b"CANARY-outside"))
    link = _link(env, "u1/export.json", elsewhere)
    result = env.run_import("u1", link)
    assert not result.success
    row = env.row("u1")
    assert row["import_status"] == "failed"
    message = row["import_error"]
    assert "export.json" in message and "outside the uploads folder" in message
    assert "elsewhere" not in message and "private" not in message and "CANARY" not in message
    assert not (env.lake / "raw_export").exists() or not any(
        (env.lake / "raw_export").rglob("*.json")
    )


def test_a_tick_that_requests_nothing_says_why_in_counts(env: Env) -> None:
    _put(env, "user-a/.DS_Store", b"junk")
    _put(env, "user-a/notes.txt", b"text")
    _put(env, "bad.user/export.zip", b"zip")
    _put(env, "user-b/export.zip", b"partial", time.time())
    result = upload_tick(env)
    assert result.run_requests == []
    message = result.skip_reason.skip_message
    assert "2 not an export file name" in message
    assert "1 invalid user id" in message and "1 still being written" in message
    assert "user-a" not in message and "notes" not in message and "bad.user" not in message
    quiet = upload_tick(env, result.cursor)
    assert "No new upload" in quiet.skip_reason.skip_message or "still being written" in (
        quiet.skip_reason.skip_message
    )


@pytest.mark.chaos
def test_without_a_set_cap_the_run_queue_sizes_the_drain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOULPRINT_IMPORT_BATCH", "1")  # a run per upload (batches: below)
    overrides = {"concurrency": {"runs": {"max_concurrent_runs": 3}}}
    with dg.instance_for_test(overrides=overrides) as instance:
        env = Env(tmp_path, f"sqlite:///{tmp_path / 'profiles.sqlite3'}", instance)
        for i in range(5):
            _put(env, f"user-{i}/export.zip", b"zip", OLD + i)
        first = upload_tick(env, submit=True)
        assert len(first.run_requests) == 3  # the queue's max_concurrent_runs
        full = upload_tick(env, first.cursor, submit=True)
        assert full.run_requests == []
        assert "2 waiting for the next tick" in full.skip_reason.skip_message
        assert "max_concurrent_runs=3, 3 waiting" in full.skip_reason.skip_message
        for record in instance.get_run_records():
            instance.report_run_canceled(record.dagster_run)  # the queue moved on
        rest = upload_tick(env, full.cursor, submit=True)
        assert [r.partition_key for r in rest.run_requests] == ["user-3", "user-4"]


def test_every_sensor_says_what_it_does() -> None:
    from soulprint_pipeline.definitions import defs

    sensors = {sensor.name: sensor for sensor in defs.sensors}
    assert set(sensors) == {
        "upload_sensor",
        "import_queued_sensor",
        "import_failure_sensor",
        "dead_run_sensor",
        "mirror_reconcile_sensor",
        "soulprint_automation",
    }
    for name, sensor in sensors.items():
        assert sensor.description and len(sensor.description) > 40, name
