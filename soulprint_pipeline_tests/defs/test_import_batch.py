"""The upload sensor's batch imports: a wave of new users' uploads in runs of several users,
each user imported, told and failed apart; a lone upload still a run of its own."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from soulprint_pipeline.defs.jobs import import_user
from soulprint_pipeline.defs.partitions import (
    BATCH_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    uploads_of_run,
    users,
    users_of_run,
)
from soulprint_pipeline_tests.support.env import Env
from soulprint_pipeline_tests.support.exports import chatgpt_export_bytes
from soulprint_pipeline_tests.support.ticks import upload_tick

OLD = time.time() - 3600
HOSTILE = chatgpt_export_bytes(30).replace(b'"current_node"', b'"current_node" ]', 1)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    monkeypatch.setenv("SOULPRINT_SENSOR_MAX_RUNS_PER_TICK", "2")
    monkeypatch.setenv("SOULPRINT_IMPORT_BATCH", "3")
    with dg.instance_for_test() as instance:
        yield Env(tmp_path, f"sqlite:///{tmp_path / 'profiles.sqlite3'}", instance)


def _put(env: Env, user_id: str, data: bytes, modified: float = OLD) -> None:
    path = env.upload(user_id, "conversations.json", data)
    os.utime(path, (modified, modified))


def _run(env: Env, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    """The request's run, as the daemon launches it (its tags, its partition or range)."""
    return env.defs.resolve_job_def(import_user.name).execute_in_process(
        instance=env.instance,
        partition_key=request.partition_key,
        tags=dict(request.tags),
        raise_on_error=False,
    )


def test_a_wave_of_uploads_is_imported_in_batch_runs(env: Env) -> None:
    for i in range(5):
        _put(env, f"user-{i}", chatgpt_export_bytes(2), OLD + i)
    result = upload_tick(env)
    # 5 new users, 2 runs a tick, at most 3 users a run: 3 + 2, over contiguous ranges of the
    # partitions this tick adds
    assert result.dynamic_partitions_requests[0].partition_keys == [f"user-{i}" for i in range(5)]
    assert [r.partition_key for r in result.run_requests] == [None, None]
    ranges = [(r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG]) for r in result.run_requests]
    assert ranges == [("user-0", "user-2"), ("user-3", "user-4")]
    first = result.run_requests[0]
    assert list(uploads_of_run(first.tags)) == ["user-0", "user-1", "user-2"]
    assert users_of_run(env.instance, first.tags) == ["user-0", "user-1", "user-2"]
    # nothing left, nothing requested twice
    assert upload_tick(env, result.cursor).run_requests == []


def test_a_lone_upload_gets_its_own_run_at_once(env: Env) -> None:
    _put(env, "user-a", chatgpt_export_bytes(2))
    result = upload_tick(env)
    assert [r.partition_key for r in result.run_requests] == ["user-a"]
    assert BATCH_TAG not in result.run_requests[0].tags


def test_a_new_upload_of_a_user_in_a_running_batch_waits_for_it(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOULPRINT_SENSOR_MAX_RUNS_PER_TICK", "1")  # the 3 users in one run
    for i in range(3):
        _put(env, f"user-{i}", chatgpt_export_bytes(2), OLD + i)
    result = upload_tick(env)
    (batch,) = result.run_requests
    run = env.instance.create_run_for_job(
        env.defs.resolve_job_def(import_user.name), tags=dict(batch.tags)
    )
    _put(env, "user-1", chatgpt_export_bytes(3), OLD + 100)  # replaced while queued
    waiting = upload_tick(env, result.cursor)
    assert waiting.run_requests == []
    assert "1 waiting for their user's batch run to end" in waiting.skip_reason.skip_message
    env.instance.report_run_canceled(run)  # the batch ended
    after = upload_tick(env, waiting.cursor)
    assert [r.partition_key for r in after.run_requests] == ["user-1"]


def test_a_hostile_export_fails_alone_and_the_others_in_its_batch_complete(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOULPRINT_SENSOR_MAX_RUNS_PER_TICK", "1")  # the 3 users in one run
    for i, data in enumerate([chatgpt_export_bytes(3), HOSTILE, chatgpt_export_bytes(4)]):
        _put(env, f"user-{i}", data, OLD + i)
    (batch,) = upload_tick(env).run_requests
    result = _run(env, batch)
    assert not result.success  # the run says one of its users failed, naming them
    failures = [e for e in result.all_events if e.is_step_failure]
    assert "1 of 3 memories in this batch failed (user-1)" in str(failures)
    hostile = env.row("user-1")
    assert hostile["import_status"] == "failed"
    assert "not valid JSON" in hostile["import_error"]
    for user_id, messages in (("user-0", 6), ("user-2", 8)):
        row = env.row(user_id)
        assert row["import_status"] == "complete" and row["progress_percent"] == 100
        assert row["total_messages"] == messages and row["ai_name"]
        # the chain this run stored is the current one
        soulprint = env.current("quick_pass_soulprint", user_id)
        assert (
            soulprint["inputs"]["conversation_batches"]
            == (env.current("conversation_batches", user_id)["version"])
        )
    memories = env.instance.fetch_materializations(dg.AssetKey("memory_chunks"), limit=10)
    assert sorted(r.partition_key for r in memories.records) == ["user-0", "user-2"]
    # Dagster records a range step's output for every user of it: the hostile one's says so
    batches = env.instance.fetch_materializations(dg.AssetKey("conversation_batches"), limit=10)
    by_user = {r.partition_key: r.asset_materialization.metadata for r in batches.records}
    assert "not valid JSON" in by_user["user-1"]["failed"].value
    assert "lake_version" in by_user["user-0"] and "lake_version" not in by_user["user-1"]
    text = env.metadata_and_logs(result.run_id)
    assert "question 0" not in text and "answer 0" not in text  # counts, never their text


def test_the_users_partitions_are_the_batch_ranges(env: Env) -> None:
    """A batch run covers exactly its users in the partitions' order."""
    for i in range(4):
        _put(env, f"user-{i}", chatgpt_export_bytes(2), OLD + i)
    result = upload_tick(env)
    keys = list(env.instance.get_dynamic_partitions(users.name))
    covered = [users_of_run(env.instance, r.tags) for r in result.run_requests]
    assert [user for run in covered for user in run] == keys
