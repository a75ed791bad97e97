"""user_profiles unreachable for a whole run: the import still succeeds (the mirror is told
later, by mirror_reconcile_sensor) and the mirror check warns instead of blocking."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from soulprint_pipeline_tests.support.env import Env
from soulprint_pipeline_tests.support.exports import chatgpt_export_bytes


def _closed_port() -> int:
    """A local port where nothing listens (bound, read, then closed again)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def down_env(tmp_path: Path) -> Iterator[Env]:
    url = f"postgresql://postgres@127.0.0.1:{_closed_port()}/nowhere"
    with dg.instance_for_test() as instance:
        yield Env(tmp_path, url, instance)


def test_import_succeeds_and_the_mirror_check_warns(down_env: Env) -> None:
    upload = down_env.upload("mia", "conversations.json", chatgpt_export_bytes(4))
    result = down_env.run_import("mia", upload)

    # progress and final writes were skipped after their retries: the import went through
    assert result.success
    materialized = {
        event.asset_key.to_user_string()
        for event in result.all_events
        if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION
    }
    assert materialized == {
        "raw_export",
        "conversation_batches",
        "quick_pass_soulprint",
        "memory_chunks",
    }
    assert down_env.current("conversation_batches", "mia")["rows"] == 8

    checks = {
        evaluation.check_name: evaluation
        for evaluation in result.get_asset_check_evaluations()
        if evaluation.asset_key.to_user_string() == "quick_pass_soulprint"
    }
    mirror = checks["mirror_agrees_with_lake"]
    assert not mirror.passed and mirror.severity == dg.AssetCheckSeverity.WARN
    assert "mirror_reconcile_sensor" in (mirror.description or "")
    assert checks["sections_valid"].passed
    # no step failed, so the failure hook never ran against the unreachable mirror
    assert not [e for e in result.all_events if e.event_type_value == "HOOK_ERRORED"]


def test_the_reconcile_sensor_brings_the_row_up_to_the_lake_once_the_mirror_is_back(
    down_env: Env, tmp_path: Path
) -> None:
    from soulprint_pipeline.defs.reconcile import mirror_reconcile_sensor
    from soulprint_pipeline.defs.resources import ProfilesResource
    from soulprint_pipeline.mirror.registry import open_profile_store

    for user_id in ("mia", "noor"):
        upload = down_env.upload(user_id, "conversations.json", chatgpt_export_bytes(4))
        assert down_env.run_import(user_id, upload).success

    # the database is back (an empty one: neither import could write a row)
    back = f"sqlite:///{tmp_path / 'back.sqlite3'}"
    store = open_profile_store(back)
    store.ensure_schema()
    store.upsert("noor", {"import_status": "failed", "import_error": "told already"})

    def tick(cursor: str | None) -> tuple[str, str | None]:
        with dg.build_sensor_context(
            instance=down_env.instance,
            cursor=cursor,
            resources={"profiles": ProfilesResource(url=back), "lake": down_env.resources["lake"]},
        ) as context:
            skipped = mirror_reconcile_sensor(context)
            return skipped.skip_message or "", context.cursor

    message, cursor = tick(None)
    assert "2 of 2 users looked at, 1 rows rewritten" in message
    row = store.get("mia")
    assert row is not None and row["import_status"] == "complete"
    assert row["progress_percent"] == 100 and row["total_messages"] == 8
    soulprint = down_env.current("quick_pass_soulprint", "mia")
    assert row["ai_name"] == _lake_json(down_env, soulprint)["identity"]["ai_name"]
    # a failed row keeps its message: it is the news the app shows
    assert store.get("noor")["import_error"] == "told already"

    # once right, a row is not written again
    message, _ = tick(cursor)
    assert "0 rows rewritten" in message
    store.close()


def _lake_json(env: Env, manifest: dict) -> dict:
    from soulprint_pipeline.lake.store import Lake

    return Lake(str(env.lake)).read_json(manifest["file"])
