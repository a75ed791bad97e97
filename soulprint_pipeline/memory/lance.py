"""The embedded memory store: LanceDB under a folder (or any URL LanceDB opens, e.g. ``s3://``).

Two tables: ``memory_chunks`` holds every embedded chunk with the key of the build that made
it, and ``memory_builds`` says which build is each user's live memory (one row per user).
Staging is appending chunks under a new build key, which no reader looks at; publishing is
one upsert of the user's row in ``memory_builds`` (a single commit of a one-row change), so a
reader sees the whole old memory or the whole new one, and the old build's chunks are deleted
after. Lance's ``merge_insert`` could swap the chunks themselves in one commit, but it holds
its input in memory (700 MB for an 80 MB export's chunks); appends and a pointer stay flat.
Writers of different users commit side by side: Lance retries conflicting commits.

The vector index (IVF with HNSW and scalar quantization, cosine) is built by
:meth:`LanceMemoryStore.optimize`, maintenance that runs apart from any user's build (the
``memory_maintenance`` schedule), once the table is large enough to train it; until then,
and for rows added after it, search is exact.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa

from soulprint_pipeline.errors import ConfigurationError
from soulprint_pipeline.memory.process import arrow_without_pandas, tune_malloc
from soulprint_pipeline.memory.store import (
    BUILD_KEY,
    TABLE,
    MemoryStore,
    MemoryStoreError,
    Recalled,
    chunk_schema,
)
from soulprint_pipeline.users import validate_user_id

log = logging.getLogger(__name__)

#: The table naming each user's live build.
BUILDS_TABLE = "memory_builds"
BUILDS_SCHEMA = pa.schema(
    [
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("build_key", pa.string(), nullable=False),
        pa.field("published_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)
#: Rows before a vector index is worth training (below it, an exact scan is fast).
INDEX_MIN_ROWS = 50_000
#: LanceDB's cache of table metadata, per connection (its default is 1 GiB). Every staged
#: batch is a new version, and the cache kept each version's manifest: 11 MB after the 1 GB
#: export's 134 batches, growing with the square of their number; the build and a search
#: read only the latest version, which fits.
METADATA_CACHE_BYTES = 4 * 1024 * 1024


def _quoted(user_id: str) -> str:
    """A user id as a SQL string literal for Lance filters (ids are validated: no quotes)."""
    return f"'{validate_user_id(user_id)}'"


class LanceMemoryStore(MemoryStore):
    """Memory chunks in LanceDB at ``url``."""

    def __init__(
        self, url: str, dimension: int, storage_options: dict[str, Any] | None = None
    ) -> None:
        self.url = url
        self.dimension = dimension
        self.schema = chunk_schema(dimension)
        tune_malloc()
        arrow_without_pandas()
        import lancedb  # here: its threads start after the arena limit, which binds only those

        try:
            # every read sees the latest commit, whoever made it
            self._db = lancedb.connect(
                url,
                storage_options=storage_options or None,
                read_consistency_interval=timedelta(0),
                session=lancedb.Session(metadata_cache_size_bytes=METADATA_CACHE_BYTES),
            )
            try:  # opened first: creating over a table of another dimension fails unexplained
                self._chunks = self._db.open_table(TABLE)
            except ValueError:  # not there yet
                self._chunks = self._db.create_table(
                    TABLE, schema=self.schema.append(BUILD_KEY), exist_ok=True
                )
            self._builds = self._db.create_table(BUILDS_TABLE, schema=BUILDS_SCHEMA, exist_ok=True)
        except Exception as error:
            raise MemoryStoreError(f"cannot open the memory store {url}: {error}") from error
        found = self._chunks.schema.field("embedding").type
        if found != self.schema.field("embedding").type:
            # a setting to change, not an outage to retry (as the pgvector store says it)
            raise ConfigurationError(
                f"The memory table {TABLE} in {url} holds embeddings of {found.list_size} "
                f"values, but this pipeline makes embeddings of {dimension}: set the embedder's "
                "dimension to match, or use another SOULPRINT_MEMORY_URL for another dimension."
            )

    def live_build(self, user_id: str) -> str | None:
        """The key of the user's published build, if any."""
        found = (
            self._builds.search()
            .where(f"user_id = {_quoted(user_id)}")
            .select(["build_key"])
            .limit(1)
            .to_list()
        )
        return found[0]["build_key"] if found else None

    def _of_build(self, user_id: str, build_key: str) -> str:
        return f"user_id = {_quoted(user_id)} AND build_key = '{_key(build_key)}'"

    def staged_hashes(self, user_id: str, build_key: str) -> set[str]:
        # a build that is already live counts as staged whole: re-running it costs nothing
        hashes: set[str] = set()
        query = (
            self._chunks.search()
            .where(self._of_build(user_id, build_key))
            .select(["content_hash"])
            .limit(None)
        )
        for batch in query.to_batches(65_536):
            hashes.update(batch.column("content_hash").to_pylist())
        return hashes

    def discard_other_builds(self, user_id: str, build_key: str) -> int:
        keep = {_key(build_key), self.live_build(user_id) or build_key}
        listed = ", ".join(f"'{key}'" for key in sorted(keep))
        where = f"user_id = {_quoted(user_id)} AND build_key NOT IN ({listed})"
        stale = self._chunks.count_rows(where)
        if stale:
            self._chunks.delete(where)
        return stale

    def stage(self, user_id: str, build_key: str, chunks: pa.RecordBatch) -> None:
        if chunks.num_rows == 0:
            return
        validate_user_id(user_id)
        keys = pa.array([_key(build_key)] * chunks.num_rows, pa.string())
        table = pa.Table.from_batches([chunks]).append_column(BUILD_KEY, keys)
        self._chunks.add(table.cast(self._chunks.schema))

    def publish(self, user_id: str, build_key: str) -> int:
        pointer = pa.table(
            {
                "user_id": [validate_user_id(user_id)],
                "build_key": [_key(build_key)],
                "published_at": [datetime.now(UTC)],
            },
            schema=BUILDS_SCHEMA,
        )
        (
            self._builds.merge_insert("user_id")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute(pointer)
        )
        self._chunks.delete(f"user_id = {_quoted(user_id)} AND build_key != '{_key(build_key)}'")
        return self.count(user_id)

    def optimize(self) -> None:
        """Maintenance, apart from any user's build: train the vector index once the table is
        large enough (IVF with HNSW and scalar quantization, cosine; training holds the
        vectors in memory, about 0.5 GB for 70,000 of 1024 values), fold new rows into the
        indexes, compact small fragments and drop versions older than an hour (readers still
        on them finish first)."""
        from lancedb.index import BTree, IvfHnswSq  # imported with lancedb, in __init__

        indexed = {index.name for index in self._chunks.list_indices()}
        if "embedding_idx" not in indexed and self._chunks.count_rows() >= INDEX_MIN_ROWS:
            log.info("building the vector index of %s", TABLE)
            self._chunks.create_index(
                "embedding", config=IvfHnswSq(distance_type="cosine"), name="embedding_idx"
            )
            self._chunks.create_index("user_id", config=BTree(), name="user_id_idx")
        self._chunks.optimize(cleanup_older_than=timedelta(hours=1))
        self._builds.optimize(cleanup_older_than=timedelta(hours=1))

    def count(self, user_id: str) -> int:
        live = self.live_build(user_id)
        return self._chunks.count_rows(self._of_build(user_id, live)) if live else 0

    def search(self, user_id: str, vector: list[float], k: int) -> list[Recalled]:
        live = self.live_build(user_id)
        if live is None:
            return []
        found = (
            self._chunks.search(
                np.asarray(vector, dtype=np.float32), vector_column_name="embedding"
            )
            .distance_type("cosine")
            .where(self._of_build(user_id, live), prefilter=True)
            .select([name for name in self.schema.names if name != "embedding"] + ["_distance"])
            .limit(k)
            .to_arrow()
        )
        return [
            Recalled(
                chunk_id=row["chunk_id"],
                conversation_id=row["conversation_id"],
                conversation_title=row["conversation_title"],
                conversation_created_at=row["conversation_created_at"],
                first_message_at=row["first_message_at"],
                last_message_at=row["last_message_at"],
                chunk_index=row["chunk_index"],
                text=row["text"],
                score=1.0 - float(row["_distance"]),
            )
            for row in found.to_pylist()
        ]


def _key(build_key: str) -> str:
    """A build key for a filter: they are hex digests; anything else is a programming error."""
    if not build_key.isalnum():
        raise ValueError(f"a build key is alphanumeric, not {build_key!r}")
    return build_key


def from_url(url: str, dimension: int, **options: Any) -> LanceMemoryStore:
    """The LanceDB store at ``url`` (``storage_options`` for object stores)."""
    if url.startswith("file://"):
        url = url[len("file://") :]
    return LanceMemoryStore(url, dimension, storage_options=options.get("storage_options"))
