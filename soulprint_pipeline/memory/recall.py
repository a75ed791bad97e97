"""Recall: a user's memory chunks nearest to a query, best first.

The call the app's chat makes (through the same store and embedder the memory was built with)
and what ``soulprint-pipeline recall`` prints for an operator.
"""

from __future__ import annotations

from soulprint_pipeline.errors import ConfigurationError
from soulprint_pipeline.memory.embedders import Embedder
from soulprint_pipeline.memory.store import MemoryStore, Recalled
from soulprint_pipeline.users import validate_user_id


def recall(
    store: MemoryStore, embedder: Embedder, user_id: str, query: str, k: int = 5
) -> list[Recalled]:
    """The ``k`` chunks of ``user_id``'s memory nearest in meaning to ``query``."""
    validate_user_id(user_id)
    if not query.strip():
        raise ConfigurationError("A recall query needs some words.")
    if store.dimension != embedder.dimension:
        raise ConfigurationError(
            f"The memory holds {store.dimension}-value embeddings and the embedder makes "
            f"{embedder.dimension}: recall with the embedder the memory was built with."
        )
    vector = embedder.embed([query])[0]
    return store.search(user_id, vector.tolist(), k)
