"""The import job with user_profiles on a real PostgreSQL server (runs on CI, never skipped)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from soulprint_pipeline.soulprint.field_evidence import sections_of
from soulprint_pipeline.soulprint.sections import SECTION_NAMES
from soulprint_pipeline_tests.support.env import Env
from soulprint_pipeline_tests.support.exports import chatgpt_export_bytes


@pytest.fixture
def pg_env(tmp_path: Path, postgres_profiles_url: str) -> Iterator[Env]:
    with dg.instance_for_test() as instance:
        yield Env(tmp_path, postgres_profiles_url, instance)


def _lake_soulprint(env: Env, user_id: str) -> dict:
    current = env.current("quick_pass_soulprint", user_id)
    return json.loads(Path(current["file"]).read_text())


def test_a_user_ends_complete_with_the_soulprint_as_jsonb(pg_env: Env) -> None:
    upload = pg_env.upload("pg-alice", "conversations.json", chatgpt_export_bytes(6))
    result = pg_env.run_import("pg-alice", upload)
    assert result.success

    row = pg_env.row("pg-alice")
    assert row["import_status"] == "complete"
    assert row["import_stage"] == "Complete" and row["progress_percent"] == 100
    assert row["import_error"] is None
    assert (row["total_conversations"], row["total_messages"]) == (6, 12)
    assert row["processing_started_at"].tzinfo == UTC
    assert row["updated_at"] >= row["processing_started_at"]
    # the soulprint round-trips: what the lake holds is what the app reads back, but for the
    # evidence quotes, which the lake's JSON alone keeps
    stored = _lake_soulprint(pg_env, "pg-alice")
    assert set(row["soulprint"]) == set(SECTION_NAMES) and "evidence" in stored
    assert row["soulprint"] == sections_of(stored)
    assert row["ai_name"] == row["soulprint"]["identity"]["ai_name"]
    assert row["archetype"] == row["soulprint"]["identity"]["archetype"]

    # and it is stored as real jsonb, queryable by the app
    with psycopg.connect(pg_env.profiles_url, autocommit=True) as conn:
        kind, ai_name, status = conn.execute(
            "SELECT pg_typeof(soulprint)::text, soulprint->'identity'->>'ai_name', "
            "import_status FROM user_profiles WHERE user_id = %s",
            ("pg-alice",),
        ).fetchone()
        count = conn.execute("SELECT count(*) FROM user_profiles").fetchone()[0]
    assert kind == "jsonb"
    assert ai_name == row["ai_name"]
    assert status == "complete"
    assert count == 1


def test_a_truncated_upload_ends_failed_with_its_message(pg_env: Env) -> None:
    upload = pg_env.upload("pg-bob", "conversations.json", chatgpt_export_bytes(30)[:-50])
    result = pg_env.run_import("pg-bob", upload)
    assert not result.success
    failed = [e.step_key for e in result.all_events if e.is_step_failure]
    assert failed == ["conversation_batches"]

    row = pg_env.row("pg-bob")
    assert row["import_status"] == "failed"
    assert row["import_stage"] == "Parsing conversations"
    assert "cut short" in row["import_error"], row["import_error"]
    assert "question" not in row["import_error"] and "answer" not in row["import_error"]
    assert row["soulprint"] is None
    assert 20 <= row["progress_percent"] < 50
