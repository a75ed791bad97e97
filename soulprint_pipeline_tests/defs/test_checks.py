"""Asset checks, standard metadata and the activity picture, through Dagster on real files."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from soulprint_pipeline.defs.assets import ASSETS, quick_pass_soulprint
from soulprint_pipeline.defs.checks import (
    CONVERSATIONS_COUNTED,
    MIRROR_AGREES,
    ROWS_MATCH_SCHEMA,
    SECTIONS_VALID,
)
from soulprint_pipeline.export.reader import ExportReader
from soulprint_pipeline.export.rows import SCHEMA
from soulprint_pipeline.lake.store import Lake
from soulprint_pipeline.mirror.progress import ProgressTracker
from soulprint_pipeline_tests.support.env import Env
from soulprint_pipeline_tests.support.exports import chatgpt_conversation, zip_bytes

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: What the person says about themselves: the evidence behind their location.
STATED = "I live in Porthleven, by the harbour."
#: Names the person chose: the upload's file name and the folder inside their ZIP.
FILE_NAME = "Rosalind-private-stuff.zip"
FOLDER = "Rosalind Franklin 2026"


def _export(stated: bool = False) -> bytes:
    conversations = [
        chatgpt_conversation(
            i,
            [("user", f"my secret plan number {i}"), ("assistant", f"a confidential reply {i}")]
            + ([("user", STATED)] if stated and i == 3 else []),
            create_time=1_700_000_000.0 + i * 86_400 * 9,
        )
        for i in range(12)
    ]
    return zip_bytes({f"{FOLDER}/conversations.json": json.dumps(conversations).encode()})


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {check.check_name: check for check in result.get_asset_check_evaluations()}


def _metadata(result: dg.ExecuteInProcessResult, node: str) -> dict[str, Any]:
    event = result.asset_materializations_for_node(node)[0]
    return {key: value.value for key, value in event.metadata.items()}


def test_checks_pass_and_metadata_is_standard(env: Env) -> None:
    upload = env.upload("rosa", FILE_NAME, _export(stated=True))
    result = env.run_import("rosa", upload)
    assert result.success
    checks = _checks(result)
    assert set(checks) == {ROWS_MATCH_SCHEMA, CONVERSATIONS_COUNTED, SECTIONS_VALID, MIRROR_AGREES}
    assert all(check.passed for check in checks.values()), checks
    assert {check.partition for check in checks.values()} == {"rosa"}
    assert checks[CONVERSATIONS_COUNTED].metadata["conversations_in_rows"].value == 12
    assert checks[MIRROR_AGREES].metadata["quiet_run"].value is False

    raw = _metadata(result, "raw_export")
    assert raw["documents"] == 1 and raw["container"] == "zip" and "source" not in raw
    assert raw["size"].endswith("KiB") and isinstance(raw["bytes"], int)
    assert raw["path"].endswith(env.current("raw_export", "rosa")["version"])
    parsed = _metadata(result, "conversation_batches")
    assert parsed["dagster/row_count"] == parsed["rows"] == 25
    assert parsed["json_bytes"] > parsed["export_bytes"]  # a ZIP: compressed when stored
    assert {"stored_mb_per_s", "json_mb_per_s", "json_size", "export_size"} <= set(parsed)
    assert "mb_per_s" not in parsed

    # nothing the person wrote or named reaches the run's metadata or log
    text = env.metadata_and_logs(result.run_id)
    assert raw["sha256"] in text  # the metadata values are in what is searched
    for private in ("secret plan", "confidential", "Rosalind", FOLDER, FILE_NAME, STATED):
        assert private not in text, private
    # the quote behind a field is kept in the lake's JSON, for an audit, and only there
    row = env.row("rosa")
    assert row["soulprint"]["user"]["location"] == "Porthleven"
    stored = env.stored_soulprint("rosa")
    assert stored["evidence"]["user.location"] == [STATED]
    assert STATED not in json.dumps(row, default=str) and "evidence" not in row["soulprint"]
    assert _metadata(result, "quick_pass_soulprint")["field_evidence"]["quotes"] >= 1

    # a re-run from the UI of a complete user is quiet, and the row still agrees
    again = env.rematerialize("rosa", [quick_pass_soulprint])
    assert again.success
    checks = _checks(again)
    assert checks[MIRROR_AGREES].passed and checks[MIRROR_AGREES].metadata["quiet_run"].value


def test_definitions_carry_schema_owners_and_code_versions(env: Env) -> None:
    graph = env.defs.resolve_asset_graph()
    for assets_def in ASSETS:
        key = assets_def.key
        assert graph.get(key).owners == ["team:data"], key
        assert assets_def.code_versions_by_key[key], key
    batches = env.defs.resolve_assets_def("conversation_batches")
    schema = batches.metadata_by_key[batches.key]["dagster/column_schema"].schema
    assert [column.name for column in schema.columns] == SCHEMA.names
    assert schema.columns[0].type == "string" and not schema.columns[4].constraints.nullable
    assert batches.code_versions_by_key[batches.key].startswith("reader-v")
    raw = env.defs.resolve_assets_def("raw_export")
    assert raw.code_versions_by_key[raw.key] == "copy-v1"


def test_the_activity_picture_is_in_the_lake_and_the_metadata(env: Env) -> None:
    upload = env.upload("rosa", FILE_NAME, _export())
    result = env.run_import("rosa", upload)
    assert result.success
    metadata = _metadata(result, "quick_pass_soulprint")
    picture = Path(metadata["activity_path"])
    png = picture.read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) == metadata["activity_png_bytes"] > 0
    assert picture.parent == Path(metadata["path"])  # beside soulprint.json, in its version
    assert (picture.parent / "soulprint.json").exists()
    prefix = "![activity](data:image/png;base64,"
    assert metadata["activity"].startswith(prefix)
    assert base64.b64decode(metadata["activity"][len(prefix) : -1]) == png
    assert metadata["activity_messages"] == 12
    manifest = env.current("quick_pass_soulprint", "rosa")
    assert manifest["picture"] == str(picture)


def test_a_corrupt_soulprint_in_the_lake_blocks_the_memory(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = Lake.write_json

    def corrupting(self: Lake, version: Any, name: str, payload: Any) -> str:
        if name == "soulprint.json":
            payload = {**payload, "identity": {**payload["identity"], "ai_name": ["not", "a name"]}}
        return original(self, version, name, payload)

    monkeypatch.setattr(Lake, "write_json", corrupting)
    upload = env.upload("sam", "export.zip", _export())
    result = env.run_import("sam", upload)
    assert not result.success
    checks = _checks(result)
    assert not checks[SECTIONS_VALID].passed
    assert "identity.ai_name" in checks[SECTIONS_VALID].description
    assert not checks[MIRROR_AGREES].passed  # the row has the good soulprint, the lake not
    assert "soulprint" in checks[MIRROR_AGREES].metadata["differing"].value
    assert result.asset_materializations_for_node("quick_pass_soulprint")  # stored, then blocked
    assert not result.asset_materializations_for_node("memory_chunks")
    row = env.row("sam")
    assert row["import_status"] == "failed"
    assert row["import_error"] == (  # not "failed unexpectedly (DagsterAssetCheckFailedError)"
        "The import stopped at a quality check of its result (sections_valid, "
        "mirror_agrees_with_lake on quick_pass_soulprint): nothing past it reached the app. "
        "The team has been told."
    )


def test_a_mirror_changed_behind_the_pipeline_fails_its_check(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = ProgressTracker.complete

    def then_overwritten(self: ProgressTracker, fields: Any, *args: Any) -> None:
        original(self, fields, *args)
        if "ai_name" in fields:  # someone else writes the row right after the soulprint
            self.store.upsert(self.user_id, {"ai_name": "Somebody Else"})

    monkeypatch.setattr(ProgressTracker, "complete", then_overwritten)
    upload = env.upload("tom", "export.zip", _export())
    result = env.run_import("tom", upload)
    assert not result.success
    checks = _checks(result)
    assert checks[SECTIONS_VALID].passed and not checks[MIRROR_AGREES].passed
    assert checks[MIRROR_AGREES].metadata["differing"].value == "ai_name"
    assert "Somebody" not in env.metadata_and_logs(result.run_id)
    assert not result.asset_materializations_for_node("memory_chunks")


def test_rows_that_lose_a_conversation_block_the_soulprint(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = ExportReader._linearize

    def overcounting(self: ExportReader, item: dict[str, Any]) -> Any:
        conversation = original(self, item)
        if conversation is not None and conversation.conversation_id == "conv-3":
            return None  # a reader bug: counted as having messages, but no rows
        return conversation

    monkeypatch.setattr(ExportReader, "_linearize", overcounting)
    upload = env.upload("uma", "export.zip", _export())
    result = env.run_import("uma", upload)
    assert not result.success
    checks = _checks(result)
    assert not checks[CONVERSATIONS_COUNTED].passed
    assert checks[CONVERSATIONS_COUNTED].metadata["conversations_in_rows"].value == 11
    assert checks[CONVERSATIONS_COUNTED].metadata["reader_conversations_with_messages"].value == 12
    assert checks[ROWS_MATCH_SCHEMA].passed
    assert not result.asset_materializations_for_node("quick_pass_soulprint")
    assert "(conversations_counted on conversation_batches)" in env.row("uma")["import_error"]
