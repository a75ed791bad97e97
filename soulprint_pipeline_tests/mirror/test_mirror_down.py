"""user_profiles unreachable for a whole run: the import still succeeds (the mirror is told
later, by a re-run of the soulprint) and the mirror check warns instead of blocking."""

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
    assert "re-run the soulprint" in (mirror.description or "")
    assert checks["sections_valid"].passed
    # no step failed, so the failure hook never ran against the unreachable mirror
    assert not [e for e in result.all_events if e.event_type_value == "HOOK_ERRORED"]
