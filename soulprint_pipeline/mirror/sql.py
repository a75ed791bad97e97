"""``user_profiles`` in a SQL database through SQLAlchemy Core: one code path for SQLite (the
embedded default) and PostgreSQL (Supabase's own included).

The upsert is the dialect's ``INSERT ... ON CONFLICT (user_id) DO UPDATE``, preceded by an
``UPDATE`` (see :meth:`SqlProfileStore.upsert`); the table object names only the pipeline's
columns (:data:`~soulprint_pipeline.mirror.columns.COLUMNS`), so no statement touches a column
the app owns. ``sqlite.py`` and ``postgres.py`` hold only what differs: how each is opened and
the DDL only one of them has.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from soulprint_pipeline.mirror.columns import (
    COLUMNS,
    TABLE,
    UNIQUE_INDEX,
    Column,
    Kind,
    normalize_fields,
    normalize_user_id,
    row_from_mapping,
)
from soulprint_pipeline.mirror.store import ProfileStore, ProfileStoreError

_T = TypeVar("_T")


class _IsoText(sa.types.TypeDecorator[datetime]):
    """A timestamp kept as ISO-8601 UTC text (SQLite has no timestamp type)."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> str | None:
        return None if value is None else value.isoformat(timespec="microseconds")


class _JsonText(sa.types.TypeDecorator[Any]):
    """JSON kept as text, non-ASCII as it is (SQLite)."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> str | None:
        return None if value is None else json.dumps(value, ensure_ascii=False)


_TYPES: dict[Kind, sa.types.TypeEngine[Any]] = {
    Kind.TEXT: sa.Text(),
    Kind.INTEGER: sa.Integer(),
    Kind.TIMESTAMP: sa.DateTime(timezone=True).with_variant(_IsoText(), "sqlite"),
    Kind.JSON: postgresql.JSONB().with_variant(_JsonText(), "sqlite"),
}

#: The pipeline's columns of ``user_profiles`` and nothing else (the app's stay unnamed).
PROFILES = sa.Table(
    TABLE, sa.MetaData(), *(sa.Column(column.name, _TYPES[column.kind]) for column in COLUMNS)
)

_INSERTS: dict[str, Callable[[sa.Table], Any]] = {
    "sqlite": sqlite.insert,
    "postgresql": postgresql.insert,
}


class SqlProfileStore(ProfileStore):
    """``user_profiles`` through a SQLAlchemy engine; each call is one transaction.

    Subclasses say how the engine is made and add the DDL of their own database
    (:meth:`_created`, :meth:`_before_adding_columns`) and how its errors read (:meth:`_describe`).
    """

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._insert = _INSERTS[engine.dialect.name]
        self._closed = False

    # --- what differs between databases -------------------------------------------------------

    def _column_ddl(self, column: Column) -> str:
        """The column's type and constraints in this database's DDL."""
        raise NotImplementedError

    def _created(self, conn: sa.Connection) -> None:
        """Called once the table has been created, in the same transaction."""

    def _before_adding_columns(self, conn: sa.Connection) -> None:
        """Called before the schema update looks for missing columns, in its transaction."""

    def _describe(self, error: BaseException) -> str:
        """A driver error in one line for the logs: no secret and no row content."""
        return f"{type(error).__name__}: {error}"

    # --- one code path ------------------------------------------------------------------------

    def _run(self, operation: str, work: Callable[[sa.Connection], _T]) -> _T:
        failed = f"{self.backend} {operation} of {TABLE} failed"
        if self._closed:
            raise ProfileStoreError(f"{failed}: store is closed")
        try:
            with self._engine.begin() as conn:
                return work(conn)
        except sa.exc.DBAPIError as error:
            # SQLAlchemy's own message repeats the statement's parameters (the person's
            # soulprint): only the driver's error is described, and the chain is cut.
            raise ProfileStoreError(f"{failed}: {self._describe(error.orig)}") from None

    def ensure_schema(self) -> None:
        """Create the table if missing, add missing pipeline columns, make user_id unique."""

        def work(conn: sa.Connection) -> None:
            if not sa.inspect(conn).has_table(TABLE):
                user_id = self._column_ddl(COLUMNS[0])
                conn.exec_driver_sql(
                    f"CREATE TABLE IF NOT EXISTS {TABLE} (user_id {user_id} PRIMARY KEY)"
                )
                self._created(conn)
            self._before_adding_columns(conn)
            inspector = sa.inspect(conn)
            present = {column["name"] for column in inspector.get_columns(TABLE)}
            for column in COLUMNS:
                if column.name not in present:
                    conn.exec_driver_sql(
                        f'ALTER TABLE {TABLE} ADD COLUMN "{column.name}" {self._column_ddl(column)}'
                    )
            if not _has_unique_user_id(inspector, conn.dialect.name):
                conn.exec_driver_sql(
                    f"CREATE UNIQUE INDEX IF NOT EXISTS {UNIQUE_INDEX} ON {TABLE} (user_id)"
                )

        self._run("schema update", work)

    def upsert(self, user_id: str, fields: Mapping[str, Any]) -> None:
        """UPDATE the given columns; if no row matched, INSERT ... ON CONFLICT DO UPDATE.

        Updating first means an existing row is changed even when the app's table has NOT NULL
        columns of its own (an INSERT ... ON CONFLICT checks those before seeing the conflict).
        """
        write = self._upsert_statements(user_id, fields)
        self._run("upsert", write)

    def upsert_if(
        self, user_id: str, fields: Mapping[str, Any], condition: Callable[[], bool]
    ) -> bool:
        """:meth:`upsert` if ``condition()`` holds, asked inside the write's transaction once
        it holds this user's lock (see :meth:`_lock_user`); whether it wrote."""
        write = self._upsert_statements(user_id, fields)

        def work(conn: sa.Connection) -> bool:
            self._lock_user(conn, normalize_user_id(user_id))
            if not condition():
                return False
            write(conn)
            return True

        return self._run("upsert", work)

    def _lock_user(self, conn: sa.Connection, user_id: str) -> None:
        """Hold, until the transaction ends, a lock no other transaction's ``_lock_user`` of this
        user gets meanwhile. Here the database's write lock (SQLite has one writer at a time):
        an UPDATE takes it even when it changes no row."""
        conn.execute(PROFILES.update().where(sa.false()).values(user_id=PROFILES.c.user_id))

    def _upsert_statements(
        self, user_id: str, fields: Mapping[str, Any]
    ) -> Callable[[sa.Connection], None]:
        user_id = normalize_user_id(user_id)
        values = normalize_fields(user_id, fields)
        update = PROFILES.update().where(PROFILES.c.user_id == user_id).values(values)
        insert = self._insert(PROFILES).values(user_id=user_id, **values)
        insert = insert.on_conflict_do_update(
            index_elements=[PROFILES.c.user_id],
            set_={column: insert.excluded[column] for column in values},
        )

        def write(conn: sa.Connection) -> None:
            if conn.execute(update).rowcount == 0:
                conn.execute(insert)

        return write

    def get(self, user_id: str) -> dict[str, Any] | None:
        """The row for ``user_id``, or None."""
        query = sa.select(PROFILES).where(PROFILES.c.user_id == normalize_user_id(user_id))
        row = self._run("read", lambda conn: conn.execute(query).mappings().first())
        return None if row is None else row_from_mapping(row)

    def close(self) -> None:
        """Close the connections (idempotent); later calls raise ``ProfileStoreError``."""
        self._closed = True
        self._engine.dispose()


def _has_unique_user_id(inspector: sa.Inspector, dialect: str) -> bool:
    """Whether one unique, non-partial index or key covers user_id alone: what
    ``ON CONFLICT (user_id)`` needs (``deploy/user_profiles.sql`` runs the same check)."""
    if inspector.get_pk_constraint(TABLE)["constrained_columns"] == ["user_id"]:
        return True
    if any(c["column_names"] == ["user_id"] for c in inspector.get_unique_constraints(TABLE)):
        return True
    return any(
        index["unique"]
        and index["column_names"] == ["user_id"]
        and not index.get("dialect_options", {}).get(f"{dialect}_where")
        for index in inspector.get_indexes(TABLE)
    )
