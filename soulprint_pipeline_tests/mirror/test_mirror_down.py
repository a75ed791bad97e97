"""user_profiles unreachable: the import still parses, and the final status write fails the step."""

from __future__ import annotations

import json
import socket
import time
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


def test_import_parses_but_fails_on_the_final_status_write(down_env: Env) -> None:
    upload = down_env.upload("mia", "conversations.json", chatgpt_export_bytes(4))
    started = time.monotonic()
    result = down_env.run_import("mia", upload)
    elapsed = time.monotonic() - started
    print(f"import with user_profiles down took {elapsed:.1f} s")

    assert not result.success
    # progress writes were skipped, so copying and parsing went through
    materialized = {
        event.asset_key.to_user_string()
        for event in result.all_events
        if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION
    }
    assert {"raw_export", "conversation_batches"} <= materialized
    current = down_env.lake / "conversation_batches" / "mia" / "CURRENT.json"
    assert current.exists()
    assert json.loads(current.read_text())["rows"] == 8

    # only the last step failed, and it says why
    failures = [event for event in result.all_events if event.is_step_failure]
    assert [event.step_key for event in failures] == ["quick_pass_soulprint"]
    error = failures[0].step_failure_data.error
    assert error.cls_name == "DagsterExecutionHandleOutputError"  # raised saving the output
    assert error.cause is not None and error.cause.cls_name == "ProfileStoreError"
    assert "PostgreSQL upsert of user_profiles failed" in error.cause.message
    assert "Connection refused" in error.cause.message
    assert "quick_pass_soulprint" not in materialized
    # the failure hook cannot reach user_profiles either; it errors without hiding the failure
    hook_errors = [e.step_key for e in result.all_events if e.event_type_value == "HOOK_ERRORED"]
    assert hook_errors == ["quick_pass_soulprint"]

    # the retries (0.5 + 1 + 2 + 4 s of backoff) bound the run's length
    assert elapsed < 30, f"took {elapsed:.1f} s"
