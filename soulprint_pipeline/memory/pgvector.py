"""Memory chunks in PostgreSQL with pgvector (``postgresql://...``), Supabase's included.

Two tables, made by :meth:`PgvectorStore.ensure_schema` or by ``deploy/memory_chunks.sql``
(the same tables; a test checks that they agree):

* ``memory_chunks``: the live chunks, primary key ``(user_id, chunk_id)``, with an HNSW index
  on the embedding for cosine distance;
* ``memory_chunks_staging``: the same columns and the ``build_key``, no vector index; a build
  appends here (with ``COPY``) and :meth:`PgvectorStore.publish` moves its rows to the live
  table in one transaction.

The embedding column is ``vector(N)``: one table holds one dimension, and a store opened for
another is refused rather than left to fail row by row.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import numpy as np
import psycopg
import pyarrow as pa
from pgvector.psycopg import register_vector
from psycopg import sql

from soulprint_pipeline.errors import ConfigurationError
from soulprint_pipeline.export.rows import UTC_MICROS
from soulprint_pipeline.memory.store import (
    BUILD_KEY,
    STAGING_TABLE,
    TABLE,
    MemoryStore,
    MemoryStoreError,
    Recalled,
    chunk_schema,
)
from soulprint_pipeline.mirror.store import postgres_error_text

_T = TypeVar("_T")

#: pgvector's HNSW index takes vectors of at most 2,000 dimensions.
MAX_DIMENSION = 2000
#: The index names ``deploy/memory_chunks.sql`` uses too.
EMBEDDING_INDEX = f"{TABLE}_embedding_idx"
STAGING_INDEX = f"{STAGING_TABLE}_user_id_build_key_idx"
#: The returned columns of a recalled chunk, in :class:`Recalled`'s order (score last).
RECALLED_COLUMNS = (
    "chunk_id",
    "conversation_id",
    "conversation_title",
    "conversation_created_at",
    "first_message_at",
    "last_message_at",
    "chunk_index",
    "text",
)


def _postgres_type(field: pa.Field, dimension: int) -> tuple[str, str]:
    """(type for DDL, type name for a binary COPY) of one Arrow chunk column."""
    if pa.types.is_fixed_size_list(field.type):
        return f"vector({dimension})", "vector"
    if field.type == pa.string():
        return "text", "text"
    if field.type == pa.int32():
        return "integer", "int4"
    if field.type == UTC_MICROS:
        return "timestamp with time zone", "timestamptz"
    raise TypeError(f"no PostgreSQL type for the chunk column {field.name} ({field.type})")


def column_definitions(dimension: int, *, staging: bool = False) -> list[tuple[str, str]]:
    """(name, SQL type with NOT NULL where the Arrow field is not nullable) of each column of
    the live table, or of the staging table (the same, then ``build_key``)."""
    fields = list(chunk_schema(dimension))
    if staging:
        fields.append(BUILD_KEY)
    return [
        (
            field.name,
            _postgres_type(field, dimension)[0] + ("" if field.nullable else " NOT NULL"),
        )
        for field in fields
    ]


def _copy_types(dimension: int) -> list[str]:
    fields = [*chunk_schema(dimension), BUILD_KEY]
    return [_postgres_type(field, dimension)[1] for field in fields]


def _create_table(name: str, dimension: int, *, staging: bool) -> sql.Composed:
    columns = [
        sql.SQL("{} {}").format(sql.Identifier(column), sql.SQL(definition))
        for column, definition in column_definitions(dimension, staging=staging)
    ]
    if not staging:
        columns.append(sql.SQL("PRIMARY KEY (user_id, chunk_id)"))
    return sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(
        sql.Identifier(name), sql.SQL(", ").join(columns)
    )


#: The dimension of a table's embedding column (pgvector keeps it as the type modifier).
_DIMENSION_OF = """
SELECT a.atttypmod
FROM pg_attribute a
WHERE a.attrelid = to_regclass(%s) AND a.attname = 'embedding' AND NOT a.attisdropped
"""


class PgvectorStore(MemoryStore):
    """Memory chunks in PostgreSQL with pgvector, through psycopg 3 (autocommit, lazy connect).

    One connection, opened on first use and reopened once if it turns out to be broken (a
    restarted server, a pooler that closed it while the chunks were being embedded). The
    schema is ensured on first use. Prepared statements are disabled so that Supabase's
    transaction pooler (PgBouncer / Supavisor) works.
    """

    def __init__(self, url: str, dimension: int, *, timeout: float = 10.0) -> None:
        if not 1 <= dimension <= MAX_DIMENSION:
            raise ConfigurationError(
                f"The memory embedding dimension must be between 1 and {MAX_DIMENSION} for "
                f"pgvector's index, not {dimension}."
            )
        self.url = url
        self.dimension = dimension
        self.timeout = timeout
        self._password = urlsplit(url).password
        self._lock = threading.RLock()
        self._conn: psycopg.Connection[Any] | None = None
        self._typed = False
        self._schema_ready = False
        self._iterative_scan = False
        self._closed = False

    # ----------------------------------------------------------------------------------------
    # Connection

    def _connect(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=max(1, round(self.timeout)),
                prepare_threshold=None,
            )
            self._typed = False
        if not self._schema_ready:
            self._create_schema(self._conn)
            self._schema_ready = True
        if not self._typed:
            # the vector type's oid is per database, so the adapters are per connection
            register_vector(self._conn)
            self._typed = True
        return self._conn

    def _discard(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None

    def _error(self, operation: str, error: psycopg.Error) -> MemoryStoreError:
        hint = ""
        if isinstance(error, psycopg.errors.InsufficientPrivilege):
            hint = " (run deploy/memory_chunks.sql as an owner first)"
        return MemoryStoreError(
            f"PostgreSQL {operation} of {TABLE} failed: "
            f"{postgres_error_text(error, (self._password,))}{hint}"
        )

    def _run(
        self,
        operation: str,
        work: Callable[[psycopg.Connection[Any]], _T],
        *,
        idempotent: bool = True,
    ) -> _T:
        with self._lock:
            if self._closed:
                raise MemoryStoreError(f"PostgreSQL {operation} of {TABLE} failed: store closed")
            if not idempotent:
                # Not retried once sent (its commit may have landed): make sure first that the
                # connection still works, which is what a long embedding run tends to break.
                self._run(operation, lambda conn: conn.execute("SELECT 1"))
            for attempt in (1, 2):
                try:
                    return work(self._connect())
                except psycopg.OperationalError as error:
                    broken = self._conn is not None and self._conn.broken
                    self._discard()
                    if idempotent and attempt == 1 and broken:
                        continue
                    raise self._error(operation, error) from error
                except psycopg.Error as error:
                    raise self._error(operation, error) from error
            raise AssertionError("unreachable")

    # ----------------------------------------------------------------------------------------
    # Schema

    def ensure_schema(self) -> None:
        """Create the vector extension and both tables if missing; refuse (ConfigurationError)
        tables whose embeddings have another dimension than this store's."""
        with self._lock:
            self._schema_ready = False
        self._run("schema check", lambda conn: None)

    def _create_schema(self, conn: psycopg.Connection[Any]) -> None:
        with conn.transaction():
            # Two workers starting at once would both try to create the tables.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{TABLE} schema",))
            version = conn.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
            ).fetchone()
            if version is None:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                version = conn.execute(
                    "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
                ).fetchone()
            self._iterative_scan = _version(version[0] if version else "") >= (0, 8)
            for table, staging in ((TABLE, False), (STAGING_TABLE, True)):
                found = conn.execute(_DIMENSION_OF, (table,)).fetchone()
                if found is None:
                    self._create_table(conn, table, staging=staging)
                elif found[0] != self.dimension:
                    have = "no fixed number of" if found[0] < 0 else f"{found[0]}"
                    raise ConfigurationError(
                        f"The memory table {table} holds embeddings of {have} values, but "
                        f"this pipeline makes embeddings of {self.dimension}: set the "
                        "embedder's dimension to match, or migrate the table (see "
                        "deploy/memory_chunks.sql)."
                    )

    def _create_table(self, conn: psycopg.Connection[Any], table: str, *, staging: bool) -> None:
        conn.execute(_create_table(table, self.dimension, staging=staging))
        # Supabase exposes public tables to its REST API: keep a new one closed.
        conn.execute(
            sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(sql.Identifier(table))
        )
        if staging:
            conn.execute(
                sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (user_id, build_key)").format(
                    sql.Identifier(STAGING_INDEX), sql.Identifier(table)
                )
            )
        else:
            # No index of its own on user_id: the primary key's leads with it.
            conn.execute(
                sql.SQL(
                    "CREATE INDEX IF NOT EXISTS {} ON {} USING hnsw (embedding vector_cosine_ops)"
                ).format(sql.Identifier(EMBEDDING_INDEX), sql.Identifier(table))
            )

    # ----------------------------------------------------------------------------------------
    # The interface

    def staged_hashes(self, user_id: str, build_key: str) -> set[str]:
        """The content hashes of the chunks already staged for this build of this user."""
        query = sql.SQL(
            "SELECT DISTINCT content_hash FROM {} WHERE user_id = %s AND build_key = %s"
        ).format(sql.Identifier(STAGING_TABLE))

        def work(conn: psycopg.Connection[Any]) -> set[str]:
            return {row[0] for row in conn.execute(query, (user_id, build_key)).fetchall()}

        return self._run("staging read", work)

    def discard_other_builds(self, user_id: str, build_key: str) -> int:
        """Drop the user's staged rows of any other build; returns how many were dropped."""
        query = sql.SQL("DELETE FROM {} WHERE user_id = %s AND build_key <> %s").format(
            sql.Identifier(STAGING_TABLE)
        )

        def work(conn: psycopg.Connection[Any]) -> int:
            return conn.execute(query, (user_id, build_key)).rowcount

        return self._run("staging cleanup", work)

    def stage(self, user_id: str, build_key: str, chunks: pa.RecordBatch) -> None:
        """Append embedded chunks (:func:`chunk_schema` columns) to this build's staging, in
        one ``COPY`` (all of the batch or none of it)."""
        table = _conform(chunks, self.dimension)
        if table.num_rows == 0:
            return
        users = set(table.column("user_id").unique().to_pylist())
        if users != {user_id}:
            raise ValueError(f"stage() for one user was given chunks of {len(users)} users")
        names = [*chunk_schema(self.dimension).names, BUILD_KEY.name]
        copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
            sql.Identifier(STAGING_TABLE),
            sql.SQL(", ").join(sql.Identifier(name) for name in names),
        )
        types = _copy_types(self.dimension)

        def work(conn: psycopg.Connection[Any]) -> None:
            with conn.cursor() as cursor, cursor.copy(copy_sql) as copy:
                copy.set_types(types)
                for batch in table.to_batches():
                    columns = [batch.column(i).to_pylist() for i in range(batch.num_columns - 1)]
                    embeddings = _embedding_matrix(batch.column(batch.num_columns - 1))
                    for row in zip(*columns, embeddings, strict=True):
                        copy.write_row((*row, build_key))

        self._run("staging write", work)

    def publish(self, user_id: str, build_key: str) -> int:
        """In one transaction: replace the user's live chunks with this build's staged ones and
        empty the user's staging. Returns the number of live chunks."""
        columns = sql.SQL(", ").join(
            sql.Identifier(name) for name in chunk_schema(self.dimension).names
        )
        live, staging = sql.Identifier(TABLE), sql.Identifier(STAGING_TABLE)
        delete_live = sql.SQL("DELETE FROM {} WHERE user_id = %s").format(live)
        # A staging write retried after its commit was lost in transit stages a chunk twice.
        insert = sql.SQL(
            "INSERT INTO {} ({}) SELECT DISTINCT ON (chunk_id) {} FROM {} "
            "WHERE user_id = %s AND build_key = %s ORDER BY chunk_id"
        ).format(live, columns, columns, staging)
        empty_staging = sql.SQL("DELETE FROM {} WHERE user_id = %s").format(staging)

        def work(conn: psycopg.Connection[Any]) -> int:
            with conn.transaction():
                # Two publishes for one user would both insert the same chunk ids.
                conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{TABLE} publish {user_id}",)
                )
                conn.execute(delete_live, (user_id,))
                published = conn.execute(insert, (user_id, build_key)).rowcount
                conn.execute(empty_staging, (user_id,))
            return published

        return self._run("publish", work, idempotent=False)

    def count(self, user_id: str) -> int:
        """How many live chunks the user has."""
        query = sql.SQL("SELECT count(*) FROM {} WHERE user_id = %s").format(sql.Identifier(TABLE))

        def work(conn: psycopg.Connection[Any]) -> int:
            row = conn.execute(query, (user_id,)).fetchone()
            return int(row[0]) if row else 0

        return self._run("count", work)

    def search(self, user_id: str, vector: list[float], k: int) -> list[Recalled]:
        """The user's ``k`` live chunks nearest to ``vector`` by cosine distance, best first;
        ``score`` is 1 - the distance (the cosine similarity)."""
        query_vector = np.asarray(vector, dtype=np.float32)
        if query_vector.shape != (self.dimension,):
            raise ValueError(
                f"search() needs a vector of {self.dimension} values, not {query_vector.size}"
            )
        if k <= 0:
            return []
        query = sql.SQL(
            "SELECT {}, 1 - (embedding <=> %s) FROM {} WHERE user_id = %s "
            "ORDER BY embedding <=> %s LIMIT %s"
        ).format(
            sql.SQL(", ").join(sql.Identifier(name) for name in RECALLED_COLUMNS),
            sql.Identifier(TABLE),
        )

        def work(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
            with conn.transaction():
                if self._iterative_scan:
                    # The HNSW index is shared by every user: without this, a scan of it
                    # finds ef_search candidates, filters out the other users' and can return
                    # fewer than k chunks of this one.
                    conn.execute("SET LOCAL hnsw.iterative_scan = strict_order")
                return conn.execute(query, (query_vector, user_id, query_vector, k)).fetchall()

        return [_recalled(row) for row in self._run("search", work)]

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._closed = True
            self._discard()


def _recalled(row: tuple[Any, ...]) -> Recalled:
    """A search row as :class:`Recalled`, its times in UTC whatever the session's time zone."""
    values = [value.astimezone(UTC) if isinstance(value, datetime) else value for value in row[:-1]]
    return Recalled(*values, score=float(row[-1]))


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _conform(chunks: pa.RecordBatch, dimension: int) -> pa.Table:
    """The chunk columns of ``chunks``, in order, cast to :func:`chunk_schema`'s types."""
    schema = chunk_schema(dimension)
    missing = [name for name in schema.names if name not in chunks.schema.names]
    if missing:
        raise ValueError(f"the chunks lack the column(s) {', '.join(missing)}")
    table = pa.Table.from_batches([chunks]).select(schema.names)
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise ValueError(
            f"the chunks do not fit the chunk schema of dimension {dimension}: {error}"
        ) from error


def _embedding_matrix(column: pa.Array) -> np.ndarray:
    """The embeddings of a fixed-size-list column as a (rows, dimension) float32 matrix."""
    width = column.type.list_size
    values = column.flatten().to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float32).reshape(len(column), width)


def from_url(url: str, dimension: int, *, timeout: float = 10.0) -> PgvectorStore:
    """The store at ``postgresql://...`` (or ``postgres://``) for embeddings of ``dimension``
    values; ``timeout`` is the connect timeout in seconds."""
    return PgvectorStore(url, dimension, timeout=timeout)
