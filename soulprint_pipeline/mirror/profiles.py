"""The ``user_profiles`` mirror: where an import's progress and its soulprint land for the app.

``user_profiles`` is the app's table. The pipeline owns the columns in :data:`PROFILE_COLUMNS`:
it creates the table if it is missing and adds any of its columns that are missing, and it never
drops, rewrites or reads the app's other columns. Three backends, chosen by URL in
:func:`open_profile_store`:

- ``sqlite:///path.sqlite3``: a local SQLite file (the embedded default), WAL mode.
- ``postgresql://...`` / ``postgres://...``: PostgreSQL through psycopg 3, including Supabase's
  own Postgres (direct or through its pooler: prepared statements are off for that reason).
- ``https://<project>.supabase.co``: Supabase's REST API (PostgREST) with the service role key.
  The table must already exist there: ``deploy/user_profiles.sql`` is its migration.

Every backend failure is raised as :class:`ProfileStoreError`, whose message names the backend
and the operation and never holds a secret or the row's content (a Postgres error's DETAIL line
quotes the failing row, i.e. the person's soulprint, so only the primary message is kept).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import urlsplit

import httpx
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from soulprint_pipeline.errors import ConfigurationError, UserSafeError

_T = TypeVar("_T")

TABLE = "user_profiles"

PROFILE_COLUMNS: tuple[str, ...] = (
    "user_id",
    "import_status",
    "import_stage",
    "progress_percent",
    "import_error",
    "processing_started_at",
    "updated_at",
    "total_conversations",
    "total_messages",
    "soulprint",
    "soulprint_text",
    "soul_md",
    "identity_md",
    "user_md",
    "agents_md",
    "tools_md",
    "ai_name",
    "archetype",
)

#: ``import_status`` values the app's schema allows (this pipeline sets processing, complete
#: and failed).
IMPORT_STATUSES: frozenset[str] = frozenset(
    {"none", "processing", "quick_ready", "complete", "failed", "locked"}
)

#: ``import_error`` is cut to this many characters (the last one then being an ellipsis).
MAX_IMPORT_ERROR_CHARS = 500

_TIMESTAMP_COLUMNS = frozenset({"processing_started_at", "updated_at"})
_INTEGER_COLUMNS = frozenset({"progress_percent", "total_conversations", "total_messages"})
_JSON_COLUMNS = frozenset({"soulprint"})

_POSTGRES_TYPES: dict[str, str] = {
    "user_id": "text",
    "import_status": "text NOT NULL DEFAULT 'none'",
    "import_stage": "text",
    "progress_percent": "integer NOT NULL DEFAULT 0",
    "import_error": "text",
    "processing_started_at": "timestamptz",
    "updated_at": "timestamptz NOT NULL DEFAULT now()",
    "total_conversations": "integer",
    "total_messages": "integer",
    "soulprint": "jsonb",
    "soulprint_text": "text",
    "soul_md": "text",
    "identity_md": "text",
    "user_md": "text",
    "agents_md": "text",
    "tools_md": "text",
    "ai_name": "text",
    "archetype": "text",
}

_SQLITE_TYPES: dict[str, str] = {
    "user_id": "TEXT",
    "import_status": "TEXT NOT NULL DEFAULT 'none'",
    "import_stage": "TEXT",
    "progress_percent": "INTEGER NOT NULL DEFAULT 0",
    "import_error": "TEXT",
    "processing_started_at": "TEXT",
    "updated_at": "TEXT",
    "total_conversations": "INTEGER",
    "total_messages": "INTEGER",
    "soulprint": "TEXT",
    "soulprint_text": "TEXT",
    "soul_md": "TEXT",
    "identity_md": "TEXT",
    "user_md": "TEXT",
    "agents_md": "TEXT",
    "tools_md": "TEXT",
    "ai_name": "TEXT",
    "archetype": "TEXT",
}

_UNIQUE_INDEX = "user_profiles_user_id_key"


class ProfileStoreError(UserSafeError):
    """The mirror could not be read or written.

    The message names the backend and the failing operation (and an HTTP status or SQLSTATE
    where there is one); it never holds credentials or the row's content. The person is told
    only that the result could not be saved.
    """

    fixed_message = "The import finished but its result could not be saved."


# --------------------------------------------------------------------------------------------
# Values


def _utc(value: datetime) -> datetime:
    """An aware UTC datetime (a naive one is taken to be UTC already)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _parse_timestamp(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return _utc(value)
    if isinstance(value, str):
        return _utc(datetime.fromisoformat(value))
    raise TypeError(f"expected a datetime or an ISO-8601 string, got {type(value).__name__}")


def _parse_json(value: Any) -> Any:
    if isinstance(value, str | bytes | bytearray):
        return json.loads(value)
    return value


def _normalize_user_id(user_id: str) -> str:
    if not isinstance(user_id, str) or not user_id:
        raise ValueError("user_id must be a non-empty string")
    return user_id


def normalize_fields(user_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Validate and normalise the columns of an upsert (shared by every backend).

    Unknown columns are a ``ValueError``; ``import_error`` is truncated to 500 characters;
    ``progress_percent`` is clamped to 0-100; timestamps become aware UTC datetimes;
    ``soulprint`` may be a dict (or a JSON string, parsed here); ``updated_at`` defaults to now.
    The result has no ``user_id`` key.
    """
    unknown = sorted(set(fields) - set(PROFILE_COLUMNS))
    if unknown:
        raise ValueError(f"not a user_profiles column owned by the pipeline: {', '.join(unknown)}")
    out: dict[str, Any] = {}
    for column, value in fields.items():
        if column == "user_id":
            if value != user_id:
                raise ValueError("fields['user_id'] differs from the user_id argument")
            continue
        if value is None:
            out[column] = None
        elif column in _TIMESTAMP_COLUMNS:
            out[column] = _parse_timestamp(value)
        elif column in _JSON_COLUMNS:
            parsed = _parse_json(value)
            json.dumps(parsed)  # fail here, not in the backend, if it is not JSON-serialisable
            out[column] = parsed
        elif column in _INTEGER_COLUMNS:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{column} must be an int, got {type(value).__name__}")
            out[column] = max(0, min(100, value)) if column == "progress_percent" else value
        else:
            if not isinstance(value, str):
                raise TypeError(f"{column} must be a str, got {type(value).__name__}")
            if column == "import_status" and value not in IMPORT_STATUSES:
                raise ValueError(f"import_status must be one of {sorted(IMPORT_STATUSES)}")
            if column == "import_error" and len(value) > MAX_IMPORT_ERROR_CHARS:
                value = value[: MAX_IMPORT_ERROR_CHARS - 1] + "…"
            out[column] = value
    if out.get("updated_at") is None:
        out["updated_at"] = datetime.now(UTC)
    return out


def _row_from_mapping(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored row as the API returns it: our columns only, JSON parsed, timestamps aware."""
    out: dict[str, Any] = {}
    for column in PROFILE_COLUMNS:
        value = row.get(column)
        if value is not None:
            if column in _TIMESTAMP_COLUMNS:
                value = _parse_timestamp(value)
            elif column in _JSON_COLUMNS:
                value = _parse_json(value)
        out[column] = value
    return out


def _redact(message: str, secrets: tuple[str | None, ...]) -> str:
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    return message


# --------------------------------------------------------------------------------------------
# The interface


class ProfileStore(ABC):
    """Reads and writes the pipeline's columns of ``user_profiles``. Usable as a context manager."""

    #: Backend name used in error messages.
    backend: str = "profile store"

    @abstractmethod
    def ensure_schema(self) -> None:
        """Create the table if missing and add any missing pipeline column (idempotent)."""

    @abstractmethod
    def upsert(self, user_id: str, fields: Mapping[str, Any]) -> None:
        """Insert the row if missing, else update only the given columns.

        ``updated_at`` is set to now (UTC) unless given. ``soulprint`` may be a dict.
        """

    @abstractmethod
    def get(self, user_id: str) -> dict[str, Any] | None:
        """The row's pipeline columns as a dict (``soulprint`` parsed, timestamps aware UTC).

        None if there is no row for ``user_id``.
        """

    @abstractmethod
    def close(self) -> None:
        """Release connections (idempotent)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# --------------------------------------------------------------------------------------------
# SQLite


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
                for column in PROFILE_COLUMNS:
                    if column not in existing:
                        conn.execute(
                            f'ALTER TABLE {TABLE} ADD COLUMN "{column}" {_SQLITE_TYPES[column]}'
                        )
                if not _sqlite_has_unique_user_id(conn):
                    conn.execute(
                        f"CREATE UNIQUE INDEX IF NOT EXISTS {_UNIQUE_INDEX} ON {TABLE} (user_id)"
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        self._run("schema update", work)

    def upsert(self, user_id: str, fields: Mapping[str, Any]) -> None:
        """Insert or update the row (``INSERT ... ON CONFLICT(user_id) DO UPDATE``)."""
        user_id = _normalize_user_id(user_id)
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
        user_id = _normalize_user_id(user_id)
        names = ", ".join(f'"{c}"' for c in PROFILE_COLUMNS)

        def work(conn: sqlite3.Connection) -> tuple[Any, ...] | None:
            cursor = conn.execute(f"SELECT {names} FROM {TABLE} WHERE user_id = ?", (user_id,))
            return cursor.fetchone()

        row = self._run("read", work)
        if row is None:
            return None
        return _row_from_mapping(dict(zip(PROFILE_COLUMNS, row, strict=True)))

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _sqlite_has_unique_user_id(conn: sqlite3.Connection) -> bool:
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
    if column in _TIMESTAMP_COLUMNS:
        return value.isoformat(timespec="microseconds")
    if column in _JSON_COLUMNS:
        return json.dumps(value, ensure_ascii=False)
    return value


# --------------------------------------------------------------------------------------------
# PostgreSQL


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
        # Only the primary message: a server error's DETAIL line can quote the failing row.
        lines = str(error).strip().splitlines()
        message = error.diag.message_primary or (lines[0] if lines else "") or "no message"
        state = f" [{error.sqlstate}]" if error.sqlstate else ""
        message = _redact(message, (self._password,))
        return ProfileStoreError(
            f"PostgreSQL {operation} of {TABLE} failed: {type(error).__name__}{state}: {message}"
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
                for column in PROFILE_COLUMNS:
                    if column in present:
                        continue
                    conn.execute(
                        sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                            sql.Identifier(TABLE),
                            sql.Identifier(column),
                            sql.SQL(_POSTGRES_TYPES[column]),
                        )
                    )
                if conn.execute(_PG_HAS_UNIQUE_USER_ID, (TABLE,)).fetchone() is None:
                    conn.execute(
                        f"CREATE UNIQUE INDEX IF NOT EXISTS {_UNIQUE_INDEX} ON {TABLE} (user_id)"
                    )

        self._run("schema update", work)

    def upsert(self, user_id: str, fields: Mapping[str, Any]) -> None:
        """UPDATE the given columns; if no row matched, INSERT ... ON CONFLICT DO UPDATE.

        Updating first means an existing row is changed even when the app's table has NOT NULL
        columns of its own (an INSERT ... ON CONFLICT checks those before seeing the conflict).
        """
        user_id = _normalize_user_id(user_id)
        values = normalize_fields(user_id, fields)
        params = [
            Jsonb(v) if c in _JSON_COLUMNS and v is not None else v for c, v in values.items()
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
        user_id = _normalize_user_id(user_id)
        query = sql.SQL("SELECT {} FROM {} WHERE user_id = %s").format(
            sql.SQL(", ").join(sql.Identifier(column) for column in PROFILE_COLUMNS),
            sql.Identifier(TABLE),
        )

        def work(conn: psycopg.Connection[Any]) -> tuple[Any, ...] | None:
            return conn.execute(query, (user_id,)).fetchone()

        row = self._run("read", work)
        if row is None:
            return None
        return _row_from_mapping(dict(zip(PROFILE_COLUMNS, row, strict=True)))

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._closed = True
            self._discard()


# A unique, non-partial, single-column index on user_id (a primary key or unique constraint
# counts): what ON CONFLICT (user_id) needs.
_PG_HAS_UNIQUE_USER_ID = """
SELECT 1
FROM pg_index i
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
WHERE i.indrelid = to_regclass(%s)
  AND i.indisunique AND i.indnkeyatts = 1 AND i.indpred IS NULL AND i.indexprs IS NULL
  AND a.attname = 'user_id'
LIMIT 1
"""


# --------------------------------------------------------------------------------------------
# Supabase REST


class SupabaseRestProfileStore(ProfileStore):
    """``user_profiles`` through Supabase's REST API (PostgREST) with the service role key.

    The service role key bypasses row level security. The table and its columns come from the
    migration ``deploy/user_profiles.sql``, so :meth:`ensure_schema` does nothing here.
    """

    backend = "Supabase REST"

    def __init__(
        self,
        url: str,
        service_role_key: str,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not service_role_key:
            raise ValueError("the Supabase REST profile store needs a service role key")
        base = url.rstrip("/")
        base = base.removesuffix("/rest/v1")
        self.url = base
        self._key = service_role_key
        self._client = httpx.Client(
            base_url=f"{base}/rest/v1",
            headers={"apikey": service_role_key, "Authorization": f"Bearer {service_role_key}"},
            timeout=timeout,
            transport=transport,
        )

    def _request(self, operation: str, method: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._client.request(method, f"/{TABLE}", **kwargs)
        except httpx.HTTPError as error:
            message = _redact(f"{type(error).__name__}: {error}", (self._key,))
            raise ProfileStoreError(
                f"Supabase REST {operation} of {TABLE} failed: {message}"
            ) from error
        if response.status_code >= 400:
            raise ProfileStoreError(
                f"Supabase REST {operation} of {TABLE} failed: HTTP {response.status_code}"
                + _postgrest_reason(response, self._key)
            )
        return response

    def ensure_schema(self) -> None:
        """Nothing to do: run ``deploy/user_profiles.sql`` on the project instead."""

    def upsert(self, user_id: str, fields: Mapping[str, Any]) -> None:
        """PATCH the user's row; if there was none, ``POST ?on_conflict=user_id`` (merge).

        A PATCH on a missing row silently changes nothing, hence the insert after it; the
        PATCH comes first because PostgREST's upsert is an INSERT, which the app's table
        rejects when it has NOT NULL columns of its own (as the Postgres backend does too).
        PostgREST writes only the columns in the body.
        """
        user_id = _normalize_user_id(user_id)
        values = normalize_fields(user_id, fields)
        body: dict[str, Any] = {
            column: value.isoformat() if isinstance(value, datetime) else value
            for column, value in values.items()
        }
        updated = self._request(
            "upsert",
            "PATCH",
            params={"user_id": f"eq.{user_id}", "select": "user_id"},
            headers={"Prefer": "return=representation"},
            json=body,
        )
        if updated.json():
            return
        self._request(
            "upsert",
            "POST",
            params={"on_conflict": "user_id"},
            headers={"Prefer": "resolution=merge-duplicates,return=minimal"},
            json=[{"user_id": user_id, **body}],
        )

    def get(self, user_id: str) -> dict[str, Any] | None:
        """``GET /user_profiles?user_id=eq.<id>&select=*``: the row, or None."""
        user_id = _normalize_user_id(user_id)
        response = self._request("read", "GET", params={"user_id": f"eq.{user_id}", "select": "*"})
        try:
            rows = response.json()
        except ValueError as error:
            raise ProfileStoreError(
                f"Supabase REST read of {TABLE} failed: the response is not JSON"
            ) from error
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise ProfileStoreError(
                f"Supabase REST read of {TABLE} failed: expected a JSON array of rows"
            )
        if not rows:
            return None
        return _row_from_mapping(rows[0])

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()


def _postgrest_reason(response: httpx.Response, key: str) -> str:
    """PostgREST's error code and message (never its ``details``, which can quote the row)."""
    try:
        payload = response.json()
    except ValueError:
        return ""
    if not isinstance(payload, dict):
        return ""
    parts = [str(payload[k]) for k in ("code", "message") if payload.get(k)]
    if not parts:
        return ""
    return " (" + _redact(": ".join(parts), (key,))[:300] + ")"


# --------------------------------------------------------------------------------------------
# Opening a store by URL


def open_profile_store(
    url: str, *, service_role_key: str | None = None, timeout: float = 10.0
) -> ProfileStore:
    """Open the ``user_profiles`` backend named by ``url`` (nothing is created or checked yet).

    - ``sqlite:///relative/path.sqlite3`` or ``sqlite:////absolute/path.sqlite3``: a SQLite file
      (its parent folder is created).
    - ``postgresql://...`` or ``postgres://...``: PostgreSQL through psycopg 3; connects lazily,
      with ``timeout`` as the connect timeout.
    - ``https://<project>.supabase.co`` (any ``http(s)://`` URL, e.g. a local Supabase): Supabase
      REST over httpx with ``service_role_key``, which is then required.

    Any other URL, or a missing key, is a
    :class:`~soulprint_pipeline.errors.ConfigurationError`. Call
    :meth:`ProfileStore.ensure_schema` before use.
    """
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite":
        if not url.startswith("sqlite:///") or url == "sqlite:///":
            raise ConfigurationError(
                "SOULPRINT_PROFILES_URL: a SQLite URL looks like sqlite:///relative/path.sqlite3 "
                "or sqlite:////absolute/path.sqlite3"
            )
        return SQLiteProfileStore(url[len("sqlite:///") :], timeout=timeout)
    if scheme in {"postgresql", "postgres"}:
        return PostgresProfileStore(url, timeout=timeout)
    if scheme in {"https", "http"}:
        if not service_role_key:
            raise ConfigurationError(
                "SOULPRINT_PROFILES_URL: a Supabase REST URL needs the service role key "
                "(SUPABASE_SERVICE_ROLE_KEY)"
            )
        return SupabaseRestProfileStore(url, service_role_key, timeout=timeout)
    shown = url.split("://", 1)[0] + "://..." if "://" in url else "(no scheme)"
    raise ConfigurationError(
        f"SOULPRINT_PROFILES_URL: unsupported URL {shown}: expected sqlite:///..., "
        "postgresql://... or https://<project>.supabase.co"
    )
