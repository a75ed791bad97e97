"""What every ``user_profiles`` backend is: :class:`ProfileStore`, and the one error it raises.

Every backend failure is raised as :class:`ProfileStoreError`, whose message names the backend
and the operation and never holds a secret or the row's content (a Postgres error's DETAIL line
quotes the failing row, i.e. the person's soulprint, so only the primary message is kept).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Self

from soulprint_pipeline.errors import UserSafeError


class ProfileStoreError(UserSafeError):
    """The mirror could not be read or written.

    The message names the backend and the failing operation (and an HTTP status or SQLSTATE
    where there is one); it never holds credentials or the row's content. The person is told
    only that the result could not be saved.
    """

    fixed_message = "The import finished but its result could not be saved."


class ProfileStore(ABC):
    """Reads and writes the pipeline's columns of ``user_profiles``. Usable as a context manager.

    A backend that can be named by a URL implements :meth:`from_url` and is registered for its
    schemes in :mod:`soulprint_pipeline.mirror.registry`.
    """

    #: Backend name used in error messages.
    backend: str = "profile store"

    @classmethod
    def from_url(
        cls, url: str, *, service_role_key: str | None = None, timeout: float = 10.0
    ) -> ProfileStore:
        """Open the store ``url`` names; a bad URL or missing key is a ``ConfigurationError``."""
        raise NotImplementedError(f"{cls.__name__} cannot be opened from a URL")

    @abstractmethod
    def ensure_schema(self) -> None:
        """Create the table if missing and add any missing pipeline column (idempotent)."""

    @abstractmethod
    def upsert(self, user_id: str, fields: Mapping[str, Any]) -> None:
        """Insert the row if missing, else update only the given columns.

        ``updated_at`` is set to now (UTC) unless given. ``soulprint`` may be a dict.
        """

    def upsert_if(
        self, user_id: str, fields: Mapping[str, Any], condition: Callable[[], bool]
    ) -> bool:
        """:meth:`upsert`, only if ``condition()`` holds, asked while no other ``upsert_if`` of
        this user can write; whether it wrote.

        Two runs of one user that each save a soulprint then write the row must leave the row
        with the soulprint the lake keeps: asked under the lock, "is mine still current?" is
        answered after any write the other run began first. This default cannot lock (a
        backend without transactions): the condition is asked just before the write, and
        ``mirror_reconcile_sensor`` mends what a race leaves behind.
        """
        if not condition():
            return False
        self.upsert(user_id, fields)
        return True

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


def redact(message: str, secrets: tuple[str | None, ...]) -> str:
    """``message`` with every non-empty secret in it replaced by ``***``."""
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    return message


def postgres_error_text(error: Any, secrets: tuple[str | None, ...]) -> str:
    """A psycopg error in one line fit for logs: its type, SQLSTATE and primary message only
    (a server error's DETAIL line can quote the failing row), with ``secrets`` redacted."""
    lines = str(error).strip().splitlines()
    message = error.diag.message_primary or (lines[0] if lines else "") or "no message"
    state = f" [{error.sqlstate}]" if error.sqlstate else ""
    return f"{type(error).__name__}{state}: {redact(message, secrets)}"
