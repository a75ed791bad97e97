"""``user_profiles`` in PostgreSQL (``postgresql://...``), Supabase's own Postgres included."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from soulprint_pipeline.mirror.columns import (
    COLUMNS,
    PROFILE_COLUMNS,
    TABLE,
    UNIQUE_INDEX,
    Kind,
    kind_of,
    normalize_fields,
    normalize_user_id,
    row_from_mapping,
)
from soulprint_pipeline.mirror.store import ProfileStore, ProfileStoreError, postgres_error_text

_T = TypeVar("_T")


class PostgresProfileStore(ProfileStore):
    """``user_profiles`` in PostgreSQL through psycopg 3 (autocommit, lazy connect).

    One connection, opened on first use and reopened once if it turns out to be broken (a
    restarted server, a pooler that closed it). Prepared statements are disabled so that
    Supabase's transaction pooler (PgBouncer / Supavisor) works.
    """

    backend = "PostgreSQL"

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url
        self.timeout = timeout
        self._password = urlsplit(url).password
        self._lock = threading.RLock()
        self._conn: psycopg.Connection[Any] | None = None
        self._closed = False

    @classmethod
    def from_url(
        cls, url: str, *, service_role_key: str | None = None, timeout: float = 10.0
    ) -> PostgresProfileStore:
        """``postgresql://...`` or ``postgres://...``; ``timeout`` is the connect timeout."""
        return cls(url, timeout=timeout)

    def _connect(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=max(1, round(self.timeout)),
                prepare_threshold=None,
            )
        return self._conn

    def _discard(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None

    def _error(self, operation: str, error: psycopg.Error) -> ProfileStoreError:
        return ProfileStoreError(
            f"PostgreSQL {operation} of {TABLE} failed: "
            + postgres_error_text(error, (self._password,))
        )

    def _run(self, operation: str, work: Callable[[psycopg.Connection[Any]], _T]) -> _T:
        with self._lock:
            if self._closed:
                raise ProfileStoreError(f"PostgreSQL {operation} of {TABLE} failed: store closed")
            for attempt in (1, 2):
                try:
                    return work(self._connect())
                except psycopg.OperationalError as error:
                    # A broken connection is reopened once; every operation here is idempotent.
                    if attempt == 1 and self._conn is not None and self._conn.broken:
                        self._discard()
                        continue
                    self._discard()
                    raise self._error(operation, error) from error
                except psycopg.Error as error:
                    raise self._error(operation, error) from error
            raise AssertionError("unreachable")

    def ensure_schema(self) -> None:
        """Create the table (RLS on), add missing columns, ensure user_id is unique."""

        def work(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():
                exists = conn.execute("SELECT to_regclass(%s)", (TABLE,)).fetchone()
                if exists is None or exists[0] is None:
                    conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (user_id text PRIMARY KEY)")
                    # Supabase exposes public tables to its REST API: keep a new one closed.
                    conn.execute(f"ALTER TABLE {TABLE} ENABLE ROW LEVEL SECURITY")
                # ALTER TABLE locks the app's table even when nothing changes: only add what
                # is missing, and give up rather than queue behind the app's queries
                conn.execute("SET LOCAL lock_timeout = '5s'")
                present = {
                    row[0]
                    for row in conn.execute(
                        "SELECT column_name FROM information_schema.columns "
                        "WHERE table_name = %s AND table_schema = current_schema()",
                        (TABLE,),
                    ).fetchall()
                }
                for column in COLUMNS:
                    if column.name in present:
                        continue
                    conn.execute(
                        sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                            sql.Identifier(TABLE),
                            sql.Identifier(column.name),
                            sql.SQL(column.postgres_type),
                        )
                    )
                if conn.execute(HAS_UNIQUE_USER_ID, (TABLE,)).fetchone() is None:
                    conn.execute(
                        f"CREATE UNIQUE INDEX IF NOT EXISTS {UNIQUE_INDEX} ON {TABLE} (user_id)"
                    )

        self._run("schema update", work)

    def upsert(self, user_id: str, fields: Mapping[str, Any]) -> None:
        """UPDATE the given columns; if no row matched, INSERT ... ON CONFLICT DO UPDATE.

        Updating first means an existing row is changed even when the app's table has NOT NULL
        columns of its own (an INSERT ... ON CONFLICT checks those before seeing the conflict).
        """
        user_id = normalize_user_id(user_id)
        values = normalize_fields(user_id, fields)
        params = [
            Jsonb(v) if v is not None and kind_of(c) is Kind.JSON else v for c, v in values.items()
        ]
        table = sql.Identifier(TABLE)
        update = sql.SQL("UPDATE {} SET {} WHERE user_id = %s").format(
            table,
            sql.SQL(", ").join(
                sql.SQL("{} = %s").format(sql.Identifier(column)) for column in values
            ),
        )
        columns = ["user_id", *values]
        insert = sql.SQL(
            "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT (user_id) DO UPDATE SET {}"
        ).format(
            table,
            sql.SQL(", ").join(sql.Identifier(column) for column in columns),
            sql.SQL(", ").join(sql.Placeholder() for _ in columns),
            sql.SQL(", ").join(
                sql.SQL("{0} = excluded.{0}").format(sql.Identifier(column)) for column in values
            ),
        )

        def work(conn: psycopg.Connection[Any]) -> None:
            if conn.execute(update, [*params, user_id]).rowcount == 0:
                conn.execute(insert, [user_id, *params])

        self._run("upsert", work)

    def get(self, user_id: str) -> dict[str, Any] | None:
        """The row for ``user_id``, or None."""
        user_id = normalize_user_id(user_id)
        query = sql.SQL("SELECT {} FROM {} WHERE user_id = %s").format(
            sql.SQL(", ").join(sql.Identifier(column) for column in PROFILE_COLUMNS),
            sql.Identifier(TABLE),
        )

        def work(conn: psycopg.Connection[Any]) -> tuple[Any, ...] | None:
            return conn.execute(query, (user_id,)).fetchone()

        row = self._run("read", work)
        if row is None:
            return None
        return row_from_mapping(dict(zip(PROFILE_COLUMNS, row, strict=True)))

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._closed = True
            self._discard()


#: A unique, non-partial, single-column index on user_id (a primary key or unique constraint
#: counts): what ON CONFLICT (user_id) needs. ``deploy/user_profiles.sql`` runs the same check.
HAS_UNIQUE_USER_ID = """
SELECT 1
FROM pg_index i
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
WHERE i.indrelid = to_regclass(%s)
  AND i.indisunique AND i.indnkeyatts = 1 AND i.indpred IS NULL AND i.indexprs IS NULL
  AND a.attname = 'user_id'
LIMIT 1
"""
