"""Tests for the PostgreSQL + pgvector memory store, on a real server with pgvector.

The server is a throwaway one from ``support/pgvector.py``; the store is opened through the
public ``open_memory_store`` as the pipeline opens it. Vectors are hand-made unit vectors of
dimension 8, so that the expected order of a search is plain to see.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pytest

from soulprint_pipeline.errors import ConfigurationError
from soulprint_pipeline.memory.pgvector import PgvectorStore, column_definitions
from soulprint_pipeline.memory.store import (
    STAGING_TABLE,
    TABLE,
    MemoryStore,
    MemoryStoreError,
    chunk_schema,
    open_memory_store,
)

DIMENSION = 8
DEPLOY_SQL = Path(__file__).resolve().parents[2] / "deploy" / "memory_chunks.sql"
START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


# --------------------------------------------------------------------------------------------
# Helpers


def unit(*weights: float) -> list[float]:
    """A unit vector of DIMENSION values from its first few weights."""
    vector = np.zeros(DIMENSION, dtype=np.float64)
    vector[: len(weights)] = weights
    return [float(value) for value in vector / np.linalg.norm(vector)]


def chunks(user_id: str, ids_and_vectors: list[tuple[str, list[float]]]) -> pa.RecordBatch:
    """A batch of chunks (the chunk schema) with the given ids and embeddings."""
    n = len(ids_and_vectors)
    return pa.RecordBatch.from_pydict(
        {
            "user_id": [user_id] * n,
            "chunk_id": [chunk_id for chunk_id, _ in ids_and_vectors],
            "conversation_id": [f"conv-{chunk_id}" for chunk_id, _ in ids_and_vectors],
            "conversation_title": [None if i % 2 else f"Title {i}" for i in range(n)],
            "conversation_created_at": [START] * n,
            "first_message_at": [START + timedelta(minutes=i) for i in range(n)],
            "last_message_at": [None] * n,
            "chunk_index": list(range(n)),
            "text": [f"text of {chunk_id}" for chunk_id, _ in ids_and_vectors],
            "tokens": [10 + i for i in range(n)],
            "content_hash": [f"hash-{chunk_id}" for chunk_id, _ in ids_and_vectors],
            "embedding": [vector for _, vector in ids_and_vectors],
        },
        schema=chunk_schema(DIMENSION),
    )


def raw(url: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one SQL statement outside the store (the app's view of the tables)."""
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(statement, params)  # type: ignore[call-overload]
        return cursor.fetchall() if cursor.description else []


def live_ids(url: str, user_id: str) -> list[str]:
    """The user's live chunk ids, sorted."""
    rows = raw(url, f"SELECT chunk_id FROM {TABLE} WHERE user_id = %s ORDER BY 1", (user_id,))
    return [row[0] for row in rows]


@pytest.fixture
def url(pgvector_database_url: str) -> str:
    """A fresh, empty database on the pgvector server."""
    return pgvector_database_url


@pytest.fixture
def store(url: str) -> Iterator[MemoryStore]:
    """An open store of DIMENSION on the empty database."""
    with open_memory_store(url, DIMENSION, timeout=5) as opened:
        yield opened


# --------------------------------------------------------------------------------------------
# Staging and publishing


def test_the_registry_opens_a_pgvector_store_for_postgres_urls(url: str) -> None:
    with open_memory_store(url, DIMENSION) as store:
        assert isinstance(store, PgvectorStore)
        assert store.dimension == DIMENSION
    postgres_scheme = url.replace("postgresql://", "postgres://", 1)
    with open_memory_store(postgres_scheme, DIMENSION) as store:
        assert isinstance(store, PgvectorStore)
        assert store.count("nobody") == 0


def test_two_stages_then_publish_makes_them_the_live_memory(store: MemoryStore, url: str) -> None:
    database = raw(url, "SELECT current_database()")[0][0]
    raw(url, f"ALTER DATABASE \"{database}\" SET timezone = 'America/New_York'")  # not UTC
    store.stage("u1", "build-1", chunks("u1", [("a", unit(1)), ("b", unit(1, 1))]))
    store.stage("u1", "build-1", chunks("u1", [("c", unit(0, 1)), ("d", unit(-1))]))
    assert store.count("u1") == 0  # staged is not live

    assert store.publish("u1", "build-1") == 4
    assert store.count("u1") == 4
    assert raw(url, f"SELECT count(*) FROM {STAGING_TABLE}") == [(0,)]

    found = store.search("u1", unit(1), k=3)
    assert [r.chunk_id for r in found] == ["a", "b", "c"]
    assert [round(r.score, 5) for r in found] == [1.0, round(2**-0.5, 5), 0.0]
    assert found[0].text == "text of a"
    assert found[0].conversation_id == "conv-a"
    assert found[0].conversation_title == "Title 0"
    assert found[1].conversation_title is None
    assert found[0].conversation_created_at == START
    assert found[0].conversation_created_at.tzinfo == UTC
    assert found[1].first_message_at == START + timedelta(minutes=1)
    assert found[0].last_message_at is None
    assert found[1].chunk_index == 1
    # all of them when k is larger; nearest to the other side first
    assert [r.chunk_id for r in store.search("u1", unit(-1), k=10)] == ["d", "c", "b", "a"]
    assert store.search("u1", unit(1), k=0) == []
    assert store.search("someone-else", unit(1), k=3) == []


def test_staged_hashes_are_the_chunks_staged_for_that_build(store: MemoryStore) -> None:
    assert store.staged_hashes("u1", "build-1") == set()
    store.stage("u1", "build-1", chunks("u1", [("a", unit(1)), ("b", unit(0, 1))]))
    store.stage("u1", "build-1", chunks("u1", [("c", unit(0, 0, 1))]))
    store.stage("u1", "build-2", chunks("u1", [("z", unit(1))]))
    store.stage("u2", "build-1", chunks("u2", [("y", unit(1))]))
    assert store.staged_hashes("u1", "build-1") == {"hash-a", "hash-b", "hash-c"}
    assert store.staged_hashes("u1", "build-2") == {"hash-z"}
    assert store.staged_hashes("u2", "build-1") == {"hash-y"}


def test_a_second_build_replaces_the_first_and_leaves_other_users_alone(
    store: MemoryStore, url: str
) -> None:
    store.stage("u1", "old", chunks("u1", [("a", unit(1)), ("b", unit(0, 1))]))
    assert store.publish("u1", "old") == 2
    store.stage("u2", "theirs", chunks("u2", [("a", unit(1)), ("x", unit(0, 1))]))
    assert store.publish("u2", "theirs") == 2

    store.stage("u1", "new", chunks("u1", [("b", unit(1)), ("c", unit(0, 0, 1))]))
    assert store.publish("u1", "new") == 2

    assert live_ids(url, "u1") == ["b", "c"]  # a is gone, b is the new b
    assert live_ids(url, "u2") == ["a", "x"]
    assert [r.chunk_id for r in store.search("u1", unit(1), k=1)] == ["b"]
    assert [r.chunk_id for r in store.search("u2", unit(1), k=1)] == ["a"]


def test_publishing_a_chunk_staged_twice_keeps_one(store: MemoryStore) -> None:
    batch = chunks("u1", [("a", unit(1)), ("b", unit(0, 1))])
    store.stage("u1", "build", batch)
    store.stage("u1", "build", batch)  # as a staging write retried after a lost commit would
    assert store.publish("u1", "build") == 2
    assert store.count("u1") == 2


def test_discard_other_builds_drops_only_the_other_keys(store: MemoryStore, url: str) -> None:
    store.stage("u1", "current", chunks("u1", [("a", unit(1))]))
    store.stage("u1", "stale-1", chunks("u1", [("b", unit(1)), ("c", unit(1))]))
    store.stage("u1", "stale-2", chunks("u1", [("d", unit(1))]))
    store.stage("u2", "stale-1", chunks("u2", [("e", unit(1))]))

    assert store.discard_other_builds("u1", "current") == 3
    assert store.discard_other_builds("u1", "current") == 0
    assert store.staged_hashes("u1", "current") == {"hash-a"}
    assert store.staged_hashes("u1", "stale-1") == set()
    assert store.staged_hashes("u2", "stale-1") == {"hash-e"}  # another user's: kept


def test_stage_checks_its_batch(store: MemoryStore) -> None:
    store.stage("u1", "build", chunks("u1", []))  # nothing to do
    with pytest.raises(ValueError, match="users"):
        store.stage("u1", "build", chunks("u2", [("a", unit(1))]))
    wrong_width = pa.RecordBatch.from_pydict(
        {**chunks("u1", [("a", unit(1))]).to_pydict(), "embedding": [[1.0, 0.0]]}
    )
    with pytest.raises(ValueError, match="dimension 8"):
        store.stage("u1", "build", wrong_width)
    with pytest.raises(ValueError, match="8 values"):
        store.search("u1", [1.0, 0.0], k=1)
    assert store.staged_hashes("u1", "build") == set()


def test_search_through_the_shared_hnsw_index_still_finds_k_of_the_users_chunks(
    store: MemoryStore, url: str
) -> None:
    # The other users' chunks are all nearer the query than this user's are.
    rng = np.random.default_rng(7)
    for user in range(40):
        vectors = unit(1) + 0.1 * rng.normal(size=(50, DIMENSION))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        rows = [(f"c{i}", list(vector)) for i, vector in enumerate(vectors)]
        store.stage(f"user-{user}", "b", chunks(f"user-{user}", rows))
        store.publish(f"user-{user}", "b")
    mine = [(f"m{i}", unit(0.5 - i / 10, 1)) for i in range(5)]
    store.stage("me", "b", chunks("me", mine))
    store.publish("me", "b")
    # The planner picks the exact scan of the user's rows when it knows they are few; make it
    # take the HNSW index (shared by all users) with a tiny candidate list, as it might on a
    # table whose statistics are off: a plain index scan then finds 5 candidates, filters out
    # the other users' and returns almost none of this user's.
    database = raw(url, "SELECT current_database()")[0][0]
    raw(
        url,
        f'ALTER DATABASE "{database}" SET enable_seqscan = off; '
        f'ALTER DATABASE "{database}" SET enable_sort = off; '
        f'ALTER DATABASE "{database}" SET hnsw.ef_search = 5',
    )
    with open_memory_store(url, DIMENSION) as fresh:  # a new connection, with those settings
        found = fresh.search("me", unit(1), k=10)
    assert [r.chunk_id for r in found] == ["m0", "m1", "m2", "m3", "m4"]
    assert found[0].score == pytest.approx(0.5 / np.sqrt(1.25), abs=1e-6)
    with psycopg.connect(url) as conn:
        plan = conn.execute(
            f"EXPLAIN SELECT chunk_id FROM {TABLE} WHERE user_id = 'me' "
            f"ORDER BY embedding <=> '{unit(1)}' LIMIT 10"
        ).fetchall()
    assert "memory_chunks_embedding_idx" in "\n".join(row[0] for row in plan)


# --------------------------------------------------------------------------------------------
# Atomicity


def test_a_reader_sees_the_old_memory_until_the_publish_commits(
    store: MemoryStore, url: str
) -> None:
    store.stage("u1", "old", chunks("u1", [("old-1", unit(1)), ("old-2", unit(0, 1))]))
    store.publish("u1", "old")
    store.stage("u1", "new", chunks("u1", [(f"new-{i}", unit(1, i)) for i in range(3)]))

    # Hold the staged rows locked: the publish deletes the live rows, inserts the new ones,
    # then waits here, on emptying the staging, before it can commit.
    blocker = psycopg.connect(url)
    blocker.execute(f"SELECT 1 FROM {STAGING_TABLE} WHERE user_id = %s FOR UPDATE", ("u1",))
    result: list[int] = []
    errors: list[BaseException] = []

    def publish() -> None:
        try:
            result.append(store.publish("u1", "new"))
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    publisher = threading.Thread(target=publish)
    publisher.start()
    try:
        deadline = time.monotonic() + 30
        while not raw(
            url,
            "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
            (f"DELETE FROM %{STAGING_TABLE}%",),
        ):
            assert time.monotonic() < deadline, "the publish never reached the staging delete"
            assert publisher.is_alive(), errors
            time.sleep(0.05)
        # mid-publish: another connection sees all of the old memory, none of the new
        assert live_ids(url, "u1") == ["old-1", "old-2"]
    finally:
        blocker.rollback()
        blocker.close()
        publisher.join(timeout=30)
    assert not errors, errors
    assert result == [3]
    assert live_ids(url, "u1") == ["new-0", "new-1", "new-2"]


def test_a_repeatable_read_snapshot_keeps_the_old_memory_whole(
    store: MemoryStore, url: str
) -> None:
    store.stage("u1", "old", chunks("u1", [("old-1", unit(1)), ("old-2", unit(0, 1))]))
    store.publish("u1", "old")
    with psycopg.connect(url) as reader:
        reader.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        query = f"SELECT chunk_id FROM {TABLE} WHERE user_id = %s ORDER BY 1"
        assert [r[0] for r in reader.execute(query, ("u1",)).fetchall()] == ["old-1", "old-2"]
        store.stage("u1", "new", chunks("u1", [("new-1", unit(1))]))
        assert store.publish("u1", "new") == 1
        assert [r[0] for r in reader.execute(query, ("u1",)).fetchall()] == ["old-1", "old-2"]
        reader.commit()
        assert [r[0] for r in reader.execute(query, ("u1",)).fetchall()] == ["new-1"]


# --------------------------------------------------------------------------------------------
# Schema


def test_a_table_of_another_dimension_is_refused(url: str) -> None:
    with open_memory_store(url, DIMENSION) as store:
        store.stage("u1", "b", chunks("u1", [("a", unit(1))]))
    with open_memory_store(url, 16) as other:
        with pytest.raises(ConfigurationError, match="embeddings of 8 values.*16"):
            other.count("u1")
        with pytest.raises(ConfigurationError, match="embeddings of 8 values.*16"):
            other.ensure_schema()  # type: ignore[attr-defined]
    with open_memory_store(url, DIMENSION) as store:  # and the table is as it was
        assert store.staged_hashes("u1", "b") == {"hash-a"}


def test_a_dimension_pgvector_cannot_index_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="between 1 and 2000"):
        open_memory_store("postgresql://nowhere.invalid/db", 4096)


def test_ensure_schema_is_idempotent_and_enables_rls(url: str) -> None:
    with open_memory_store(url, DIMENSION) as store:
        assert isinstance(store, PgvectorStore)
        store.ensure_schema()
        store.stage("u1", "b", chunks("u1", [("a", unit(1))]))
        store.ensure_schema()
        assert store.staged_hashes("u1", "b") == {"hash-a"}
    rls = raw(
        url,
        "SELECT relname, relrowsecurity FROM pg_class WHERE relname IN (%s, %s) ORDER BY 1",
        (TABLE, STAGING_TABLE),
    )
    assert rls == [(TABLE, True), (STAGING_TABLE, True)]


def test_an_unreachable_server_is_a_memory_store_error_without_the_password() -> None:
    with (
        open_memory_store(
            "postgresql://pipeline:s3cret-pw@127.0.0.1:1/db", DIMENSION, timeout=1
        ) as store,
        pytest.raises(MemoryStoreError) as caught,
    ):
        store.count("u1")
    assert "s3cret-pw" not in str(caught.value)
    assert "PostgreSQL count of memory_chunks failed" in str(caught.value)
    assert caught.value.fixed_message and "memory" in caught.value.fixed_message
    with pytest.raises(MemoryStoreError, match="closed"):
        store.count("u1")


def sql_table_columns(table: str) -> list[tuple[str, str]]:
    """(name, definition) of each column of ``table`` in the CREATE TABLE of the migration,
    with a ``LIKE public.other`` read as the other table's columns."""
    text = DEPLOY_SQL.read_text()
    body = re.search(rf"CREATE TABLE IF NOT EXISTS public\.{table} \((.*?)\n\);", text, re.DOTALL)
    assert body, f"no CREATE TABLE for {table} in {DEPLOY_SQL.name}"
    columns: list[tuple[str, str]] = []
    for line in body.group(1).strip().splitlines():
        line = line.strip().rstrip(",")
        if line.startswith("LIKE public."):
            columns += sql_table_columns(line.removeprefix("LIKE public."))
        elif not line.startswith("PRIMARY KEY"):
            name, definition = line.split(" ", 1)
            columns.append((name, definition))
    return columns


def test_the_migration_declares_the_columns_of_the_chunk_schema() -> None:
    assert sql_table_columns(TABLE) == column_definitions(1024)
    assert sql_table_columns(STAGING_TABLE) == column_definitions(1024, staging=True)
    assert [name for name, _ in column_definitions(1024)] == chunk_schema(1024).names


def catalog(url: str) -> dict[str, Any]:
    """Columns (name, type, NOT NULL), constraints and indexes of both tables, as the server
    has them."""
    found: dict[str, Any] = {}
    for table in (TABLE, STAGING_TABLE):
        found[f"{table} columns"] = raw(
            url,
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull "
            "FROM pg_attribute a WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 "
            "AND NOT a.attisdropped ORDER BY a.attnum",
            (table,),
        )
        found[f"{table} constraints"] = raw(
            url,
            # not the NOT NULLs, which PostgreSQL 18 lists here too (the columns show them)
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = to_regclass(%s) AND contype <> 'n' ORDER BY 1",
            (table,),
        )
        found[f"{table} indexes"] = raw(
            url,
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s ORDER BY 1",
            (table,),
        )
        found[f"{table} rls"] = raw(
            url, "SELECT relrowsecurity FROM pg_class WHERE oid = to_regclass(%s)", (table,)
        )
    return found


def test_the_migration_and_ensure_schema_make_the_same_tables(url: str) -> None:
    migration = DEPLOY_SQL.read_text()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(migration)  # type: ignore[call-overload]
        conn.execute(migration)  # type: ignore[call-overload]
    migrated = catalog(url)
    raw(url, f"DROP TABLE {TABLE}, {STAGING_TABLE}")
    raw(url, "DROP EXTENSION vector")
    with open_memory_store(url, 1024) as store:
        assert isinstance(store, PgvectorStore)
        store.ensure_schema()
    assert catalog(url) == migrated

    columns = migrated[f"{TABLE} columns"]
    assert [name for name, _, _ in columns] == chunk_schema(1024).names
    assert ("embedding", "vector(1024)", True) in columns
    assert [name for name, _, _ in migrated[f"{STAGING_TABLE} columns"]] == [
        *chunk_schema(1024).names,
        "build_key",
    ]
    assert migrated[f"{TABLE} constraints"] == [
        (f"{TABLE}_pkey", "PRIMARY KEY (user_id, chunk_id)")
    ]
    indexes = dict(migrated[f"{TABLE} indexes"])
    assert "USING hnsw (embedding vector_cosine_ops)" in indexes[f"{TABLE}_embedding_idx"]
    assert [name for name, _ in migrated[f"{STAGING_TABLE} indexes"]] == [
        f"{STAGING_TABLE}_user_id_build_key_idx"
    ]

    # and the store works on the migration's tables
    raw(url, f"DROP TABLE {TABLE}, {STAGING_TABLE}")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(migration)  # type: ignore[call-overload]
    with open_memory_store(url, 1024) as store:
        store.stage("u1", "b", pa.RecordBatch.from_pylist([], schema=chunk_schema(1024)))
        assert store.publish("u1", "b") == 0
    with open_memory_store(url, DIMENSION) as other, pytest.raises(ConfigurationError):
        other.count("u1")
