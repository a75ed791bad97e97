"""The ``soulprint-pipeline parse`` command, run as a person would run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from soulprint_pipeline_tests.conftest import chatgpt_export_bytes, zip_bytes


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "soulprint_pipeline.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_parse_writes_parts_and_prints_one_summary_line(tmp_path: Path) -> None:
    (export := tmp_path / "conversations.json").write_bytes(chatgpt_export_bytes(40))
    result = _run("parse", str(export), "--out", str(tmp_path / "parts"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert summary["format"] == "chatgpt" and summary["container"] == "json"
    assert summary["conversations"] == 40 and summary["messages"] == 80
    assert summary["bytes_read"] == export.stat().st_size
    assert summary["backend"] == "yajl2_c"
    assert summary["skipped"] == {}
    table = pq.read_table(tmp_path / "parts")
    assert table.num_rows == 80
    assert table.column_names == [
        "conversation_id",
        "conversation_title",
        "conversation_created_at",
        "message_id",
        "position",
        "role",
        "content_type",
        "text",
        "created_at",
        "model_slug",
    ]


def test_bad_export_exits_2_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    (export := tmp_path / "export.json").write_bytes(chatgpt_export_bytes(40)[:-100])
    result = _run("parse", str(export), "--out", str(tmp_path / "parts"))
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "cut short" in result.stderr and "Traceback" not in result.stderr


def test_parse_with_workers_reads_a_sharded_export_as_one_process_does(tmp_path: Path) -> None:
    shards = {f"conversations-{i:03d}.json": chatgpt_export_bytes(10 + i) for i in range(3)}
    (export := tmp_path / "export.zip").write_bytes(zip_bytes(shards))
    summaries = []
    for workers in ("1", "2"):
        out = tmp_path / f"parts-{workers}"
        result = _run("parse", str(export), "--out", str(out), "--workers", workers)
        assert result.returncode == 0, result.stderr
        summaries.append(json.loads(result.stdout))
        assert pq.read_table(out).num_rows == 2 * (10 + 11 + 12)
    one, two = summaries
    for key in ("conversations", "messages", "rows", "documents", "roles", "skipped"):
        assert one[key] == two[key]
