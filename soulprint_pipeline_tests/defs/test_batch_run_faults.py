"""A backfill's batch run (several users, tagged with a range of partitions rather than one
partition) that fails or whose worker dies: import_failure_sensor and dead_run_sensor end the
row of each of its users ``failed``, except users it saved and users who were complete."""

from __future__ import annotations

import dagster as dg
import pytest
from dagster._core.errors import DagsterExecutionInterruptedError
from dagster._core.events import EngineEventData

from soulprint_pipeline.defs.assets import (
    ASSETS,
    conversation_batches,
    quick_pass_soulprint,
    raw_export,
)
from soulprint_pipeline.defs.model import SoulprintModel
from soulprint_pipeline.defs.partitions import (
    PARTITION_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    users,
    users_of_run,
)
from soulprint_pipeline.defs.resources import ProfilesResource
from soulprint_pipeline.defs.sensors import WORKER_ENDED, dead_run_sensor, import_failure_sensor
from soulprint_pipeline.mirror.registry import open_profile_store
from soulprint_pipeline_tests.defs.test_dead_run_sensor import _dead_pid
from soulprint_pipeline_tests.support.env import Env
from soulprint_pipeline_tests.support.exports import chatgpt_export_bytes

pytestmark = pytest.mark.chaos

INTERRUPTED = "u-b"


class InterruptedModel(SoulprintModel):
    """The offline model, but the run is terminated (from the UI, or by its launcher) while
    the soulprint of one user of the batch is being written."""

    def generate(self, parts, on_progress=None):  # type: ignore[override]
        if parts.manifest["user_id"] == INTERRUPTED:
            raise DagsterExecutionInterruptedError()
        return super().generate(parts, on_progress)


def _range(first: str, last: str) -> dict[str, str]:
    return {RANGE_START_TAG: first, RANGE_END_TAG: last}


def _tell(env: Env, run_id: str) -> None:
    """An import_failure_sensor tick on the run's failure."""
    [failure] = env.instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    with dg.build_run_status_sensor_context(
        sensor_name=import_failure_sensor.name,
        dagster_instance=env.instance,
        dagster_run=env.instance.get_run_by_id(run_id),
        dagster_event=failure.dagster_event,
        resources={"profiles": ProfilesResource(url=env.profiles_url)},
    ) as context:
        import_failure_sensor(context.for_run_failure())


def _dead_run_tick(env: Env) -> str:
    resources = {"profiles": ProfilesResource(url=env.profiles_url)}
    with dg.build_sensor_context(instance=env.instance, resources=resources) as context:
        return dead_run_sensor(context).skip_message or ""


def _state(env: Env, user_id: str) -> tuple[str, str | None]:
    row = env.row(user_id)
    return row["import_status"], row.get("import_error")


def test_a_batch_run_resolves_to_its_users_in_partition_order(env: Env) -> None:
    env.instance.add_dynamic_partitions(users.name, ["zoe", "amy", "kim", "bob"])
    assert users_of_run(env.instance, _range("amy", "bob")) == ["amy", "kim", "bob"]
    assert users_of_run(env.instance, _range("kim", "kim")) == ["kim"]
    assert users_of_run(env.instance, {PARTITION_TAG: "zoe"}) == ["zoe"]
    assert users_of_run(env.instance, {}) == []
    assert users_of_run(env.instance, _range("amy", "gone")) == []


def test_a_failed_batch_run_fails_the_users_it_had_not_saved(env: Env) -> None:
    batch = ["u-a", INTERRUPTED, "u-c"]
    for index, user_id in enumerate(batch):
        env.upload(user_id, "conversations.json", chatgpt_export_bytes(4 + index))
        parsed = env.rematerialize(user_id, selection=[raw_export, conversation_batches])
        assert parsed.success
    env.resources["llm"] = InterruptedModel()
    result = dg.materialize(
        ASSETS,
        selection=[quick_pass_soulprint],
        instance=env.instance,
        resources=env.resources,
        tags=_range(batch[0], batch[-1]),
        raise_on_error=False,
    )
    assert not result.success
    # u-a was saved before the run was stopped; the others were left generating
    assert _state(env, "u-a") == ("quick_ready", None)
    for user_id in (INTERRUPTED, "u-c"):
        assert env.row(user_id)["import_stage"] == "Generating soulprint"
        assert env.row(user_id)["import_status"] == "processing"

    _tell(env, result.run_id)
    assert _state(env, "u-a") == ("quick_ready", None)
    for user_id in (INTERRUPTED, "u-c"):
        status, message = _state(env, user_id)
        assert status == "failed" and message, (user_id, status, message)


def test_a_dead_batch_run_is_failed_and_its_users_told(env: Env) -> None:
    batch = ["d-a", "d-b", "d-c"]
    env.instance.add_dynamic_partitions(users.name, batch)
    with open_profile_store(env.profiles_url) as store:
        store.ensure_schema()
        # d-a was complete before the backfill (a complete user stays complete); the others
        # were waiting for their soulprint when the run's worker was killed
        store.upsert("d-a", {"import_status": "complete", "import_stage": "Complete"})
        for user_id in ("d-b", "d-c"):
            store.upsert(
                user_id,
                {
                    "import_status": "processing",
                    "import_stage": "Generating soulprint",
                    "progress_percent": 50,
                },
            )
    job = dg.define_asset_job("soulprint_backfill", selection=[quick_pass_soulprint])
    definitions = dg.Definitions(assets=ASSETS, jobs=[job], resources=env.resources)
    run = env.instance.create_run_for_job(
        definitions.resolve_job_def(job.name),
        status=dg.DagsterRunStatus.STARTED,
        tags=_range(batch[0], batch[-1]),
    )
    # what Dagster's run worker logs as it starts (dagster/_grpc/impl.py); then it was killed
    pid = _dead_pid()
    env.instance.report_engine_event(
        f"Started process for run (pid: {pid}).", run, EngineEventData.in_process(pid)
    )

    message = _dead_run_tick(env)
    assert "1 runs of users started, 1 with a dead worker failed" in message
    assert env.instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
    _tell(env, run.run_id)
    assert _state(env, "d-a")[0] == "complete"
    assert _state(env, "d-b") == ("failed", WORKER_ENDED)
    assert _state(env, "d-c") == ("failed", WORKER_ENDED)

    # a step of the dead run, still ending, wrote its progress over d-c's status
    with open_profile_store(env.profiles_url) as store:
        store.upsert("d-c", {"import_status": "processing", "progress_percent": 55})
    assert "1 rows of failed runs restored to failed" in _dead_run_tick(env)
    assert _state(env, "d-c") == ("failed", WORKER_ENDED)
    assert _state(env, "d-a")[0] == "complete"
