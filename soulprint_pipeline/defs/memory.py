"""The ``embedder`` and ``memory`` resources: the memory step's configuration in Dagster.

The step itself is :func:`soulprint_pipeline.memory.build.build_memory`. These resources
validate the settings (``SOULPRINT_EMBEDDER``, ``SOULPRINT_EMBEDDING_DIMENSION``,
``SOULPRINT_MEMORY_URL``, ``SOULPRINT_MEMORY_MAX_TOKENS``) and open the embedder and the store
for one step.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from soulprint_pipeline.errors import ConfigurationError
from soulprint_pipeline.memory.chunking import CHUNKER_VERSION, ChunkSettings
from soulprint_pipeline.memory.embedders import (
    EMBEDDERS,
    TITAN_DIMENSIONS,
    TITAN_V2,
    Embedder,
    EmbedderSettings,
    OfflineEmbedder,
    open_embedder,
)
from soulprint_pipeline.memory.store import MemoryStore, open_memory_store

DEFAULT_DIMENSION = 1024
#: Of the person's text; chunks add about a third (titles, overlap): at most about 27 M chunk
#: tokens, $0.55 of Titan V2 per person (measured on the generated 1 GB export)
DEFAULT_MAX_TOKENS = 20_000_000


class EmbedderResource(dg.ConfigurableResource):
    """Turns memory chunks into vectors: ``offline`` (local) or ``bedrock`` (Titan V2)."""

    backend: str = "offline"
    dimension: int = DEFAULT_DIMENSION
    model_id: str | None = None  # Titan V2 for bedrock
    aws_region: str | None = None  # else the AWS chain's
    max_concurrency: int = 8  # Bedrock calls in flight in one step

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        check_embedder(self.backend, self.dimension)

    @property
    def settings(self) -> EmbedderSettings:
        """The embedder's settings, as the library takes them."""
        return EmbedderSettings(
            backend=self.backend,
            dimension=self.dimension,
            model_id=self.model_id,
            aws_region=self.aws_region,
            max_concurrency=self.max_concurrency,
        )

    @contextmanager
    def open(self) -> Iterator[Embedder]:
        """The embedder, closed after the step."""
        embedder = open_embedder(self.settings)
        try:
            yield embedder
        finally:
            embedder.close()


class MemoryResource(dg.ConfigurableResource):
    """Where memory chunks are kept (``SOULPRINT_MEMORY_URL``): a LanceDB folder or URL, or a
    ``postgresql://`` database with pgvector; and how they are cut."""

    url: str
    max_tokens: int | None = DEFAULT_MAX_TOKENS  # of chunks per person; None: no cap
    target_tokens: int = 400
    overlap_tokens: int = 60

    @property
    def chunking(self) -> ChunkSettings:
        """How the chunks are cut, and the cap on them."""
        return ChunkSettings(self.target_tokens, self.overlap_tokens, self.max_tokens)

    @contextmanager
    def open(self, dimension: int) -> Iterator[MemoryStore]:
        """The store, for embeddings of ``dimension`` values, closed after the step."""
        store = open_memory_store(self.url, dimension)
        try:
            yield store
        finally:
            store.close()


def check_embedder(backend: str, dimension: int) -> None:
    """Refuse an embedder that does not exist or a dimension it cannot make."""
    if backend not in EMBEDDERS:
        raise ConfigurationError(
            f"SOULPRINT_EMBEDDER={backend!r} is not an embedder; choose one of {EMBEDDERS}."
        )
    if backend == "bedrock" and dimension not in TITAN_DIMENSIONS:
        raise ConfigurationError(
            f"SOULPRINT_EMBEDDING_DIMENSION={dimension} is not one Titan V2 makes; "
            f"choose one of {TITAN_DIMENSIONS}."
        )


def memory_code_version() -> str:
    """The memory asset's code version: the chunker's and the configured embedder's, so a
    change of either (and only that) marks every user's memory stale."""
    backend = os.getenv("SOULPRINT_EMBEDDER", "offline")
    model = os.getenv("SOULPRINT_EMBEDDING_MODEL_ID") or (
        TITAN_V2 if backend == "bedrock" else OfflineEmbedder.model
    )
    dimension = os.getenv("SOULPRINT_EMBEDDING_DIMENSION") or DEFAULT_DIMENSION
    return f"chunker-v{CHUNKER_VERSION}+{model}/{dimension}"
