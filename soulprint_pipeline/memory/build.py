"""The memory step, without Dagster: a user's parsed rows in, their memory stored.

    built = build_memory(user_id, parts, embedder, store, MemorySettings())
    built.metadata()                     # chunks, tokens, cost, chunks/s: plain JSON values

Constant memory: the rows are read a row group at a time (twice: once to size and rank the
conversations, once to chunk them), chunks are embedded and staged a few hundred at a time,
and the only state that grows with the export is a set of content hashes (about 60 bytes a
chunk).

Resumable: staged chunks are kept under a *build key* (the export's sha256, the chunker's
settings and the embedder's identity). A run killed half way stages the rest on its re-run and
pays only for the chunks it had not embedded; a new upload, chunker or model is a new key, and
the stale staging is dropped first. Identical chunks (a conversation exported twice) are
embedded once.
"""

from __future__ import annotations

import gc
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from soulprint_pipeline.memory.chunking import (
    CHUNKER_VERSION,
    COLUMNS,
    Chunk,
    ChunkSettings,
    chunk_rows,
    plan,
)
from soulprint_pipeline.memory.embedders import Embedder
from soulprint_pipeline.memory.process import (
    arrow_system_pool,
    arrow_without_pandas,
    release_freed_memory,
    tune_malloc,
)
from soulprint_pipeline.memory.store import MemoryStore, chunk_schema

if TYPE_CHECKING:
    from soulprint_pipeline.lake.store import StoredParts

_PLAN_COLUMNS = ["conversation_id", "conversation_created_at", "role", "text"]


@dataclass(frozen=True)
class MemorySettings:
    """How chunks are cut, and how many are embedded and staged at a time."""

    chunking: ChunkSettings = field(default_factory=ChunkSettings)
    stage_every: int = 512  # chunks a killed run can lose (they are embedded again)


@dataclass
class Built:
    """What a build stored and what it cost."""

    model: str
    dimension: int
    build_key: str
    chunks: int = 0  # live chunks after publishing
    conversations: int = 0  # conversations with at least one chunk
    conversations_total: int = 0
    embedded: int = 0  # chunks embedded by this run
    resumed: int = 0  # chunks staged by an earlier, interrupted run of the same build
    duplicates: int = 0  # identical chunks skipped
    estimated_tokens: int = 0  # of the chunks, the way the soulprint estimates
    text_tokens: int = 0  # of all the person's text, before the cap
    capped: bool = False
    embedding_stats: dict[str, int] = field(default_factory=dict)
    usd_per_million_tokens: float = 0.0
    seconds: float = 0.0

    def metadata(self) -> dict[str, Any]:
        """What a data engineer reads about the build: counts, cost, speed (no text)."""
        tokens = self.embedding_stats.get("input_tokens") or 0
        return {
            "embedding_model": self.model,
            "embedding_dimension": self.dimension,
            "chunks": self.chunks,
            "conversations_covered": self.conversations,
            "conversations_total": self.conversations_total,
            "chunks_embedded": self.embedded,
            "chunks_resumed": self.resumed,
            "duplicate_chunks": self.duplicates,
            "estimated_tokens": self.estimated_tokens,
            "tokens_embedded": tokens,
            "text_tokens": self.text_tokens,
            "capped": self.capped,
            "estimated_cost_usd": round(tokens * self.usd_per_million_tokens / 1e6, 6),
            "embedding_calls": self.embedding_stats.get("calls", 0),
            "embedding_retries": self.embedding_stats.get("retries", 0),
            "seconds": round(self.seconds, 2),
            "chunks_per_s": round(self.embedded / self.seconds, 1) if self.seconds else 0.0,
            "build_key": self.build_key,
        }


def build_key(source: str, settings: MemorySettings, embedder: Embedder) -> str:
    """The key of a build: what its chunks and vectors were computed from (``source``: the
    export's sha256, or the parsed rows' version when that is not known)."""
    chunking = settings.chunking
    identity = "|".join(
        [
            source,
            f"chunker-v{CHUNKER_VERSION}",
            f"{chunking.target_tokens}/{chunking.overlap_tokens}/{chunking.max_tokens}",
            embedder.identity,
        ]
    )
    return hashlib.sha256(identity.encode()).hexdigest()[:32]


def build_memory(
    user_id: str,
    parts: StoredParts,
    embedder: Embedder,
    store: MemoryStore,
    settings: MemorySettings | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> Built:
    """Chunk, embed and store the memory of ``user_id`` from their parsed rows ``parts``.

    ``on_progress`` hears the fraction of the planned tokens chunked and staged (0 to 1).
    """
    tune_malloc()
    arrow_without_pandas()
    with arrow_system_pool():
        return _build(user_id, parts, embedder, store, settings or MemorySettings(), on_progress)


def _build(
    user_id: str,
    parts: StoredParts,
    embedder: Embedder,
    store: MemoryStore,
    settings: MemorySettings,
    on_progress: Callable[[float], None] | None,
) -> Built:
    started = time.perf_counter()
    source = parts.manifest.get("source_sha256") or parts.manifest.get("version", "")
    key = build_key(str(source), settings, embedder)
    built = Built(
        embedder.model,
        embedder.dimension,
        key,
        usd_per_million_tokens=embedder.usd_per_million_tokens,
    )
    store.discard_other_builds(user_id, key)
    staged = store.staged_hashes(user_id, key)
    sized = plan(parts.batches(_PLAN_COLUMNS), settings.chunking)
    built.conversations_total, built.text_tokens = sized.conversations, sized.tokens
    built.capped = sized.capped
    gc.collect()  # the plan pass's garbage, and the pages glibc kept for it
    release_freed_memory()

    schema = chunk_schema(embedder.dimension)
    # the content hashes as ints (128 bits each): 48 bytes a chunk, not a str's 88
    seen: set[int] = set()
    pending: list[Chunk] = []
    done_tokens = 0
    last_conversation: str | None = None

    def stage_pending() -> None:
        if not pending:
            return
        vectors = embedder.embed([chunk.text for chunk in pending])
        store.stage(user_id, key, _record_batch(user_id, pending, vectors, schema))
        built.embedded += len(pending)
        pending.clear()
        release_freed_memory()
        if on_progress is not None:
            on_progress(min(done_tokens / max(sized.kept_tokens, 1), 1.0))

    for chunk in chunk_rows(parts.batches(COLUMNS), settings.chunking, sized.kept):
        content = int(chunk.content_hash, 16)
        if content in seen:
            built.duplicates += 1
            continue
        seen.add(content)
        if chunk.conversation_id != last_conversation:
            built.conversations += 1
            last_conversation = chunk.conversation_id
        built.estimated_tokens += chunk.tokens
        done_tokens += chunk.tokens
        if chunk.content_hash in staged:
            built.resumed += 1
            continue
        pending.append(chunk)
        if len(pending) >= settings.stage_every:
            stage_pending()
    stage_pending()
    built.chunks = store.publish(user_id, key)
    built.embedding_stats = embedder.stats.as_dict()
    built.seconds = time.perf_counter() - started
    if on_progress is not None:
        on_progress(1.0)
    return built


def _record_batch(
    user_id: str, chunks: list[Chunk], vectors: Any, schema: pa.Schema
) -> pa.RecordBatch:
    dimension = schema.field("embedding").type.list_size
    flat = pa.array(vectors.reshape(-1), pa.float32())
    return pa.RecordBatch.from_arrays(
        [
            pa.array([user_id] * len(chunks), pa.string()),
            pa.array([chunk.chunk_id(user_id) for chunk in chunks], pa.string()),
            pa.array([chunk.conversation_id for chunk in chunks], pa.string()),
            pa.array([chunk.conversation_title for chunk in chunks], pa.string()),
            pa.array([chunk.conversation_created_at for chunk in chunks], schema[4].type),
            pa.array([chunk.first_message_at for chunk in chunks], schema[5].type),
            pa.array([chunk.last_message_at for chunk in chunks], schema[6].type),
            pa.array([chunk.chunk_index for chunk in chunks], pa.int32()),
            pa.array([chunk.text for chunk in chunks], pa.string()),
            pa.array([chunk.tokens for chunk in chunks], pa.int32()),
            pa.array([chunk.content_hash for chunk in chunks], pa.string()),
            pa.FixedSizeListArray.from_arrays(flat, dimension),
        ],
        schema=schema,
    )
