"""Amazon Titan Text Embeddings V2 on Bedrock: one ``InvokeModel`` call per text.

Titan V2 embeds one text per call (``{"inputText", "dimensions", "normalize"}`` in,
``{"embedding", "inputTextTokenCount"}`` out), so :meth:`TitanEmbedder.embed` runs the calls
on a bounded thread pool; boto3 clients are thread-safe, and their connection pool is sized
to the pool. botocore's own retries (adaptive mode by default: exponential backoff with
jitter, and a client-side rate limiter once Bedrock throttles) absorb throttling and
transient errors; what still fails is sorted into :class:`PermanentEmbeddingError` (retrying
will not help) and :class:`TransientEmbeddingError` (a later attempt may succeed).

Everything comes from the standard AWS configuration: credentials from the AWS chain; the
region from ``settings.aws_region``, else ``AWS_REGION`` (as the Anthropic Bedrock client
reads it), else botocore's chain (``AWS_DEFAULT_REGION``, the profile); the endpoint from
``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` or ``AWS_ENDPOINT_URL`` when set (tests point these at
a local stub), else Bedrock's own.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import Any

import boto3
import numpy as np
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)

from soulprint_pipeline.errors import ConfigurationError
from soulprint_pipeline.memory.embedders import (
    TITAN_DIMENSIONS,
    TITAN_USD_PER_MILLION_TOKENS,
    TITAN_V2,
    Embedder,
    EmbedderSettings,
    EmbeddingError,
    PermanentEmbeddingError,
    TransientEmbeddingError,
)

RETRY_MODES = ("adaptive", "standard")

# Bedrock Runtime's error codes, by what a retry can do about them.
_TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "ServiceQuotaExceededException",
        "ModelNotReadyException",
        "ModelTimeoutException",
        "ModelErrorException",
        "InternalServerException",
        "ServiceUnavailableException",
    }
)
_REFUSED_CODES = frozenset(
    {
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "IncompleteSignatureException",
        "MissingAuthenticationTokenException",
    }
)
# The code goes into a message the person sees: only a plain identifier is repeated.
_PLAIN_CODE = re.compile(r"[A-Za-z][A-Za-z0-9]{0,63}")


class TitanEmbedder(Embedder):
    """Titan Text Embeddings V2 through boto3's ``bedrock-runtime`` client.

    ``settings.model_id`` may name another Titan V2 model id, inference profile or
    provisioned-throughput ARN: anything that takes Titan V2's request body.
    ``settings.extra["retry_mode"]`` picks botocore's retry mode (``adaptive``, the default,
    or ``standard``).
    """

    usd_per_million_tokens = TITAN_USD_PER_MILLION_TOKENS

    def __init__(self, settings: EmbedderSettings) -> None:
        super().__init__()
        if settings.dimension not in TITAN_DIMENSIONS:
            raise ConfigurationError(
                f"Titan Text Embeddings V2 makes vectors of {', '.join(map(str, TITAN_DIMENSIONS))}"
                f" dimensions, not {settings.dimension}: set the embedder's dimension to one "
                "of these."
            )
        if settings.max_concurrency < 1:
            raise ConfigurationError(
                "The embedder's max_concurrency must be at least 1, "
                f"not {settings.max_concurrency}."
            )
        if settings.max_retries < 0:
            raise ConfigurationError(
                f"The embedder's max_retries must be 0 or more, not {settings.max_retries}."
            )
        retry_mode = settings.extra.get("retry_mode", "adaptive")
        if retry_mode not in RETRY_MODES:
            raise ConfigurationError(
                f"The embedder's retry_mode must be one of {RETRY_MODES}, not {retry_mode!r}."
            )
        self.model = settings.model_id or TITAN_V2
        self.dimension = settings.dimension
        self.max_retries = settings.max_retries
        self._lock = threading.Lock()  # the pool's threads all count into self.stats
        config = Config(
            retries={"mode": retry_mode, "max_attempts": settings.max_retries},
            max_pool_connections=settings.max_concurrency,
            connect_timeout=min(settings.timeout_seconds, 10.0),
            read_timeout=settings.timeout_seconds,
        )
        # A session of its own: boto3's default session is not safe to share across threads.
        session = boto3.session.Session(
            region_name=settings.aws_region or os.environ.get("AWS_REGION") or None
        )
        try:
            self._client = session.client("bedrock-runtime", config=config)
        except NoRegionError:
            raise ConfigurationError(
                "No AWS region is configured for the embedding model: set AWS_REGION (or "
                "AWS_DEFAULT_REGION, or a region in the AWS profile) or the embedder's "
                "aws_region."
            ) from None
        self._pool = ThreadPoolExecutor(
            max_workers=settings.max_concurrency, thread_name_prefix="titan-embed"
        )
        self._closed = False

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One unit vector per text, in input order; one Titan call per text, in parallel.

        Empty (or whitespace-only) texts are refused with :class:`ValueError`, without a call:
        Titan rejects an empty input, and no vector of blank text would mean anything in a
        cosine search. On the first failed call, the calls not yet started are cancelled and
        that failure is raised.
        """
        if self._closed:
            raise RuntimeError("this embedder is closed")
        for index, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"text {index} of {len(texts)} is empty or not a string")
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return vectors
        futures = [self._pool.submit(self._embed_one, text) for text in texts]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = _first_failure(futures, done)
        if failed is not None:
            for future in futures:
                future.cancel()
            raise failed
        for row, future in enumerate(futures):
            vectors[row] = future.result()
        with self._lock:
            self.stats.texts += len(texts)
        return vectors

    def close(self) -> None:
        """Cancel calls not yet started, wait for those in flight, and close the client."""
        if self._closed:
            return
        self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()

    def _embed_one(self, text: str) -> np.ndarray:
        body = json.dumps({"inputText": text, "dimensions": self.dimension, "normalize": True})
        try:
            response = self._client.invoke_model(
                modelId=self.model,
                body=body,
                contentType="application/json",
                accept="application/json",
            )
        except ClientError as error:
            self._count(error.response.get("ResponseMetadata", {}))
            raise self._classify(error) from error
        except (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError) as error:
            self._count({})
            raise PermanentEmbeddingError(
                f"No usable AWS credentials were found for the embedding model "
                f"({type(error).__name__}): configure the AWS credentials of this deployment."
            ) from error
        except (ConnectionError, HTTPClientError) as error:
            self._count({})  # botocore reports no retry count with these
            raise TransientEmbeddingError(
                f"The embedding model could not be reached ({type(error).__name__}) after "
                f"{self.max_retries} retries; a later attempt may succeed."
            ) from error
        metadata = response.get("ResponseMetadata", {})
        raw = response["body"].read()
        vector, tokens = self._parse(raw)
        self._count(metadata, tokens)
        return vector

    def _count(self, metadata: dict[str, Any], tokens: int = 0) -> None:
        with self._lock:
            self.stats.calls += 1
            self.stats.retries += int(metadata.get("RetryAttempts", 0))
            self.stats.input_tokens += tokens

    def _parse(self, raw: bytes) -> tuple[np.ndarray, int]:
        """The unit vector and the token count in Titan's answer, checked."""
        try:
            answer = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise PermanentEmbeddingError(
                "The embedding model's answer was not valid JSON."
            ) from None
        embedding = answer.get("embedding") if isinstance(answer, dict) else None
        if not isinstance(embedding, list):
            raise PermanentEmbeddingError("The embedding model's answer held no embedding.")
        if len(embedding) != self.dimension:
            raise PermanentEmbeddingError(
                f"The embedding model's answer held an embedding of {len(embedding)} values, "
                f"not the {self.dimension} requested."
            )
        if not all(
            isinstance(value, int | float) and not isinstance(value, bool) for value in embedding
        ):
            raise PermanentEmbeddingError(
                "The embedding model's answer held an embedding with values that are not numbers."
            )
        vector = np.asarray(embedding, dtype=np.float32)
        norm = float(np.linalg.norm(vector))
        if not math.isfinite(norm) or norm == 0.0:
            raise PermanentEmbeddingError(
                "The embedding model's answer held an embedding of zero or infinite length."
            )
        # normalize=true asks Titan for unit vectors; float32 rounding (or a model that
        # ignores the flag) could leave them slightly off, and cosine search assumes unit length.
        vector /= np.float32(norm)
        tokens = answer.get("inputTextTokenCount", 0)
        return vector, tokens if isinstance(tokens, int) and tokens >= 0 else 0

    def _classify(self, error: ClientError) -> EmbeddingError:
        details = error.response.get("Error", {})
        metadata = error.response.get("ResponseMetadata", {})
        status = int(metadata.get("HTTPStatusCode") or 0)
        code = str(details.get("Code") or "")
        what = f"{code}, HTTP {status}" if _PLAIN_CODE.fullmatch(code) else f"HTTP {status}"
        if code in _TRANSIENT_CODES or status in (408, 429) or status >= 500:
            retries = int(metadata.get("RetryAttempts", 0))
            if code == "ThrottlingException" or status == 429:
                state = "was throttled"
            else:
                state = "was unavailable"
            return TransientEmbeddingError(
                f"The embedding model {state} ({what}) and did not recover after {retries} "
                "retries; a later attempt may succeed."
            )
        if code in _REFUSED_CODES or status in (401, 403):
            return PermanentEmbeddingError(
                f"The embedding model refused the request ({what}): check the AWS credentials "
                "and that Titan Text Embeddings V2 is enabled in this region."
            )
        if code == "ResourceNotFoundException" or status == 404:
            return PermanentEmbeddingError(
                f"The embedding model was not found ({what}): check the model id "
                f"({self.model}) and the AWS region."
            )
        if code == "ValidationException":
            return PermanentEmbeddingError(
                f"The embedding model rejected the request ({what}): a text may be longer "
                "than the model accepts, or the model id may not take Titan V2's request."
            )
        return PermanentEmbeddingError(f"The embedding model refused the request ({what}).")


def _first_failure(futures: list[Future], done: set[Future]) -> BaseException | None:
    """The failure to report: the first, in input order, among the calls that finished."""
    for future in futures:
        if future in done and not future.cancelled() and future.exception() is not None:
            return future.exception()
    return None
