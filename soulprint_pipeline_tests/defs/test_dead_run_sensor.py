"""dead_run_sensor: an import run whose worker process died is failed within a tick."""

from __future__ import annotations

import os
import subprocess
import sys

import dagster as dg
from dagster._core.events import EngineEventData

from soulprint_pipeline.defs.partitions import IMPORT_COMMAND, PARTITION_TAG, RUNNER_TAG, users
from soulprint_pipeline.defs.resources import ProfilesResource
from soulprint_pipeline.defs.sensors import dead_run_sensor
from soulprint_pipeline.mirror.registry import open_profile_store
from soulprint_pipeline_tests.support.env import Env


def _started_run(env: Env, user_id: str, pid: int, tags: dict[str, str] | None = None):
    env.instance.add_dynamic_partitions(users.name, [user_id])
    job = env.defs.resolve_job_def("import_user")
    run = env.instance.create_run_for_job(
        job, status=dg.DagsterRunStatus.STARTED, tags={PARTITION_TAG: user_id, **(tags or {})}
    )
    # what Dagster's run worker logs as it starts (dagster/_grpc/impl.py)
    env.instance.report_engine_event(
        f"Started process for run (pid: {pid}).", run, EngineEventData.in_process(pid)
    )
    return run


def _dead_pid() -> int:
    worker = subprocess.Popen([sys.executable, "-c", "pass"])
    worker.wait()  # exited and reaped: no process has this pid now
    return worker.pid


def _zombie_pid() -> subprocess.Popen:
    worker = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, worker.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: a zombie
    return worker


def test_a_run_whose_worker_is_gone_is_failed_and_a_live_one_is_not(env: Env) -> None:
    dead = _started_run(env, "una", _dead_pid())
    zombie_worker = _zombie_pid()
    zombie = _started_run(env, "vic", zombie_worker.pid)
    alive = _started_run(env, "wes", os.getpid())
    own = _started_run(env, "xia", _dead_pid(), tags={RUNNER_TAG: IMPORT_COMMAND})
    result = _tick(env)
    zombie_worker.wait()
    status = {
        run.run_id: env.instance.get_run_by_id(run.run_id).status
        for run in (dead, zombie, alive, own)
    }
    assert status[dead.run_id] == dg.DagsterRunStatus.FAILURE
    assert status[zombie.run_id] == dg.DagsterRunStatus.FAILURE  # killed, not yet reaped
    assert status[alive.run_id] == dg.DagsterRunStatus.STARTED
    # the import command's runs are its own to fail (its next import does)
    assert status[own.run_id] == dg.DagsterRunStatus.STARTED
    assert "4 runs of users started, 2 with a dead worker failed" in result.skip_message


def _tick(env: Env) -> dg.SkipReason:
    resources = {"profiles": ProfilesResource(url=env.profiles_url)}
    with dg.build_sensor_context(instance=env.instance, resources=resources) as context:
        return dead_run_sensor(context)


def test_a_row_a_dying_step_wrote_back_to_processing_is_failed_again(env: Env) -> None:
    told = "The import stopped unexpectedly (its worker ended); please upload again."
    for user_id in ("yul", "zed"):
        run = _started_run(env, user_id, os.getpid())
        env.instance.report_run_failed(run)
    # zed was imported again since: its new run owns the row
    _started_run(env, "zed", os.getpid())
    with open_profile_store(env.profiles_url) as store:
        store.ensure_schema()
        for user_id in ("yul", "zed"):
            # import_failure_sensor had told the app; then the dead run's parse step, still
            # ending, wrote its progress over the status
            store.upsert(
                user_id,
                {
                    "import_status": "processing",
                    "import_stage": "Parsing conversations",
                    "progress_percent": 47,
                    "import_error": told,
                },
            )
    result = _tick(env)
    assert env.row("yul")["import_status"] == "failed"
    assert env.row("yul")["import_error"] == told
    assert env.row("zed")["import_status"] == "processing"
    assert "1 rows of failed runs restored to failed" in result.skip_message
