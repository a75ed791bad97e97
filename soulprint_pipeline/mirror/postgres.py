"""``user_profiles`` in PostgreSQL (``postgresql://...``), Supabase's own Postgres included."""

from __future__ import annotations

from urllib.parse import urlsplit

import sqlalchemy as sa

from soulprint_pipeline.mirror.columns import TABLE, Column
from soulprint_pipeline.mirror.sql import SqlProfileStore
from soulprint_pipeline.mirror.store import postgres_error_text


class PostgresProfileStore(SqlProfileStore):
    """``user_profiles`` in PostgreSQL through psycopg 3.

    Connections are opened on first use and checked before each use, so a broken one (a
    restarted server, a pooler that closed it) is replaced. Prepared statements are disabled so
    that Supabase's transaction pooler (PgBouncer / Supavisor) works.
    """

    backend = "PostgreSQL"

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self._password = urlsplit(url).password
        engine = sa.create_engine(
            sa.make_url(url).set(drivername="postgresql+psycopg"),
            pool_pre_ping=True,
            pool_size=1,
            connect_args={"connect_timeout": max(1, round(timeout)), "prepare_threshold": None},
        )
        super().__init__(engine)

    @classmethod
    def from_url(
        cls, url: str, *, service_role_key: str | None = None, timeout: float = 10.0
    ) -> PostgresProfileStore:
        """``postgresql://...`` or ``postgres://...``; ``timeout`` is the connect timeout."""
        if url.startswith("postgres://"):
            url = "postgresql://" + url.removeprefix("postgres://")
        return cls(url, timeout=timeout)

    def _column_ddl(self, column: Column) -> str:
        return column.postgres_type

    def _created(self, conn: sa.Connection) -> None:
        # Supabase exposes public tables to its REST API: keep a new one closed.
        conn.exec_driver_sql(f"ALTER TABLE {TABLE} ENABLE ROW LEVEL SECURITY")

    def _before_adding_columns(self, conn: sa.Connection) -> None:
        # ALTER TABLE locks the app's table even when nothing changes: only missing columns are
        # added, and the update gives up rather than queue behind the app's queries
        conn.exec_driver_sql("SET LOCAL lock_timeout = '5s'")

    def _lock_user(self, conn: sa.Connection, user_id: str) -> None:
        """A transaction-scoped advisory lock on this user's row (writers of other users go on)."""
        conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"soulprint_pipeline.user_profiles:{user_id}"},
        )

    def _describe(self, error: BaseException) -> str:
        return postgres_error_text(error, (self._password,))
