"""Tests for the ``user_profiles`` mirror: its column table, its backends and their registry.

SQLite and PostgreSQL run for real (PostgreSQL is a throwaway server from
``support/postgres.py``); Supabase REST is checked at the HTTP level with
``httpx.MockTransport``.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from soulprint_pipeline.errors import ConfigurationError
from soulprint_pipeline.mirror import registry
from soulprint_pipeline.mirror.columns import COLUMNS, MAX_IMPORT_ERROR_CHARS, PROFILE_COLUMNS
from soulprint_pipeline.mirror.postgres import PostgresProfileStore
from soulprint_pipeline.mirror.registry import open_profile_store, register_profile_store
from soulprint_pipeline.mirror.sqlite import SQLiteProfileStore
from soulprint_pipeline.mirror.store import ProfileStore, ProfileStoreError
from soulprint_pipeline.mirror.supabase import SupabaseRestProfileStore

DEPLOY_SQL = Path(__file__).resolve().parents[2] / "deploy" / "user_profiles.sql"
SOULPRINT = {
    "soul": {"communication_style": "direct", "personality_traits": ["curious", "dry"]},
    "identity": {"ai_name": "Orla", "archetype": "quiet cartographer", "emoji": "🧭"},
    "user": {"interests": [], "name": "not enough data"},
}


# --------------------------------------------------------------------------------------------
# Helpers


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(kind, url) of an empty database for each real backend."""
    if request.param == "sqlite":
        return "sqlite", f"sqlite:///{tmp_path}/nested/profiles.sqlite3"
    return "postgres", request.getfixturevalue("postgres_profiles_url")


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> str:
    """A fresh PostgreSQL database per test (``postgres_profiles_url`` under a local name)."""
    return str(request.getfixturevalue("postgres_profiles_url"))


@pytest.fixture
def store(backend: tuple[str, str]) -> Iterator[ProfileStore]:
    """An open store on the backend, schema ensured."""
    with open_profile_store(backend[1], timeout=5) as opened:
        opened.ensure_schema()
        yield opened


def raw(kind: str, url: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one SQL statement outside the store (the app's view of the table)."""
    if kind == "sqlite":
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        try:
            return conn.execute(statement.replace("%s", "?"), params).fetchall()
        finally:
            conn.close()
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def table_columns(kind: str, url: str) -> list[str]:
    """Column names of user_profiles, in table order."""
    if kind == "sqlite":
        return [row[1] for row in raw(kind, url, "PRAGMA table_info(user_profiles)")]
    rows = raw(
        kind,
        url,
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_name = 'user_profiles' ORDER BY ordinal_position",
    )
    return [row[0] for row in rows]


def closed_port() -> int:
    """A local TCP port nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------------------------
# Both SQL backends, for real


def test_profile_columns_are_the_pipelines() -> None:
    assert PROFILE_COLUMNS[0] == "user_id"
    assert len(PROFILE_COLUMNS) == len(set(PROFILE_COLUMNS)) == 18
    assert {"soulprint", "soul_md", "tools_md", "ai_name", "archetype"} <= set(PROFILE_COLUMNS)


def test_ensure_schema_is_idempotent(backend: tuple[str, str]) -> None:
    kind, url = backend
    with open_profile_store(url) as store:
        store.ensure_schema()
        store.ensure_schema()
        store.upsert("u1", {"import_status": "processing"})
        store.ensure_schema()
        assert store.get("u1")["import_status"] == "processing"  # type: ignore[index]
    assert table_columns(kind, url) == list(PROFILE_COLUMNS)


def test_upsert_creates_then_updates_only_given_columns(store: ProfileStore) -> None:
    started = datetime(2025, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    store.upsert(
        "user-1",
        {
            "import_status": "processing",
            "import_stage": "Downloading export",
            "progress_percent": 5,
            "processing_started_at": started,
        },
    )
    first = store.get("user-1")
    assert first is not None
    assert set(first) == set(PROFILE_COLUMNS)
    assert first["user_id"] == "user-1"
    assert first["import_stage"] == "Downloading export"
    assert first["progress_percent"] == 5
    assert first["processing_started_at"] == started
    assert first["soulprint"] is None and first["import_error"] is None

    store.upsert("user-1", {"import_stage": "Parsing conversations", "progress_percent": 37})
    second = store.get("user-1")
    assert second is not None
    assert second["import_stage"] == "Parsing conversations"
    assert second["progress_percent"] == 37
    assert second["import_status"] == "processing"  # set earlier, not given now: kept
    assert second["processing_started_at"] == started
    assert second["updated_at"] >= first["updated_at"]

    store.upsert("user-2", {"import_status": "failed", "import_error": "bad byte 12"})
    assert store.get("user-1")["import_status"] == "processing"  # type: ignore[index]
    assert store.get("user-2")["import_error"] == "bad byte 12"  # type: ignore[index]


def test_upsert_if_writes_only_when_the_condition_holds(store: ProfileStore) -> None:
    assert store.upsert_if("user-1", {"ai_name": "Old"}, lambda: False) is False
    assert store.get("user-1") is None
    assert store.upsert_if("user-1", {"ai_name": "New"}, lambda: True) is True
    assert (store.get("user-1") or {})["ai_name"] == "New"


def test_upsert_if_asks_its_condition_after_another_writer_of_the_user_committed(
    backend: tuple[str, str], store: ProfileStore
) -> None:
    """Two runs of one user, each writing its soulprint if still the lake's current one: the
    second's question is answered only once the first's write is committed, so it sees it."""
    first_inside = threading.Event()
    seen_by_second: list[str | None] = []

    def first_condition() -> bool:
        first_inside.set()
        time.sleep(0.5)  # the other writer arrives meanwhile, and must wait
        return True

    def second_condition() -> bool:
        with open_profile_store(backend[1], timeout=5) as reader:
            seen_by_second.append((reader.get("user-1") or {}).get("ai_name"))
        return False

    first = threading.Thread(
        target=store.upsert_if, args=("user-1", {"ai_name": "First"}, first_condition)
    )
    first.start()
    assert first_inside.wait(10)
    with open_profile_store(backend[1], timeout=10) as other:
        assert other.upsert_if("user-1", {"ai_name": "Second"}, second_condition) is False
    first.join()
    assert seen_by_second == ["First"]
    assert (store.get("user-1") or {})["ai_name"] == "First"


def test_timestamps_are_aware_utc_and_updated_at_defaults_to_now(store: ProfileStore) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    store.upsert("u", {"import_status": "processing"})
    row = store.get("u")
    assert row is not None
    assert row["updated_at"].utcoffset() == timedelta(0)
    assert before <= row["updated_at"] <= datetime.now(UTC) + timedelta(seconds=1)

    paris = timezone(timedelta(hours=2))
    given = datetime(2024, 6, 1, 14, 0, tzinfo=paris)
    store.upsert("u", {"updated_at": given, "processing_started_at": datetime(2024, 6, 1, 9)})
    row = store.get("u")
    assert row is not None
    assert row["updated_at"] == given
    assert row["updated_at"].utcoffset() == timedelta(0)
    assert row["updated_at"].hour == 12
    assert row["processing_started_at"] == datetime(2024, 6, 1, 9, tzinfo=UTC)  # naive = UTC


def test_soulprint_dict_round_trips(store: ProfileStore) -> None:
    store.upsert(
        "u",
        {
            "import_status": "complete",
            "progress_percent": 100,
            "soulprint": SOULPRINT,
            "soulprint_text": "# Orla\nquiet cartographer",
            "identity_md": json.dumps(SOULPRINT["identity"]),
            "ai_name": "Orla",
            "archetype": "quiet cartographer",
            "total_conversations": 1234,
            "total_messages": 56789,
        },
    )
    row = store.get("u")
    assert row is not None
    assert row["soulprint"] == SOULPRINT
    assert json.loads(row["identity_md"]) == SOULPRINT["identity"]
    assert (row["ai_name"], row["archetype"]) == ("Orla", "quiet cartographer")
    assert (row["total_conversations"], row["total_messages"]) == (1234, 56789)

    store.upsert("u", {"soulprint": json.dumps({"v": 2})})  # a JSON string is stored as JSON
    assert store.get("u")["soulprint"] == {"v": 2}  # type: ignore[index]
    store.upsert("u", {"soulprint": None})
    assert store.get("u")["soulprint"] is None  # type: ignore[index]


def test_import_error_is_truncated_to_500(store: ProfileStore) -> None:
    store.upsert("u", {"import_status": "failed", "import_error": "x" * 5000})
    error = store.get("u")["import_error"]  # type: ignore[index]
    assert len(error) == MAX_IMPORT_ERROR_CHARS
    assert error.startswith("x" * 400)
    store.upsert("u", {"import_error": "y" * MAX_IMPORT_ERROR_CHARS})
    assert store.get("u")["import_error"] == "y" * MAX_IMPORT_ERROR_CHARS  # type: ignore[index]


def test_get_missing_returns_none(store: ProfileStore) -> None:
    assert store.get("nobody") is None
    store.upsert("somebody", {})
    assert store.get("nobody") is None
    row = store.get("somebody")
    assert row is not None
    assert row["import_status"] == "none" and row["progress_percent"] == 0  # column defaults


def test_ensure_schema_on_the_apps_existing_table(backend: tuple[str, str]) -> None:
    kind, url = backend
    if kind == "sqlite":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True)
    raw(
        kind,
        url,
        "CREATE TABLE user_profiles (user_id text PRIMARY KEY, email text, import_status text)",
    )
    raw(kind, url, "INSERT INTO user_profiles VALUES ('u1', 'a@example.com', 'quick_ready')")
    with open_profile_store(url) as store:
        store.ensure_schema()
        columns = table_columns(kind, url)
        assert set(PROFILE_COLUMNS) <= set(columns)
        assert "email" in columns
        row = store.get("u1")
        assert row is not None and row["import_status"] == "quick_ready"
        store.upsert("u1", {"import_status": "complete", "soulprint": SOULPRINT})
        store.upsert("u2", {"import_status": "processing"})
        store.ensure_schema()
    rows = raw(kind, url, "SELECT user_id, email, import_status FROM user_profiles ORDER BY 1")
    assert rows == [("u1", "a@example.com", "complete"), ("u2", None, "processing")]


def test_validation_errors(tmp_path: Path) -> None:
    with open_profile_store(f"sqlite:///{tmp_path}/p.sqlite3") as store:
        store.ensure_schema()
        with pytest.raises(ValueError, match="email"):
            store.upsert("u", {"email": "a@b"})
        with pytest.raises(ValueError, match="import_status"):
            store.upsert("u", {"import_status": "Processing failed"})
        with pytest.raises(TypeError, match="progress_percent"):
            store.upsert("u", {"progress_percent": "50"})
        with pytest.raises(ValueError, match="user_id"):
            store.upsert("u", {"user_id": "someone-else"})
        with pytest.raises(ValueError, match="user_id"):
            store.upsert("", {})
        assert store.get("u") is None  # nothing was written by the failed calls
        store.upsert("u", {"user_id": "u", "progress_percent": 250})
        assert store.get("u")["progress_percent"] == 100  # type: ignore[index]
        store.upsert("u", {"progress_percent": -3})
        assert store.get("u")["progress_percent"] == 0  # type: ignore[index]


# --------------------------------------------------------------------------------------------
# SQLite specifics


def test_sqlite_wal_parent_folder_and_threads(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "profiles.sqlite3"
    store = open_profile_store(f"sqlite:///{path}")
    assert isinstance(store, SQLiteProfileStore)
    assert path.parent.is_dir()
    store.ensure_schema()
    assert raw("sqlite", f"sqlite:///{path}", "PRAGMA journal_mode") == [("wal",)]

    def work(n: int) -> None:
        for percent in range(0, 50, 5):
            store.upsert(f"user-{n}", {"import_status": "processing", "progress_percent": percent})

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [store.get(f"user-{n}")["progress_percent"] for n in range(4)] == [45] * 4  # type: ignore[index]
    store.close()
    store.close()
    with pytest.raises(ProfileStoreError, match="closed"):
        store.get("user-0")


def test_sqlite_without_schema_is_a_store_error(tmp_path: Path) -> None:
    with (
        open_profile_store(f"sqlite:///{tmp_path}/p.sqlite3") as store,
        pytest.raises(ProfileStoreError, match=r"^SQLite upsert of user_profiles failed"),
    ):
        store.upsert("u", {"import_status": "processing"})


def test_sqlite_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with open_profile_store("sqlite:///data/profiles.sqlite3") as store:
        store.ensure_schema()
    assert (tmp_path / "data" / "profiles.sqlite3").is_file()


# --------------------------------------------------------------------------------------------
# PostgreSQL specifics


def test_postgres_existing_table_without_unique_user_id(pg_url: str) -> None:
    url = pg_url
    raw("postgres", url, "CREATE TABLE user_profiles (id bigserial PRIMARY KEY, user_id text)")
    raw("postgres", url, "INSERT INTO user_profiles (user_id) VALUES ('u1')")
    with open_profile_store(url) as store:
        store.ensure_schema()
        store.ensure_schema()
        store.upsert("u1", {"import_status": "processing"})
        store.upsert("u2", {"import_status": "processing"})
        store.upsert("u2", {"import_status": "complete"})
    indexes = raw(
        "postgres",
        url,
        "SELECT indexname FROM pg_indexes WHERE tablename = 'user_profiles' ORDER BY 1",
    )
    assert indexes == [("user_profiles_pkey",), ("user_profiles_user_id_key",)]
    rows = raw("postgres", url, "SELECT id, user_id, import_status FROM user_profiles ORDER BY 1")
    assert rows == [(1, "u1", "processing"), (2, "u2", "complete")]


def test_postgres_app_not_null_columns(pg_url: str) -> None:
    """An app column NOT NULL without default: existing rows still update; errors stay private."""
    url = pg_url
    raw(
        "postgres",
        url,
        "CREATE TABLE user_profiles (user_id text PRIMARY KEY, email text NOT NULL)",
    )
    raw("postgres", url, "INSERT INTO user_profiles VALUES ('u1', 'a@example.com')")
    with open_profile_store(url) as store:
        store.ensure_schema()
        store.upsert("u1", {"import_status": "complete", "soulprint": SOULPRINT})
        assert store.get("u1")["soulprint"] == SOULPRINT  # type: ignore[index]
        with pytest.raises(ProfileStoreError) as caught:
            store.upsert("u2", {"soulprint_text": "my private diary entry"})
    message = str(caught.value)
    assert message.startswith("PostgreSQL upsert of user_profiles failed: NotNullViolation [23502]")
    assert '"email"' in message
    assert "private diary" not in message  # the DETAIL line quotes the row: never kept


def test_postgres_deploy_migration(pg_url: str) -> None:
    url = pg_url
    migration = DEPLOY_SQL.read_text()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(migration)  # type: ignore[call-overload]
        conn.execute(migration)  # type: ignore[call-overload]
        rls = conn.execute(
            "SELECT relrowsecurity FROM pg_class WHERE oid = 'user_profiles'::regclass"
        ).fetchone()
    assert rls == (True,)
    assert table_columns("postgres", url) == list(PROFILE_COLUMNS)
    with open_profile_store(url) as store:  # usable without ensure_schema, and it agrees
        store.upsert("u", {"import_status": "processing", "soulprint": SOULPRINT})
        store.ensure_schema()
        assert store.get("u")["soulprint"] == SOULPRINT  # type: ignore[index]
    # and the migration applies cleanly on a table the store created
    raw("postgres", url, "DROP TABLE user_profiles")
    with open_profile_store(url) as store:
        store.ensure_schema()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(migration)  # type: ignore[call-overload]
    assert table_columns("postgres", url) == list(PROFILE_COLUMNS)


def pg_catalog(url: str) -> list[tuple[str, str, bool, str | None]]:
    """(name, type, NOT NULL, default) of each user_profiles column, in table order."""
    return [
        (name, sql_type, not_null, default)
        for name, sql_type, not_null, default in raw(
            "postgres",
            url,
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
            "pg_get_expr(d.adbin, d.adrelid) "
            "FROM pg_attribute a LEFT JOIN pg_attrdef d "
            "ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
            "WHERE a.attrelid = 'user_profiles'::regclass AND a.attnum > 0 "
            "AND NOT a.attisdropped ORDER BY a.attnum",
        )
    ]


def test_deploy_migration_adds_each_column_as_the_column_table_says() -> None:
    added = [
        line.removeprefix("ALTER TABLE public.user_profiles ADD COLUMN IF NOT EXISTS ")
        for line in DEPLOY_SQL.read_text().splitlines()
        if "ADD COLUMN" in line
    ]
    assert added == [f"{column.name} {column.postgres_type};" for column in COLUMNS]


def test_postgres_migration_and_store_make_the_same_table(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(DEPLOY_SQL.read_text())  # type: ignore[call-overload]
    migrated = pg_catalog(pg_url)
    raw("postgres", pg_url, "DROP TABLE user_profiles")
    with open_profile_store(pg_url) as store:
        store.ensure_schema()
    assert pg_catalog(pg_url) == migrated
    assert (
        migrated
        == [
            ("user_id", "text", True, None),  # NOT NULL as the primary key
            ("import_status", "text", True, "'none'::text"),
            ("import_stage", "text", False, None),
            ("progress_percent", "integer", True, "0"),
            ("import_error", "text", False, None),
            ("processing_started_at", "timestamp with time zone", False, None),
            ("updated_at", "timestamp with time zone", True, "now()"),
            ("total_conversations", "integer", False, None),
            ("total_messages", "integer", False, None),
            ("soulprint", "jsonb", False, None),
            *((name, "text", False, None) for name in PROFILE_COLUMNS[10:]),
        ]
    )


def test_sqlite_columns_follow_the_column_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/profiles.sqlite3"
    with open_profile_store(url) as store:
        store.ensure_schema()
    info = raw("sqlite", url, "PRAGMA table_info(user_profiles)")
    assert (
        [(row[1], row[2], bool(row[3]), row[4]) for row in info]
        == [
            ("user_id", "TEXT", False, None),
            ("import_status", "TEXT", True, "'none'"),
            ("import_stage", "TEXT", False, None),
            ("progress_percent", "INTEGER", True, "0"),
            ("import_error", "TEXT", False, None),
            ("processing_started_at", "TEXT", False, None),
            ("updated_at", "TEXT", False, None),  # SQLite cannot add a column defaulting to now
            ("total_conversations", "INTEGER", False, None),
            ("total_messages", "INTEGER", False, None),
            *((name, "TEXT", False, None) for name in PROFILE_COLUMNS[9:]),
        ]
    )


def test_postgres_store_creates_table_with_rls(pg_url: str) -> None:
    with open_profile_store(pg_url) as store:
        store.ensure_schema()
    rows = raw(
        "postgres",
        pg_url,
        "SELECT relrowsecurity FROM pg_class WHERE oid = 'user_profiles'::regclass",
    )
    assert rows == [(True,)]


def test_postgres_reconnects_after_a_broken_connection(pg_url: str) -> None:
    with open_profile_store(pg_url) as store:
        assert isinstance(store, PostgresProfileStore)
        store.ensure_schema()
        store.upsert("u", {"progress_percent": 10})
        raw(
            "postgres",
            pg_url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        store.upsert("u", {"progress_percent": 20})
        assert store.get("u")["progress_percent"] == 20  # type: ignore[index]


def test_postgres_down_is_a_quick_store_error() -> None:
    url = f"postgresql://pipeline:s3cret-pw@127.0.0.1:{closed_port()}/profiles"
    store = open_profile_store(url, timeout=2)  # connects lazily: opening does not fail
    assert isinstance(store, PostgresProfileStore)
    started = time.monotonic()
    with pytest.raises(ProfileStoreError) as caught:
        store.upsert("u", {"import_status": "processing"})
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert message.startswith("PostgreSQL upsert of user_profiles failed: OperationalError")
    assert "s3cret-pw" not in message
    with pytest.raises(ProfileStoreError, match="PostgreSQL read"):
        store.get("u")
    store.close()


# --------------------------------------------------------------------------------------------
# Supabase REST, at the HTTP level

SUPABASE_URL = "https://abcdefgh.supabase.co"
SERVICE_KEY = "service-role-key-sekret"


def supabase_store(handler: Any) -> tuple[SupabaseRestProfileStore, list[httpx.Request]]:
    """A Supabase store whose HTTP goes to ``handler``; also returns the requests it saw."""
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    store = SupabaseRestProfileStore(
        SUPABASE_URL, SERVICE_KEY, transport=httpx.MockTransport(record)
    )
    return store, seen


def _no_row_then_created(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=[]) if request.method == "PATCH" else httpx.Response(201)


def test_supabase_upsert_of_an_existing_row_is_one_patch() -> None:
    store, seen = supabase_store(lambda request: httpx.Response(200, json=[{"user_id": "u-1"}]))
    store.upsert("u-1", {"import_status": "complete", "progress_percent": 100})
    [request] = seen
    assert request.method == "PATCH"
    assert dict(request.url.params) == {"user_id": "eq.u-1", "select": "user_id"}
    assert "return=representation" in request.headers["prefer"]
    body = json.loads(request.content)
    assert body["import_status"] == "complete" and "user_id" not in body


def test_supabase_upsert_request() -> None:
    store, seen = supabase_store(_no_row_then_created)
    started = datetime(2025, 3, 1, 10, 30, tzinfo=UTC)
    store.ensure_schema()  # no-op: the migration creates the table
    assert seen == []
    store.upsert(
        "user-1",
        {
            "import_status": "processing",
            "progress_percent": 25,
            "import_stage": "Parsing conversations",
            "processing_started_at": started,
            "soulprint": SOULPRINT,
        },
    )
    patch, request = seen  # no row to update, so it is inserted
    assert patch.method == "PATCH"
    assert request.method == "POST"
    assert request.url.host == "abcdefgh.supabase.co"
    assert request.url.path == "/rest/v1/user_profiles"
    assert dict(request.url.params) == {"on_conflict": "user_id"}
    assert "resolution=merge-duplicates" in request.headers["prefer"]
    assert "return=minimal" in request.headers["prefer"]
    assert request.headers["apikey"] == SERVICE_KEY
    assert request.headers["authorization"] == f"Bearer {SERVICE_KEY}"
    assert request.headers["content-type"] == "application/json"
    [body] = json.loads(request.content)
    updated_at = datetime.fromisoformat(body.pop("updated_at"))
    assert updated_at.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - updated_at) < timedelta(seconds=30)
    assert body == {
        "user_id": "user-1",
        "import_status": "processing",
        "progress_percent": 25,
        "import_stage": "Parsing conversations",
        "processing_started_at": "2025-03-01T10:30:00+00:00",
        "soulprint": SOULPRINT,
    }


def test_supabase_http_error_names_the_status_not_the_key() -> None:
    def unauthorized(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            401, json={"message": "Invalid API key", "hint": f"got {SERVICE_KEY}"}
        )

    store, _ = supabase_store(unauthorized)
    with pytest.raises(ProfileStoreError) as caught:
        store.upsert("user-1", {"import_status": "failed", "import_error": "x"})
    message = str(caught.value)
    assert message.startswith("Supabase REST upsert of user_profiles failed: HTTP 401")
    assert "Invalid API key" in message
    assert SERVICE_KEY not in message
    with pytest.raises(ProfileStoreError, match="Supabase REST read of user_profiles .*HTTP 401"):
        store.get("user-1")


def test_supabase_error_details_are_not_repeated() -> None:
    def not_null(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            400,
            json={
                "code": "23502",
                "message": 'null value in column "email" violates not-null constraint',
                "details": "Failing row contains (u, my private diary entry).",
            },
        )

    store, _ = supabase_store(not_null)
    with pytest.raises(ProfileStoreError) as caught:
        store.upsert("u", {"soulprint_text": "my private diary entry"})
    assert "HTTP 400 (23502: null value" in str(caught.value)
    assert "private diary" not in str(caught.value)


def test_supabase_transport_error() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    store, _ = supabase_store(down)
    with pytest.raises(ProfileStoreError, match="Supabase REST upsert .*ConnectError"):
        store.upsert("u", {})


def test_supabase_get_parses_the_row() -> None:
    row = {
        "user_id": "user-1",
        "email": "app-column@example.com",
        "import_status": "complete",
        "import_stage": "Complete",
        "progress_percent": 100,
        "import_error": None,
        "processing_started_at": "2025-03-01T10:30:00.123+00:00",
        "updated_at": "2025-03-01T10:35:07.654321+00:00",
        "total_conversations": 12,
        "total_messages": 345,
        "soulprint": SOULPRINT,
        "soulprint_text": "# Orla",
        "ai_name": "Orla",
    }

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params["user_id"] == "eq.user-1":
            return httpx.Response(200, json=[row])
        return httpx.Response(200, json=[])

    store, seen = supabase_store(handler)
    got = store.get("user-1")
    request = seen[0]
    assert request.method == "GET"
    assert request.url.path == "/rest/v1/user_profiles"
    assert dict(request.url.params) == {"user_id": "eq.user-1", "select": "*"}
    assert request.headers["apikey"] == SERVICE_KEY
    assert got is not None
    assert set(got) == set(PROFILE_COLUMNS)  # the app's other columns are not ours to return
    assert got["soulprint"] == SOULPRINT
    assert got["processing_started_at"] == datetime(2025, 3, 1, 10, 30, 0, 123000, tzinfo=UTC)
    assert got["updated_at"].utcoffset() == timedelta(0)
    assert got["progress_percent"] == 100
    assert got["tools_md"] is None  # absent from the response
    assert store.get("someone-else") is None
    store.close()


def test_supabase_soulprint_in_a_text_column_is_parsed() -> None:
    row = {"user_id": "u", "soulprint": json.dumps(SOULPRINT), "updated_at": None}
    store, _ = supabase_store(lambda request: httpx.Response(200, json=[row]))
    assert store.get("u")["soulprint"] == SOULPRINT  # type: ignore[index]


# --------------------------------------------------------------------------------------------
# open_profile_store


def test_open_profile_store_dispatch(tmp_path: Path) -> None:
    sqlite_store = open_profile_store(f"sqlite:///{tmp_path}/x/p.sqlite3")
    assert isinstance(sqlite_store, SQLiteProfileStore)
    sqlite_store.close()
    for url in ("postgresql://u@127.0.0.1:1/db", "postgres://u@127.0.0.1:1/db"):
        store = open_profile_store(url)
        assert isinstance(store, PostgresProfileStore)
        store.close()
    supabase = open_profile_store(SUPABASE_URL + "/", service_role_key=SERVICE_KEY)
    assert isinstance(supabase, SupabaseRestProfileStore)
    assert supabase.url == SUPABASE_URL
    supabase.close()


class DictStore(ProfileStore):
    """A backend kept in a dict, registered for ``memory://`` by the registry test."""

    backend = "memory"

    def __init__(self, url: str) -> None:
        self.url = url
        self.rows: dict[str, dict[str, Any]] = {}

    @classmethod
    def from_url(
        cls, url: str, *, service_role_key: str | None = None, timeout: float = 10.0
    ) -> DictStore:
        return cls(url)

    def ensure_schema(self) -> None:
        pass

    def upsert(self, user_id: str, fields: Mapping[str, Any]) -> None:
        self.rows.setdefault(user_id, {}).update(fields)

    def get(self, user_id: str) -> dict[str, Any] | None:
        return self.rows.get(user_id)

    def close(self) -> None:
        pass


def test_a_registered_backend_opens_by_its_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_registered", {})
    register_profile_store("memory", DictStore)
    with open_profile_store("MEMORY://profiles") as store:
        assert isinstance(store, DictStore)
        assert store.url == "MEMORY://profiles"  # schemes are case-insensitive
    with pytest.raises(ValueError, match="already registered for memory://"):
        register_profile_store("memory", DictStore)
    with pytest.raises(ValueError, match="already registered for sqlite://"):
        register_profile_store("sqlite", DictStore)
    register_profile_store("sqlite", DictStore, clobber=True)
    assert isinstance(open_profile_store("sqlite:///unused.sqlite3"), DictStore)


def test_the_sqlite_default_does_not_load_the_other_backends(tmp_path: Path) -> None:
    opens_sqlite = (
        "import sys\n"
        "from soulprint_pipeline.mirror.registry import open_profile_store\n"
        f"open_profile_store('sqlite:///{tmp_path}/p.sqlite3').ensure_schema()\n"
        "print(sorted(m for m in ('psycopg', 'httpx') if m in sys.modules))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", opens_sqlite], capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "[]"


def test_open_profile_store_errors() -> None:
    with pytest.raises(ConfigurationError, match="service role key"):
        open_profile_store(SUPABASE_URL)
    with pytest.raises(ConfigurationError, match="service role key"):
        open_profile_store(SUPABASE_URL, service_role_key="")
    with pytest.raises(ConfigurationError, match="unsupported URL mysql://"):
        open_profile_store("mysql://root:hunter2@db/profiles")
    with pytest.raises(ConfigurationError) as caught:
        open_profile_store("mysql://root:hunter2@db/profiles")
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ConfigurationError, match="unsupported"):
        open_profile_store("profiles.sqlite3")
    with pytest.raises(ConfigurationError, match="sqlite:///"):
        open_profile_store("sqlite://relative.sqlite3")
