"""The per-user asset graph, run through Dagster on real files and a real instance."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from soulprint_pipeline.defs.assets import quick_pass_soulprint, raw_export
from soulprint_pipeline.export.containers import MiB
from soulprint_pipeline.export.reader import ExportReader
from soulprint_pipeline.lake.store import Lake
from soulprint_pipeline.soulprint.sections import SECTION_NAMES
from soulprint_pipeline.testing.synthetic import write_export
from soulprint_pipeline_tests.support.env import Env
from soulprint_pipeline_tests.support.exports import chatgpt_export_bytes, zip_bytes


def _export(tmp_path: Path, seed: int, size: int = 2 * MiB, fmt: str = "zip") -> bytes:
    path = tmp_path / f"generated-{seed}.{fmt}"
    write_export(str(path), fmt=fmt, target_bytes=size, seed=seed)
    return path.read_bytes()


def _progress(env: Env, run_id: str) -> list[tuple[str, int]]:
    records = env.instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_OBSERVATION)
    seen = []
    for record in records:
        metadata = record.dagster_event.event_specific_data.asset_observation.metadata
        if "progress_percent" in metadata:
            seen.append((metadata["stage"].value, metadata["progress_percent"].value))
    return seen


def test_two_users_side_by_side(env: Env, tmp_path: Path) -> None:
    alice = env.upload("alice", "export.zip", _export(tmp_path, seed=1))
    bob = env.upload("bob", "conversations.json", _export(tmp_path, seed=2, fmt="json"))
    for user_id, upload in (("alice", alice), ("bob", bob)):
        result = env.run_import(user_id, upload)
        assert result.success
        expected = ExportReader(str(upload))
        for _ in expected.batches():
            pass
        row = env.row(user_id)
        assert row["import_status"] == "complete" and row["progress_percent"] == 100
        assert row["import_stage"] == "Complete" and row["import_error"] is None
        assert row["total_messages"] == expected.stats.rows
        assert row["total_conversations"] == expected.stats.conversations
        assert set(row["soulprint"]) == set(SECTION_NAMES)
        assert row["ai_name"] and row["ai_name"].lower() != "assistant"
        assert "## Soul" in row["soulprint_text"]
        assert json.loads(row["identity_md"])["ai_name"] == row["ai_name"]
        parsed = result.asset_materializations_for_node("conversation_batches")[0]
        assert parsed.partition == user_id
        assert parsed.metadata["messages"].value == expected.stats.messages
        assert parsed.metadata["conversations"].value == expected.stats.conversations
    # no cross-talk: each user's lake holds their own copy and their own rows
    assert (env.lake / "raw_export" / "alice").exists() and (
        env.lake / "raw_export" / "bob"
    ).exists()
    assert env.row("alice")["total_messages"] != env.row("bob")["total_messages"]


def test_progress_is_monotone_and_complete(env: Env, tmp_path: Path) -> None:
    upload = env.upload("carol", "export.zip", _export(tmp_path, seed=3))
    result = env.run_import("carol", upload)
    assert result.success
    progress = _progress(env, result.run_id)
    percents = [percent for _, percent in progress]
    assert percents == sorted(percents)
    assert percents[0] == 0 and percents[-1] == 100
    stages = list(dict.fromkeys(stage for stage, _ in progress))
    assert stages == [
        "Downloading export",
        "Parsing conversations",
        "Generating soulprint",
        "Creating memory chunks",
        "Complete",
    ]
    assert ("Creating memory chunks", 80) in progress  # the soulprint is saved at 80 %


def test_rerun_replaces_every_output(env: Env, tmp_path: Path) -> None:
    first = env.upload("dave", "a.zip", _export(tmp_path, seed=4))
    assert env.run_import("dave", first).success
    before = env.current("conversation_batches", "dave")
    second = env.upload("dave", "b.json.gz", gzip.compress(chatgpt_export_bytes(7)))
    assert env.run_import("dave", second).success
    after = env.current("conversation_batches", "dave")
    assert after["version"] != before["version"] and after["rows"] == 14
    for asset in ("raw_export", "conversation_batches", "quick_pass_soulprint"):
        versions = [p for p in (env.lake / asset / "dave").iterdir() if p.name != "current"]
        # the replaced version is kept for SOULPRINT_LAKE_KEEP_SECONDS (another writer may be
        # reading it); every version is complete, and a sweep past that time removes it
        assert len(versions) == 2, asset
        assert all((version / "MANIFEST.json").exists() for version in versions), asset
    assert env.row("dave")["total_messages"] == 14
    removed = Lake(str(env.lake), keep_seconds=0).sweep().versions
    assert removed == 3
    for asset in ("raw_export", "conversation_batches", "quick_pass_soulprint"):
        (kept,) = [p.name for p in (env.lake / asset / "dave").iterdir() if p.name != "current"]
        current = env.current(asset, "dave")
        assert kept == current["version"], asset


def test_without_a_tag_the_newest_upload_is_imported(env: Env, tmp_path: Path) -> None:
    env.upload("erin", "old.json", chatgpt_export_bytes(2))
    newest = env.upload("erin", "new.json", chatgpt_export_bytes(5))
    newest.touch()
    assert env.rematerialize("erin").success
    assert env.row("erin")["total_messages"] == 10


BAD_UPLOADS = {
    "not-an-export": (b"<!DOCTYPE html><html>login</html>", "looks like an HTML page"),
    "truncated": (chatgpt_export_bytes(30)[:-50], "cut short"),
    "invalid-json": (
        chatgpt_export_bytes(30).replace(b'"current_node"', b'"current_node" ]', 1),
        "not valid JSON",
    ),
    "empty": (b"[]", "no conversations"),
    "zip-bomb": (zip_bytes({"conversations.json": b"[" + b" " * (64 * MiB) + b"]"}), "bomb"),
    "no-conversations-zip": (zip_bytes({"user.json": b"{}"}), "no conversations.json"),
    "latin1": (chatgpt_export_bytes(3).replace(b"question 0", b"questi\xf3n 0"), "UTF-8"),
}


@pytest.mark.parametrize("case", sorted(BAD_UPLOADS))
def test_each_bad_input_ends_failed_with_its_message(env: Env, case: str) -> None:
    data, expected = BAD_UPLOADS[case]
    upload = env.upload(f"user-{case}", "upload.bin", data)
    result = env.run_import(f"user-{case}", upload)
    assert not result.success
    row = env.row(f"user-{case}")
    assert row["import_status"] == "failed"
    assert expected in row["import_error"], row["import_error"]
    assert "question" not in row["import_error"] and "answer" not in row["import_error"]


def test_missing_upload_fails_clearly(env: Env) -> None:
    result = env.run_import("frank")
    assert not result.success
    assert "No export has been uploaded for user frank" in env.row("frank")["import_error"]


def test_a_complete_user_stays_complete_through_reruns(env: Env, tmp_path: Path) -> None:
    upload = env.upload("gina", "export.zip", _export(tmp_path, seed=5))
    assert env.run_import("gina", upload).success
    good = env.row("gina")
    # a backfill of the soulprint alone: the row never leaves `complete`
    result = env.rematerialize("gina", [quick_pass_soulprint])
    assert result.success
    assert _progress(env, result.run_id)  # progress still shows in Dagster
    again = env.row("gina")
    assert again["import_status"] == "complete" and again["progress_percent"] == 100
    assert again["soulprint"] == good["soulprint"]
    # a re-run that fails (the uploads are gone) leaves the last good soulprint in place
    shutil.rmtree(env.uploads / "gina")
    assert not env.run_import("gina").success
    after = env.row("gina")
    assert after["import_status"] == "complete" and after["soulprint"] == good["soulprint"]
    assert after["import_error"] is None


def test_invalid_user_id_is_rejected_before_any_path(env: Env, tmp_path: Path) -> None:
    result = env.rematerialize("../etc", [raw_export])
    assert not result.success
    assert not (tmp_path / "etc").exists()


def test_definitions_validate(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("dagster")),
            "definitions",
            "validate",
            "-w",
            "workspace.yaml",
        ],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[2],
        env={**os.environ, "DAGSTER_HOME": str(tmp_path)},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
