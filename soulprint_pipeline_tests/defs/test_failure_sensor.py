"""import_failure_sensor: a failed run the job's hook did not report still ends ``failed``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from soulprint_pipeline.defs.model import SoulprintModel
from soulprint_pipeline.defs.partitions import PARTITION_TAG, users
from soulprint_pipeline.defs.resources import ProfilesResource
from soulprint_pipeline.defs.sensors import import_failure_sensor
from soulprint_pipeline.mirror.registry import open_profile_store
from soulprint_pipeline.soulprint.llm import PermanentModelError
from soulprint_pipeline_tests.support.env import Env
from soulprint_pipeline_tests.support.exports import chatgpt_export_bytes

SECRET = "my secret diary entry about Lisbon"
STOPPED = "The import stopped unexpectedly (its worker ended); please upload again."


class BrokenModel(SoulprintModel):
    """A model whose failure message quotes the person's text."""

    def generate(self, parts, on_progress=None):  # type: ignore[override]
        raise RuntimeError(f"model refused: {SECRET}")


class DeniedModel(SoulprintModel):
    """A model backend refusing access, failed the way model.py fails it (dg.Failure from ours)."""

    def generate(self, parts, on_progress=None):  # type: ignore[override]
        try:
            raise PermanentModelError("The model refused access (HTTP 403).")
        except PermanentModelError as error:
            raise dg.Failure(description=str(error), allow_retries=False) from error


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with dg.instance_for_test() as instance:
        yield Env(tmp_path, f"sqlite:///{tmp_path / 'profiles.sqlite3'}", instance)


def _failure_event(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterEvent:
    records = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    assert len(records) == 1
    return records[0].dagster_event


def _run_sensor(env: Env, run_id: str) -> None:
    with dg.build_run_status_sensor_context(
        sensor_name=import_failure_sensor.name,
        dagster_instance=env.instance,
        dagster_run=env.instance.get_run_by_id(run_id),
        dagster_event=_failure_event(env.instance, run_id),
        resources={"profiles": ProfilesResource(url=env.profiles_url)},
    ) as context:
        import_failure_sensor(context.for_run_failure())


def _processing(env: Env, user_id: str) -> dict:
    row = env.row(user_id)
    assert row["import_status"] == "processing", row  # no hook ran: the app still waits
    return row


def test_a_storage_error_in_the_asset_body_gives_its_message(env: Env) -> None:
    # dg.materialize, as a UI re-run does: no job hooks; the user has no upload at all
    result = env.rematerialize("sam")
    assert not result.success
    _processing(env, "sam")
    _run_sensor(env, result.run_id)
    row = env.row("sam")
    assert row["import_status"] == "failed"
    assert row["import_stage"] == "Downloading export"
    assert row["import_error"].startswith("No export has been uploaded for user sam")


def test_an_export_error_in_the_io_manager_gives_its_message(env: Env) -> None:
    env.upload("tess", "conversations.json", chatgpt_export_bytes(30)[:-50])
    result = env.rematerialize("tess")
    assert not result.success
    _processing(env, "tess")
    _run_sensor(env, result.run_id)
    row = env.row("tess")
    assert row["import_status"] == "failed"
    assert row["import_stage"] == "Parsing conversations"
    assert "cut short" in row["import_error"], row["import_error"]
    assert "question" not in row["import_error"]
    # the same words the job's hook writes for the same upload
    env.upload("tess-hooked", "conversations.json", chatgpt_export_bytes(30)[:-50])
    assert not env.run_import("tess-hooked").success
    assert env.row("tess-hooked")["import_error"] == row["import_error"]


def test_an_unknown_error_is_named_by_type_only(env: Env) -> None:
    env.upload("uma", "conversations.json", chatgpt_export_bytes(3))
    env.resources["llm"] = BrokenModel()
    result = env.rematerialize("uma")
    assert not result.success
    _processing(env, "uma")
    _run_sensor(env, result.run_id)
    row = env.row("uma")
    assert row["import_status"] == "failed"
    assert row["import_error"] == (
        "The import failed unexpectedly (RuntimeError); the team has been told."
    )
    assert "Lisbon" not in row["import_error"]


def test_a_failure_raised_from_our_error_gives_its_message(env: Env) -> None:
    env.resources["llm"] = DeniedModel()
    env.upload("ola", "conversations.json", chatgpt_export_bytes(3))
    result = env.rematerialize("ola")
    assert not result.success
    _processing(env, "ola")
    _run_sensor(env, result.run_id)
    assert env.row("ola")["import_error"] == "The model refused access (HTTP 403)."


def test_a_complete_user_is_left_complete(env: Env) -> None:
    upload = env.upload("vic", "conversations.json", chatgpt_export_bytes(3))
    assert env.run_import("vic", upload).success
    good = env.row("vic")
    # a re-run that fails (the upload is gone) and that no hook reported
    upload.unlink()
    result = env.rematerialize("vic")
    assert not result.success
    _run_sensor(env, result.run_id)
    row = env.row("vic")
    assert row["import_status"] == "complete" and row["import_error"] is None
    assert row["soulprint"] == good["soulprint"]
    assert row["updated_at"] == good["updated_at"]  # not even touched


def test_a_failure_the_hook_reported_is_kept(env: Env) -> None:
    env.upload("wes", "conversations.json", b"<!DOCTYPE html><html>login</html>")
    result = env.run_import("wes")  # the job, with its hook
    assert not result.success
    told = env.row("wes")
    assert told["import_status"] == "failed" and "HTML page" in told["import_error"]
    _run_sensor(env, result.run_id)
    assert env.row("wes") == told


def test_a_run_whose_worker_died_ends_failed(env: Env) -> None:
    env.instance.add_dynamic_partitions(users.name, ["xan"])
    job = env.defs.resolve_job_def("import_user")
    run = env.instance.create_run_for_job(
        job, status=dg.DagsterRunStatus.STARTED, tags={PARTITION_TAG: "xan"}
    )
    # raw_export had started (the row says processing) when the worker was killed
    with open_profile_store(env.profiles_url) as store:
        store.ensure_schema()
        store.upsert(
            "xan",
            {
                "import_status": "processing",
                "import_stage": "Downloading export",
                "progress_percent": 7,
            },
        )
    env.instance.report_run_failed(run)  # what the code server or run monitoring does
    assert env.instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
    assert not env.instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    _run_sensor(env, run.run_id)
    row = env.row("xan")
    assert row["import_status"] == "failed"
    assert row["import_error"] == STOPPED
    assert (row["import_stage"], row["progress_percent"]) == ("Downloading export", 7)


def test_a_run_without_a_partition_is_ignored(env: Env) -> None:
    job = env.defs.resolve_job_def("import_user")
    run = env.instance.create_run_for_job(job, status=dg.DagsterRunStatus.STARTED)
    env.instance.report_run_failed(run)
    _run_sensor(env, run.run_id)  # nothing to do, and no error


@pytest.mark.parametrize("state", ["quick_ready", "no row"])
def test_a_run_that_died_after_the_soulprint_or_unmirrored_ends_failed(
    env: Env, state: str
) -> None:
    env.instance.add_dynamic_partitions(users.name, ["yan"])
    job = env.defs.resolve_job_def("import_user")
    run = env.instance.create_run_for_job(
        job, status=dg.DagsterRunStatus.STARTED, tags={PARTITION_TAG: "yan"}
    )
    with open_profile_store(env.profiles_url) as store:
        store.ensure_schema()
        if state == "quick_ready":  # the memory step was embedding when the worker died
            store.upsert(
                "yan",
                {
                    "import_status": "quick_ready",
                    "import_stage": "Creating memory chunks",
                    "progress_percent": 91,
                },
            )
    env.instance.report_run_failed(run)
    _run_sensor(env, run.run_id)
    row = env.row("yan")
    assert row["import_status"] == "failed" and row["import_error"] == STOPPED
