"""``user_profiles`` in a SQLite file (``sqlite:///path.sqlite3``): the embedded default."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from soulprint_pipeline.errors import ConfigurationError
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
from soulprint_pipeline.mirror.store import ProfileStore, ProfileStoreError

_T = TypeVar("_T")


class SQLiteProfileStore(ProfileStore):
    """``user_profiles`` in a SQLite file: one connection shared under a lock, WAL mode.

    Timestamps are stored as ISO-8601 UTC text and ``soulprint`` as JSON text.
    """

    backend = "SQLite"

    def __init__(self, path: str | Path, *, timeout: float = 10.0) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self.path = str(Path(self.path).expanduser())
        self._lock = threading.Lock()
        try:
            self._conn: sqlite3.Connection | None = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.Error as error:
            raise ProfileStoreError(f"SQLite open of {TABLE} failed: {error}") from error

    @classmethod
    def from_url(
        cls, url: str, *, service_role_key: str | None = None, timeout: float = 10.0
    ) -> SQLiteProfileStore:
        """``sqlite:///relative/path.sqlite3`` or ``sqlite:////absolute/path.sqlite3``.

        The file's parent folder is created.
        """
        if not url.lower().startswith("sqlite:///") or len(url) == len("sqlite:///"):
            raise ConfigurationError(
                "SOULPRINT_PROFILES_URL: a SQLite URL looks like sqlite:///relative/path.sqlite3 "
                "or sqlite:////absolute/path.sqlite3"
            )
        return cls(url[len("sqlite:///") :], timeout=timeout)

    def _run(self, operation: str, work: Callable[[sqlite3.Connection], _T]) -> _T:
        with self._lock:
            if self._conn is None:
                raise ProfileStoreError(f"SQLite {operation} of {TABLE} failed: store is closed")
            try:
                return work(self._conn)
            except sqlite3.Error as error:
                raise ProfileStoreError(f"SQLite {operation} of {TABLE} failed: {error}") from error

    def ensure_schema(self) -> None:
        """Create ``user_profiles`` if missing, add missing columns and a unique user_id index."""

        def work(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (user_id TEXT PRIMARY KEY)")
                existing = {row[1] for row in conn.execute(f"PRAGMA table_info({TABLE})")}
                for column in COLUMNS:
                    if column.name not in existing:
                        conn.execute(
                            f'ALTER TABLE {TABLE} ADD COLUMN "{column.name}" {column.sqlite_type}'
                        )
                if not _has_unique_user_id(conn):
                    conn.execute(
                        f"CREATE UNIQUE INDEX IF NOT EXISTS {UNIQUE_INDEX} ON {TABLE} (user_id)"
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        self._run("schema update", work)

    def upsert(self, user_id: str, fields: Mapping[str, Any]) -> None:
        """Insert or update the row (``INSERT ... ON CONFLICT(user_id) DO UPDATE``)."""
        user_id = normalize_user_id(user_id)
        values = normalize_fields(user_id, fields)
        columns = ["user_id", *values]
        params = [user_id, *(_sqlite_value(c, v) for c, v in values.items())]
        names = ", ".join(f'"{c}"' for c in columns)
        marks = ", ".join("?" for _ in columns)
        updates = ", ".join(f'"{c}" = excluded."{c}"' for c in values)
        statement = (
            f"INSERT INTO {TABLE} ({names}) VALUES ({marks}) "
            f"ON CONFLICT(user_id) DO UPDATE SET {updates}"
        )
        self._run("upsert", lambda conn: conn.execute(statement, params))

    def get(self, user_id: str) -> dict[str, Any] | None:
        """The row for ``user_id``, or None."""
        user_id = normalize_user_id(user_id)
        names = ", ".join(f'"{c}"' for c in PROFILE_COLUMNS)

        def work(conn: sqlite3.Connection) -> tuple[Any, ...] | None:
            cursor = conn.execute(f"SELECT {names} FROM {TABLE} WHERE user_id = ?", (user_id,))
            return cursor.fetchone()

        row = self._run("read", work)
        if row is None:
            return None
        return row_from_mapping(dict(zip(PROFILE_COLUMNS, row, strict=True)))

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _has_unique_user_id(conn: sqlite3.Connection) -> bool:
    for index in conn.execute(f"PRAGMA index_list({TABLE})").fetchall():
        name, unique, partial = index[1], index[2], index[4]
        if unique and not partial:
            columns = [row[2] for row in conn.execute(f'PRAGMA index_info("{name}")')]
            if columns == ["user_id"]:
                return True
    return False


def _sqlite_value(column: str, value: Any) -> Any:
    if value is None:
        return None
    if kind_of(column) is Kind.TIMESTAMP:
        return value.isoformat(timespec="microseconds")
    if kind_of(column) is Kind.JSON:
        return json.dumps(value, ensure_ascii=False)
    return value
