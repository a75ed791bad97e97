"""A soulprint backfill in batches: several users in one run, their model calls side by side
under the ``llm`` pool's limit, each user saved, checked and told apart, one user's failure
theirs alone."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from soulprint_pipeline.defs import backfill
from soulprint_pipeline.defs.assets import (
    ASSETS,
    conversation_batches,
    memory_chunks,
    quick_pass_soulprint,
    raw_export,
)
from soulprint_pipeline.defs.backfill import BACKFILL_BATCH, MEMORY_BACKFILL_BATCH
from soulprint_pipeline.defs.checks import MIRROR_AGREES, SECTIONS_VALID
from soulprint_pipeline.defs.model import SoulprintModel
from soulprint_pipeline.defs.partitions import users
from soulprint_pipeline_tests.support.bedrock_stub import (
    BedrockStub,
    Reply,
    bedrock_error,
    soulprint_json,
)
from soulprint_pipeline_tests.support.env import Env
from soulprint_pipeline_tests.support.exports import chatgpt_export_bytes

USERS = [f"user-{i}" for i in range(5)]
LLM_LIMIT = 3
SOULPRINT = dg.AssetKey("quick_pass_soulprint")
MEMORY = dg.AssetKey("memory_chunks")


@pytest.fixture
def env(tmp_path: Path, bedrock: BedrockStub) -> Iterator[Env]:
    """Five users whose exports are parsed (their soulprints not yet written), the soulprint
    on Bedrock (the stub), and an ``llm`` pool of 3 on the instance."""
    with dg.instance_for_test() as instance:
        env = Env(tmp_path, f"sqlite:///{tmp_path / 'profiles.sqlite3'}", instance)
        for index, user_id in enumerate(USERS):
            env.upload(user_id, "conversations.json", chatgpt_export_bytes(6 + index))
            parsed = env.rematerialize(user_id, selection=[raw_export, conversation_batches])
            assert parsed.success
        env.resources["llm"] = SoulprintModel(backend="bedrock", token_budget=20_000)
        instance.event_log_storage.set_concurrency_slots("llm", LLM_LIMIT)
        yield env


def _batch(
    env: Env,
    first: str = USERS[0],
    last: str = USERS[-1],
    asset: dg.AssetsDefinition = quick_pass_soulprint,
) -> dg.ExecuteInProcessResult:
    """One run over the users' soulprints (or ``asset``), tagged as a backfill's batch run is."""
    return dg.materialize(
        ASSETS,
        selection=[asset],
        instance=env.instance,
        resources=env.resources,
        tags={ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last},
        raise_on_error=False,
    )


def _materialized(env: Env, key: dg.AssetKey = SOULPRINT) -> dict[str, dg.AssetMaterialization]:
    records = env.instance.fetch_materializations(key, limit=100).records
    return {r.partition_key: r.asset_materialization for r in records if r.partition_key}


def _check_results(env: Env) -> dict[tuple[str, str], bool]:
    found = {}
    for check in (SECTIONS_VALID, MIRROR_AGREES):
        records = env.instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(SOULPRINT, check), limit=100
        )
        for record in records:  # each user's evaluation (a run's planned ones have no result)
            evaluation = record.event.dagster_event.event_specific_data
            if isinstance(evaluation, dg.AssetCheckEvaluation):
                found[(evaluation.partition, check)] = evaluation.passed
    return found


@pytest.mark.parametrize(
    ("asset", "default", "setting"),
    [
        ("quick_pass_soulprint", BACKFILL_BATCH, "SOULPRINT_BACKFILL_BATCH"),
        ("memory_chunks", MEMORY_BACKFILL_BATCH, "SOULPRINT_MEMORY_BACKFILL_BATCH"),
    ],
)
def test_the_soulprint_and_the_memory_backfill_in_batches(
    asset: str, default: int, setting: str
) -> None:
    assert default == 25
    code = (
        f"from soulprint_pipeline.defs.assets import {asset} as a; "
        "print(a.backfill_policy.max_partitions_per_run)"
    )
    for environment, expected in (({}, "25"), ({setting: "7"}, "7")):
        run = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, **environment},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.stdout.strip() == expected, run.stderr


def test_a_batch_calls_the_model_concurrently_within_the_pool(
    env: Env, bedrock: BedrockStub
) -> None:
    bedrock.script(then=Reply(soulprint_json("Nova")), latency=0.5)
    result = _batch(env)
    assert result.success
    assert len(bedrock.requests) == len(USERS)
    assert 1 < bedrock.max_in_flight <= LLM_LIMIT

    # one run, yet each user has their own materialization, lake version, checks and row
    [run] = env.instance.get_runs(limit=1)
    assert run.run_id == result.run_id and run.tags[ASSET_PARTITION_RANGE_START_TAG] == USERS[0]
    materialized = _materialized(env)
    assert sorted(materialized) == USERS
    paths = {m.metadata["path"].value for m in materialized.values()}
    assert len(paths) == len(USERS)
    for user_id, materialization in materialized.items():
        assert f"/quick_pass_soulprint/{user_id}/" in materialization.metadata["path"].value
        # the prompt's version, so a prompt bump marks these soulprints stale as usual
        assert (
            materialization.tags["dagster/code_version"]
            == quick_pass_soulprint.code_versions_by_key[SOULPRINT]
        )
        assert (
            materialization.metadata["model"].value == "us.anthropic.claude-haiku-4-5-20251001-v1:0"
        )
    assert _check_results(env) == {
        (user_id, check): True for user_id in USERS for check in (SECTIONS_VALID, MIRROR_AGREES)
    }
    for user_id in USERS:
        row = env.row(user_id)
        assert row["import_status"] == "quick_ready" and row["ai_name"] == "Nova"
        assert row["progress_percent"] == 80
    # each user's progress is observed under their own partition
    observed = {
        record.partition_key
        for record in env.instance.fetch_observations(SOULPRINT, limit=100).records
    }
    assert observed == set(USERS)
    # the users' imports go on from here: the memory of one, in a run of its own
    assert env.rematerialize(USERS[0], selection=[ASSETS[-1]]).success
    assert env.row(USERS[0])["import_status"] == "complete"


def test_a_batch_of_one_user(env: Env, bedrock: BedrockStub) -> None:
    """SOULPRINT_BACKFILL_BATCH=1: a backfill's run per user is still tagged with a range."""
    bedrock.script(then=Reply(soulprint_json("Nova")))
    assert _batch(env, USERS[2], USERS[2]).success
    assert sorted(_materialized(env)) == [USERS[2]]
    assert _check_results(env) == {
        (USERS[2], SECTIONS_VALID): True,
        (USERS[2], MIRROR_AGREES): True,
    }
    assert env.row(USERS[2])["import_status"] == "quick_ready"


def test_one_users_failure_is_theirs_alone(env: Env, bedrock: BedrockStub) -> None:
    # the first call to arrive is refused for good (a 400: no retry); the rest are answered
    bedrock.script(
        bedrock_error(400, "ValidationException", "bad request"),
        then=Reply(soulprint_json("Nova")),
        latency=0.2,
    )
    result = _batch(env)
    assert not result.success  # the run says a soulprint failed
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert "1 of 5 soulprints in this batch failed" in failure.step_failure_data.error.message

    rows = {user_id: env.row(user_id) for user_id in USERS}
    failed = [user_id for user_id, row in rows.items() if row["import_status"] == "failed"]
    assert len(failed) == 1
    [loser] = failed
    assert rows[loser]["import_error"]
    saved = sorted(set(USERS) - {loser})
    assert all(rows[u]["import_status"] == "quick_ready" for u in saved)
    # the others' soulprints are materialized; the failed user's is not, so a backfill marks
    # that partition failed and only it is tried again
    assert sorted(_materialized(env)) == saved
    assert env.instance.get_latest_materialization_event(SOULPRINT) is not None
    assert {u for (u, _check) in _check_results(env)} == set(saved)
    assert env.instance.has_dynamic_partition(users.name, loser)


def test_a_memory_batch_builds_each_users_memory_apart(env: Env, bedrock: BedrockStub) -> None:
    bedrock.script(then=Reply(soulprint_json("Nova")))
    assert _batch(env).success
    result = _batch(env, asset=memory_chunks)
    assert result.success
    [run, _soulprints] = env.instance.get_runs(limit=2)
    assert run.run_id == result.run_id and run.tags[ASSET_PARTITION_RANGE_END_TAG] == USERS[-1]
    materialized = _materialized(env, MEMORY)
    assert sorted(materialized) == USERS
    for user_id, materialization in materialized.items():
        assert materialization.metadata["dagster/row_count"].value > 0
        assert materialization.metadata["superseded"].value is False
        # the chunker's and embedder's version, so a change of either marks them stale
        assert (
            materialization.tags["dagster/code_version"]
            == memory_chunks.code_versions_by_key[MEMORY]
        )
        # built from that user's own rows
        rows = env.current("conversation_batches", user_id)["version"]
        assert materialization.metadata["lake_inputs"].value == {"conversation_batches": rows}
        row = env.row(user_id)
        assert row["import_status"] == "complete" and row["progress_percent"] == 100
    chunks = {m.metadata["dagster/row_count"].value for m in materialized.values()}
    assert len(chunks) > 1  # five exports of different sizes: five different memories


def test_one_users_memory_failure_is_theirs_alone(env: Env, bedrock: BedrockStub) -> None:
    bedrock.script(then=Reply(soulprint_json("Nova")))
    assert _batch(env).success
    loser = USERS[1]
    for part in env.current("conversation_batches", loser)["parts"]:
        Path(part).unlink()  # this user's rows are gone from the lake
    result = _batch(env, asset=memory_chunks)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert "1 of 5 memories in this batch failed" in failure.step_failure_data.error.message
    assert sorted(_materialized(env, MEMORY)) == sorted(set(USERS) - {loser})
    row = env.row(loser)
    assert row["import_status"] == "failed" and row["import_error"]
    assert all(env.row(u)["import_status"] == "complete" for u in USERS if u != loser)


def test_a_second_batch_over_the_same_rows_keeps_the_pictures(
    env: Env, bedrock: BedrockStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prompt-version backfill does not change the rows: each user's activity picture is
    the one drawn before, read back rather than drawn again, unless the drawing changed."""
    bedrock.script(then=Reply(soulprint_json("Nova")))
    assert _batch(env).success
    first = {u: env.current("quick_pass_soulprint", u) for u in USERS}
    drawn: list[int] = []
    original = backfill.render_png
    monkeypatch.setattr(backfill, "render_png", lambda a: drawn.append(1) or original(a))

    assert _batch(env).success
    assert drawn == []
    for user_id in USERS:
        second = env.current("quick_pass_soulprint", user_id)
        assert second["version"] != first[user_id]["version"]  # a new soulprint was saved
        assert second["picture"] != first[user_id]["picture"]  # with its own copy
        assert Path(second["picture"]).read_bytes() == Path(first[user_id]["picture"]).read_bytes()

    monkeypatch.setattr(backfill, "PICTURE_VERSION", backfill.PICTURE_VERSION + 1)
    assert _batch(env).success
    assert len(drawn) == len(USERS)  # the drawing changed: every picture drawn again
