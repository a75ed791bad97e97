"""The ``soulprint-pipeline`` console script, run as a person would run it: installed, in a
subprocess, with the documented environment variables set or unset."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import psycopg
import pyarrow.parquet as pq
import pytest

from soulprint_pipeline_tests.support.cli import CONSOLE_SCRIPT, environment, run_cli
from soulprint_pipeline_tests.support.exports import chatgpt_export_bytes, zip_bytes


def _assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, (result.stdout[-2000:], result.stderr[-2000:])
    assert "Traceback" not in result.stdout + result.stderr
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("soulprint-pipeline: "), errors
    for word in words:
        assert word in errors[0]


def test_parse_writes_parts_and_prints_one_summary_line(tmp_path: Path) -> None:
    (export := tmp_path / "conversations.json").write_bytes(chatgpt_export_bytes(40))
    result = run_cli("parse", str(export), "--out", str(tmp_path / "parts"))
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
    result = run_cli("parse", str(export), "--out", str(tmp_path / "parts"))
    _assert_one_line_error(result, "cut short")
    assert result.stdout == ""


def test_parse_with_workers_reads_a_sharded_export_as_one_process_does(tmp_path: Path) -> None:
    shards = {f"conversations-{i:03d}.json": chatgpt_export_bytes(10 + i) for i in range(3)}
    (export := tmp_path / "export.zip").write_bytes(zip_bytes(shards))
    summaries = []
    for workers in ("1", "2"):
        out = tmp_path / f"parts-{workers}"
        result = run_cli("parse", str(export), "--out", str(out), "--workers", workers)
        assert result.returncode == 0, result.stderr
        summaries.append(json.loads(result.stdout))
        assert pq.read_table(out).num_rows == 2 * (10 + 11 + 12)
    one, two = summaries
    for key in ("conversations", "messages", "rows", "documents", "roles", "skipped"):
        assert one[key] == two[key]


def _import(tmp_path: Path, env: dict[str, str], user: str = "u1") -> subprocess.CompletedProcess:
    (export := tmp_path / "export.zip").write_bytes(
        zip_bytes({"conversations.json": chatgpt_export_bytes(12)})
    )
    return run_cli("import", str(export), "--user", user, cwd=tmp_path, env=env)


def _assert_imported(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-2000:])
    assert "Traceback" not in result.stdout + result.stderr
    assert "u1: 100%  Complete" in result.stdout
    assert '"import_status": "complete"' in result.stdout
    [picture] = [line for line in result.stdout.splitlines() if line.startswith("activity pic")]
    assert Path(picture.split(": ", 1)[1]).read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("form", ["unset", "sqlite relative", "sqlite absolute"])
def test_import_with_the_mirror_unset_or_a_sqlite_url(tmp_path: Path, form: str) -> None:
    env = {
        "unset": {},
        "sqlite relative": {"SOULPRINT_PROFILES_URL": "sqlite:///mirror/profiles.sqlite3"},
        "sqlite absolute": {"SOULPRINT_PROFILES_URL": f"sqlite:///{tmp_path}/abs.sqlite3"},
    }[form]
    result = _import(tmp_path, env)
    _assert_imported(result)
    database = {
        "unset": tmp_path / "data/user_profiles.sqlite3",
        "sqlite relative": tmp_path / "mirror/profiles.sqlite3",
        "sqlite absolute": tmp_path / "abs.sqlite3",
    }[form]
    with sqlite3.connect(database) as connection:
        row = connection.execute(
            "SELECT import_status, total_conversations FROM user_profiles WHERE user_id = 'u1'"
        ).fetchone()
    assert row == ("complete", 12)


def test_import_with_a_postgres_mirror(tmp_path: Path, postgres_profiles_url: str) -> None:
    _assert_imported(_import(tmp_path, {"SOULPRINT_PROFILES_URL": postgres_profiles_url}))
    with psycopg.connect(postgres_profiles_url) as connection:
        row = connection.execute(
            "SELECT import_status, progress_percent FROM user_profiles WHERE user_id = 'u1'"
        ).fetchone()
    assert row == ("complete", 100)


@pytest.mark.parametrize("form", ["path", "file URL"])
def test_import_with_uploads_and_lake_configured(tmp_path: Path, form: str) -> None:
    lake, uploads, memory = tmp_path / "my lake", tmp_path / "bucket", tmp_path / "my memory"
    as_setting = (lambda p: str(p)) if form == "path" else (lambda p: p.as_uri())
    env = {
        "SOULPRINT_LAKE_URL": as_setting(lake),
        "SOULPRINT_UPLOADS_URL": as_setting(uploads),
        "SOULPRINT_MEMORY_URL": as_setting(memory),
        "SOULPRINT_PROFILES_URL": f"sqlite:///{tmp_path}/p.sqlite3",
        "DAGSTER_HOME": str(tmp_path / "home"),
    }
    _assert_imported(_import(tmp_path, env))
    assert list((lake / "conversation_batches" / "u1").rglob("*.parquet"))
    assert list((memory / "memory_chunks.lance").rglob("*.lance"))
    assert (tmp_path / "home" / "dagster.yaml").exists()
    assert not (tmp_path / "data").exists()  # nothing fell back to the embedded defaults


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"SOULPRINT_PROFILES_URL": "user_profiles.sqlite3"}, ["SOULPRINT_PROFILES_URL"]),
        ({"SOULPRINT_PROFILES_URL": "https://x.supabase.co"}, ["SUPABASE_SERVICE_ROLE_KEY"]),
        ({"SOULPRINT_TOKEN_BUDGET": "lots"}, ["SOULPRINT_TOKEN_BUDGET", "whole number"]),
        ({"SOULPRINT_PARSE_WORKERS": "0"}, ["SOULPRINT_PARSE_WORKERS", "at least 1"]),
        ({"SOULPRINT_EMBEDDER": "magic"}, ["SOULPRINT_EMBEDDER", "offline"]),
        (
            {"SOULPRINT_EMBEDDER": "bedrock", "SOULPRINT_EMBEDDING_DIMENSION": "300"},
            ["SOULPRINT_EMBEDDING_DIMENSION", "1024"],
        ),
        ({"SOULPRINT_MEMORY_MAX_TOKENS": "0"}, ["SOULPRINT_MEMORY_MAX_TOKENS", "at least 1"]),
    ],
)
def test_bad_configuration_exits_2_with_one_line(
    tmp_path: Path, env: dict[str, str], words: list[str]
) -> None:
    _assert_one_line_error(_import(tmp_path, env), *words)


def test_import_of_a_bad_export_prints_its_reason_and_no_traceback(tmp_path: Path) -> None:
    (export := tmp_path / "notes.json").write_text('{"notes": "not an export"}')
    result = run_cli("import", str(export), "--user", "u1", cwd=tmp_path)
    _assert_one_line_error(result, "not a ChatGPT or Claude export")
    assert '"import_status": "failed"' in result.stdout


def test_an_invalid_user_id_exits_2(tmp_path: Path) -> None:
    (export := tmp_path / "export.json").write_bytes(chatgpt_export_bytes(2))
    result = run_cli("import", str(export), "--user", "../etc", cwd=tmp_path)
    _assert_one_line_error(result, "user id")


def test_parse_shows_a_progress_bar_on_a_terminal_and_only_the_summary_on_stdout(
    tmp_path: Path,
) -> None:
    import fcntl
    import pty
    import struct
    import termios

    (export := tmp_path / "conversations.json").write_bytes(chatgpt_export_bytes(400))
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    result = subprocess.run(
        [str(CONSOLE_SCRIPT), "parse", str(export), "--out", str(tmp_path / "parts")],
        stdout=subprocess.PIPE,
        stderr=terminal,
        timeout=120,
        env=environment(),
    )
    os.close(terminal)
    shown = b""
    while True:
        try:
            data = os.read(controller, 65536)
        except OSError:  # the terminal is closed and drained
            break
        if not data:
            break
        shown += data
    os.close(controller)
    assert result.returncode == 0
    assert json.loads(result.stdout)["conversations"] == 400  # stdout: the summary alone
    assert b"parsing: 100%" in shown and b"B/s" in shown
