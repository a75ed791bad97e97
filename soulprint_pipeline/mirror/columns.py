"""The columns of ``user_profiles`` the pipeline owns, and the values they hold.

:data:`COLUMNS` is the one table of them: the SQLite and PostgreSQL backends derive their DDL
from it, the Supabase migration ``deploy/user_profiles.sql`` is checked against it by the tests,
and every backend validates and reads values through :func:`normalize_fields` and
:func:`row_from_mapping`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

TABLE = "user_profiles"

#: The name of the unique index on ``user_id`` when the table has no key on it already.
UNIQUE_INDEX = "user_profiles_user_id_key"


class Kind(StrEnum):
    """What a column holds, which decides its SQL type and how a value is checked."""

    TEXT = "text"
    INTEGER = "integer"
    TIMESTAMP = "timestamp"
    JSON = "json"


_POSTGRES_TYPES = {
    Kind.TEXT: "text",
    Kind.INTEGER: "integer",
    Kind.TIMESTAMP: "timestamptz",
    Kind.JSON: "jsonb",
}
# SQLite keeps timestamps as ISO-8601 UTC text and JSON as text.
_SQLITE_TYPES = {
    Kind.TEXT: "TEXT",
    Kind.INTEGER: "INTEGER",
    Kind.TIMESTAMP: "TEXT",
    Kind.JSON: "TEXT",
}


@dataclass(frozen=True)
class Column:
    """One pipeline column of ``user_profiles``.

    ``default`` is a constant SQL literal that makes the column ``NOT NULL DEFAULT ...`` on
    every backend; ``postgres_default`` is an expression only PostgreSQL gets (SQLite cannot
    add a column whose default is not a constant).
    """

    name: str
    kind: Kind
    default: str | None = None
    postgres_default: str | None = None

    @property
    def postgres_type(self) -> str:
        """The column's type and constraints in PostgreSQL DDL."""
        return _with_default(_POSTGRES_TYPES[self.kind], self.default or self.postgres_default)

    @property
    def sqlite_type(self) -> str:
        """The column's type and constraints in SQLite DDL."""
        return _with_default(_SQLITE_TYPES[self.kind], self.default)


def _with_default(sql_type: str, default: str | None) -> str:
    return f"{sql_type} NOT NULL DEFAULT {default}" if default else sql_type


COLUMNS: tuple[Column, ...] = (
    Column("user_id", Kind.TEXT),
    Column("import_status", Kind.TEXT, default="'none'"),
    Column("import_stage", Kind.TEXT),
    Column("progress_percent", Kind.INTEGER, default="0"),
    Column("import_error", Kind.TEXT),
    Column("processing_started_at", Kind.TIMESTAMP),
    Column("updated_at", Kind.TIMESTAMP, postgres_default="now()"),
    Column("total_conversations", Kind.INTEGER),
    Column("total_messages", Kind.INTEGER),
    Column("soulprint", Kind.JSON),
    Column("soulprint_text", Kind.TEXT),
    Column("soul_md", Kind.TEXT),
    Column("identity_md", Kind.TEXT),
    Column("user_md", Kind.TEXT),
    Column("agents_md", Kind.TEXT),
    Column("tools_md", Kind.TEXT),
    Column("ai_name", Kind.TEXT),
    Column("archetype", Kind.TEXT),
)

#: The column names, in table order.
PROFILE_COLUMNS: tuple[str, ...] = tuple(column.name for column in COLUMNS)

_KINDS: dict[str, Kind] = {column.name: column.kind for column in COLUMNS}

#: ``import_status`` values the app's schema allows (this pipeline sets processing, complete
#: and failed).
IMPORT_STATUSES: frozenset[str] = frozenset(
    {"none", "processing", "quick_ready", "complete", "failed", "locked"}
)

#: ``import_error`` is cut to this many characters (the last one then being an ellipsis).
MAX_IMPORT_ERROR_CHARS = 500


def kind_of(column: str) -> Kind:
    """The kind of a pipeline column."""
    return _KINDS[column]


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


def normalize_user_id(user_id: str) -> str:
    """``user_id`` itself, checked to be a non-empty string."""
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
        kind = _KINDS[column]
        if column == "user_id":
            if value != user_id:
                raise ValueError("fields['user_id'] differs from the user_id argument")
            continue
        if value is None:
            out[column] = None
        elif kind is Kind.TIMESTAMP:
            out[column] = _parse_timestamp(value)
        elif kind is Kind.JSON:
            parsed = _parse_json(value)
            json.dumps(parsed)  # fail here, not in the backend, if it is not JSON-serialisable
            out[column] = parsed
        elif kind is Kind.INTEGER:
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


def row_from_mapping(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored row as the API returns it: our columns only, JSON parsed, timestamps aware."""
    out: dict[str, Any] = {}
    for column in PROFILE_COLUMNS:
        value = row.get(column)
        if value is not None:
            if _KINDS[column] is Kind.TIMESTAMP:
                value = _parse_timestamp(value)
            elif _KINDS[column] is Kind.JSON:
                value = _parse_json(value)
        out[column] = value
    return out
