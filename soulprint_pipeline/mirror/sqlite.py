"""``user_profiles`` in a SQLite file (``sqlite:///path.sqlite3``): the embedded default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from soulprint_pipeline.errors import ConfigurationError
from soulprint_pipeline.mirror.columns import Column
from soulprint_pipeline.mirror.sql import SqlProfileStore


class SQLiteProfileStore(SqlProfileStore):
    """``user_profiles`` in a SQLite file, in WAL mode (readers never wait for the writer).

    Timestamps are stored as ISO-8601 UTC text and ``soulprint`` as JSON text.
    """

    backend = "SQLite"

    def __init__(self, path: str | Path, *, timeout: float = 10.0) -> None:
        self.path = str(Path(path).expanduser())
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(f"sqlite:///{self.path}", connect_args={"timeout": timeout})
        sa.event.listen(engine, "connect", _use_wal)
        super().__init__(engine)

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

    def _column_ddl(self, column: Column) -> str:
        return column.sqlite_type


def _use_wal(connection: Any, _record: Any) -> None:
    connection.execute("PRAGMA journal_mode=WAL")
