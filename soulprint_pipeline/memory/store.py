"""Where memory chunks live: the interface every backend keeps, and the backend per URL.

A build *stages* its embedded chunks under a build key (what it was computed from: the parsed
rows' version, the chunker's and the embedder's identity) and then *publishes* them: one atomic
step that replaces the user's live chunks with the staged ones, so a reader never sees half of
the old memory and half of the new. Staged rows survive a killed run: a re-run with the same
build key asks :meth:`MemoryStore.staged_hashes` which chunks are already embedded, and pays
only for the rest.

Backends are chosen by URL, the way fsspec chooses a filesystem:

==============================  ===========================================================
URL                             backend
==============================  ===========================================================
a path, ``file://``, ``s3://``  LanceDB (:mod:`~soulprint_pipeline.memory.lance`), the
                                embedded default: one table, ``memory_chunks``
``postgresql://...``            Postgres with pgvector (:mod:`~soulprint_pipeline.memory.
                                pgvector`): the app's table (``deploy/memory_chunks.sql``)
==============================  ===========================================================
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa

from soulprint_pipeline.errors import UserSafeError
from soulprint_pipeline.export.rows import UTC_MICROS

#: The live table, and the table a build stages its rows in before publishing them.
TABLE = "memory_chunks"
STAGING_TABLE = "memory_chunks_staging"


def chunk_schema(dimension: int) -> pa.Schema:
    """The columns of a stored chunk, with its embedding of ``dimension`` float32 values."""
    return pa.schema(
        [
            pa.field("user_id", pa.string(), nullable=False),
            pa.field("chunk_id", pa.string(), nullable=False),
            pa.field("conversation_id", pa.string()),
            pa.field("conversation_title", pa.string()),
            pa.field("conversation_created_at", UTC_MICROS),
            pa.field("first_message_at", UTC_MICROS),
            pa.field("last_message_at", UTC_MICROS),
            pa.field("chunk_index", pa.int32(), nullable=False),
            pa.field("text", pa.string(), nullable=False),
            pa.field("tokens", pa.int32(), nullable=False),
            pa.field("content_hash", pa.string(), nullable=False),
            pa.field("embedding", pa.list_(pa.float32(), dimension), nullable=False),
        ]
    )


#: The staged rows carry the key of the build that embedded them.
BUILD_KEY = pa.field("build_key", pa.string(), nullable=False)


class MemoryStoreError(UserSafeError):
    """The memory store could not be reached or written (the details are for the logs)."""

    fixed_message = "Your memory could not be saved (our storage did not answer); we will retry."


@dataclass(frozen=True)
class Recalled:
    """One chunk found for a query, best first; ``score`` is the cosine similarity."""

    chunk_id: str
    conversation_id: str | None
    conversation_title: str | None
    conversation_created_at: datetime | None
    first_message_at: datetime | None
    last_message_at: datetime | None
    chunk_index: int
    text: str
    score: float


class MemoryStore(ABC):
    """A memory store of one embedding ``dimension``. Every method names the user it touches."""

    dimension: int

    @abstractmethod
    def staged_hashes(self, user_id: str, build_key: str) -> set[str]:
        """The content hashes of the chunks already staged for this build of this user."""

    @abstractmethod
    def discard_other_builds(self, user_id: str, build_key: str) -> int:
        """Drop the user's staged rows of any other build (stale: a newer input or model).
        Returns how many rows were dropped."""

    @abstractmethod
    def stage(self, user_id: str, build_key: str, chunks: pa.RecordBatch) -> None:
        """Append embedded chunks (:func:`chunk_schema` columns) to this build's staging."""

    @abstractmethod
    def publish(self, user_id: str, build_key: str) -> int:
        """Atomically make this build's staged chunks the user's memory, replacing whatever
        was there, and empty the user's staging. Returns the number of live chunks."""

    @abstractmethod
    def count(self, user_id: str) -> int:
        """How many live chunks the user has."""

    @abstractmethod
    def search(self, user_id: str, vector: list[float], k: int) -> list[Recalled]:
        """The user's ``k`` live chunks nearest to ``vector`` (a unit vector), best first."""

    def optimize(self) -> None:  # noqa: B027 - a database that maintains itself needs nothing
        """Maintenance apart from any user's build: indexes, compaction, old versions."""

    def close(self) -> None:  # noqa: B027 - optional for backends holding nothing open
        """Release connections."""

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


#: Backend by URL scheme, as import paths of a ``from_url(url, dimension, **options)``.
_BACKENDS = {
    "postgresql": "soulprint_pipeline.memory.pgvector",
    "postgres": "soulprint_pipeline.memory.pgvector",
}
_DEFAULT_BACKEND = "soulprint_pipeline.memory.lance"


def open_memory_store(url: str, dimension: int, **options: Any) -> MemoryStore:
    """The memory store at ``url`` for embeddings of ``dimension`` values (see the table above).

    ``options`` go to the backend (for LanceDB on S3: ``storage_options``).
    """
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    module = importlib.import_module(_BACKENDS.get(scheme, _DEFAULT_BACKEND))
    return module.from_url(url, dimension, **options)
