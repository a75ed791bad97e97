"""dead_run_sensor: an import run whose worker process died is failed within a tick."""

from __future__ import annotations

import os
import subprocess
import sys

import dagster as dg
from dagster._core.events import EngineEventData

from soulprint_pipeline.defs.partitions import IMPORT_COMMAND, PARTITION_TAG, RUNNER_TAG, users
from soulprint_pipeline.defs.sensors import dead_run_sensor
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
    with dg.build_sensor_context(instance=env.instance) as context:
        result = dead_run_sensor(context)
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
    assert "4 import runs started, 2 with a dead worker failed" in result.skip_message
