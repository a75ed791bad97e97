"""Embedders: texts in, unit vectors out.

* ``offline`` (the embedded default): :class:`OfflineEmbedder`, computed locally, no keys, no
  downloads, deterministic (see its docstring for what it is good for).
* ``bedrock``: Amazon Titan Text Embeddings V2 (:mod:`~soulprint_pipeline.memory.titan`),
  credentials from the standard AWS chain.

Every embedder counts what it did in :class:`EmbeddingStats`, for the asset's metadata.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from soulprint_pipeline.errors import UserSafeError
from soulprint_pipeline.soulprint.sampling import estimate_tokens

EMBEDDERS = ("offline", "bedrock")
TITAN_V2 = "amazon.titan-embed-text-v2:0"
TITAN_DIMENSIONS = (256, 512, 1024)
#: Titan Text Embeddings V2, on demand: $0.02 per million input tokens.
TITAN_USD_PER_MILLION_TOKENS = 0.02


class EmbeddingError(UserSafeError):
    """Embedding failed: ``str(error)`` says why, fit for the person (never their text)."""


class PermanentEmbeddingError(EmbeddingError):
    """Retrying will not help (credentials, access to the model, a rejected request)."""


class TransientEmbeddingError(EmbeddingError):
    """Throttled or unavailable past the client's retries: a later attempt may succeed."""


@dataclass
class EmbeddingStats:
    """What an embedder did: calls, retries, and input tokens (as the service counted them)."""

    calls: int = 0
    retries: int = 0
    input_tokens: int = 0
    texts: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counts, as plain JSON values."""
        return {
            "calls": self.calls,
            "retries": self.retries,
            "input_tokens": self.input_tokens,
            "texts": self.texts,
        }


class Embedder(ABC):
    """Turns texts into unit vectors of :attr:`dimension` float32 values."""

    model: str
    dimension: int
    usd_per_million_tokens: float = 0.0

    def __init__(self) -> None:
        self.stats = EmbeddingStats()

    @property
    def identity(self) -> str:
        """What makes two embeddings comparable: the model and the dimension."""
        return f"{self.model}/{self.dimension}"

    @abstractmethod
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One unit vector per text, as a ``(len(texts), dimension)`` float32 array."""

    def close(self) -> None:  # noqa: B027 - optional for embedders holding nothing open
        """Release clients and threads."""

    def __enter__(self) -> Embedder:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


_WORD = re.compile(r"\w+", re.UNICODE)
#: Features whose slot the offline embedder keeps (the first seen: vocabularies are Zipfian,
#: and the trigrams, most of the features, are few). 10,000 hold 1.3 MB against 6.2 MB at
#: 50,000, for about 4% of the embedding's speed on the 1 GB export's first 12,000 chunks.
SLOT_CACHE_SIZE = 10_000


class OfflineEmbedder(Embedder):
    """A deterministic, local embedder: hashed words, word pairs and character trigrams.

    Each feature is hashed (BLAKE2b) to one of ``dimension`` slots with a sign, weighted by a
    sublinear count, and the vector is normalized (the "hashing trick" of scikit-learn's
    ``HashingVectorizer``). Texts that share words, or word stems through their trigrams
    ("paint", "painting", "painter"), land near each other, in any language; it knows no
    synonyms, so a query finds a chunk only through words or parts of words they share.
    That is enough for recall of facts stated in the person's own words, and it costs no
    keys, no downloads and no network.
    """

    model = "offline-hashing-v1"

    def __init__(self, dimension: int = 512) -> None:
        super().__init__()
        self.dimension = dimension
        # feature -> its slot, as ``slot`` for a positive sign and ``~slot`` for a negative
        # one: one int a feature, not a tuple of two; bounded (SLOT_CACHE_SIZE)
        self._slots: dict[str, int] = {}

    def _slot(self, feature: str) -> int:
        cached = self._slots.get(feature)
        if cached is None:
            digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
            number = int.from_bytes(digest, "little")
            slot = number % self.dimension
            cached = slot if number >> 63 else ~slot
            if len(self._slots) < SLOT_CACHE_SIZE:
                self._slots[feature] = cached
        return cached

    def _features(self, text: str) -> dict[str, float]:
        words = _WORD.findall(unicodedata.normalize("NFKC", text).casefold())
        counts: dict[str, float] = {}
        for index, word in enumerate(words):
            counts[word] = counts.get(word, 0.0) + 1.0
            if index:
                pair = f"{words[index - 1]} {word}"
                counts[pair] = counts.get(pair, 0.0) + 0.5
            if len(word) > 3:
                padded = f"<{word}>"
                for start in range(len(padded) - 2):
                    gram = "#" + padded[start : start + 3]
                    counts[gram] = counts.get(gram, 0.0) + 0.25
        return counts

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature, count in self._features(text).items():
                slot = self._slot(feature)
                # np.log: float64 arithmetic, so the vectors stay bit for bit what they were
                weight = 1.0 + np.log(count) if count >= 1 else np.float64(count)
                if slot >= 0:
                    vectors[row, slot] += weight
                else:
                    vectors[row, ~slot] -= weight
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        np.divide(vectors, norms, out=vectors, where=norms > 0)
        self.stats.calls += 1
        self.stats.texts += len(texts)
        # estimated the way the soulprint's sample counts them; Titan reports its own count
        self.stats.input_tokens += sum(estimate_tokens(text) for text in texts)
        return vectors


@dataclass(frozen=True)
class EmbedderSettings:
    """Which embedder, and its bounds (the ``embedder`` resource's fields)."""

    backend: str = "offline"
    dimension: int = 512
    model_id: str | None = None  # Titan V2 when unset
    aws_region: str | None = None  # else the AWS chain's
    max_concurrency: int = 8  # Bedrock calls in flight in one step
    max_retries: int = 6  # the SDK's, with its adaptive backoff for throttling
    timeout_seconds: float = 60.0
    extra: dict[str, Any] = field(default_factory=dict)


def open_embedder(settings: EmbedderSettings) -> Embedder:
    """The embedder ``settings`` name."""
    if settings.backend == "offline":
        return OfflineEmbedder(settings.dimension)
    if settings.backend == "bedrock":
        from soulprint_pipeline.memory.titan import TitanEmbedder

        return TitanEmbedder(settings)
    raise ValueError(f"unknown embedder {settings.backend!r}; choose one of {EMBEDDERS}")
