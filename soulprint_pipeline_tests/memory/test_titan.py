"""Titan Text Embeddings V2 via Bedrock, against the local InvokeModel stub.

The real boto3 client runs: its endpoint resolution from the environment, its SigV4 signing,
its error parsing and its retries (only the backoff's sleep is shortened).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import numpy as np
import pytest
from botocore.retries import bucket, standard

from soulprint_pipeline.errors import ConfigurationError
from soulprint_pipeline.memory.embedders import (
    TITAN_V2,
    Embedder,
    EmbedderSettings,
    PermanentEmbeddingError,
    TransientEmbeddingError,
    open_embedder,
)
from soulprint_pipeline_tests.support.bedrock_stub import (
    BedrockStub,
    Reply,
    bedrock_error,
    throttled,
    titan_vector,
)

TEXTS = [f"chunk {n}: we talked about painting the kitchen, take {n}" for n in range(10)]


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shorten botocore's waits, which have no setting: its backoff (up to 1 s, 2 s, ...
    before each retry) and adaptive mode's rate limiter (down to 0.5 calls a second once
    throttled). Its decisions (what to retry, how often, the rates) still run."""
    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0.01)
    monkeypatch.setattr(bucket.TokenBucket, "acquire", lambda self, amount=1, block=True: True)


def _open(**fields: object) -> Embedder:
    settings = {"backend": "bedrock", "dimension": 256, "max_retries": 2, **fields}
    return open_embedder(EmbedderSettings(**settings))


@pytest.fixture
def titan(bedrock: BedrockStub) -> Iterator[Embedder]:
    with _open() as embedder:
        yield embedder


def test_vectors_are_unit_length_in_input_order(titan: Embedder, bedrock: BedrockStub) -> None:
    vectors = titan.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), 256) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    expected = np.array([titan_vector(text, 256) for text in TEXTS], dtype=np.float32)
    np.testing.assert_allclose(vectors, expected, atol=1e-6)  # row n is text n's
    assert titan.model == TITAN_V2 and titan.identity == f"{TITAN_V2}/256"
    assert titan.stats.as_dict() == {
        "calls": len(TEXTS),
        "retries": 0,
        "input_tokens": sum(len(text) // 4 for text in TEXTS),
        "texts": len(TEXTS),
    }


def test_the_request_is_titans_and_signed_for_bedrock(
    titan: Embedder, bedrock: BedrockStub
) -> None:
    titan.embed(["just one text"])
    [request] = bedrock.titan_requests
    assert request.model == TITAN_V2  # URL-escaped in the path, unescaped by the stub
    assert request.body == {"inputText": "just one text", "dimensions": 256, "normalize": True}
    authorization = request.headers["authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIATESTTESTTEST/")
    assert "/us-east-1/bedrock/aws4_request" in authorization  # Bedrock's signing name
    assert request.headers["content-type"] == "application/json"


def test_settings_name_the_model_and_region(bedrock: BedrockStub) -> None:
    model = "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/titan-v2"
    with _open(model_id=model, aws_region="eu-west-1", dimension=512) as embedder:
        assert embedder.embed(["hello"]).shape == (1, 512)
    [request] = bedrock.titan_requests
    assert request.model == model and request.body["dimensions"] == 512
    assert "/eu-west-1/bedrock/aws4_request" in request.headers["authorization"]


def test_the_generic_endpoint_variable_is_honoured(
    bedrock: BedrockStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME")
    monkeypatch.setenv("AWS_ENDPOINT_URL", bedrock.url)
    with _open() as embedder:
        embedder.embed(["hello"])
    assert len(bedrock.titan_requests) == 1


def test_concurrency_is_bounded(bedrock: BedrockStub) -> None:
    bedrock.script_titan(latency=0.05)
    with _open(max_concurrency=3) as embedder:
        vectors = embedder.embed(TEXTS * 2)
    assert vectors.shape == (20, 256)
    assert 1 < bedrock.titan_max_in_flight <= 3  # in parallel, and no more than allowed


def test_throttling_is_retried_by_the_sdk(titan: Embedder, bedrock: BedrockStub) -> None:
    bedrock.script_titan(throttled(), throttled())
    vectors = titan.embed(["a throttled text"])
    np.testing.assert_allclose(vectors[0], titan_vector("a throttled text", 256), atol=1e-6)
    assert len(bedrock.titan_requests) == 3
    assert titan.stats.retries == 2 and titan.stats.calls == 1


def test_throttling_past_the_retries_is_transient(titan: Embedder, bedrock: BedrockStub) -> None:
    bedrock.script_titan(then=throttled())
    with pytest.raises(TransientEmbeddingError) as raised:
        titan.embed(["never embedded"])
    assert len(bedrock.titan_requests) == 3  # the first call and max_retries=2
    message = str(raised.value)
    assert "throttled" in message and "ThrottlingException, HTTP 429" in message
    assert "never embedded" not in message
    assert titan.stats.retries == 2


def test_an_outage_past_the_retries_is_transient(titan: Embedder, bedrock: BedrockStub) -> None:
    bedrock.script_titan(then=bedrock_error(503, "ServiceUnavailableException"))
    with pytest.raises(TransientEmbeddingError, match="unavailable"):
        titan.embed(["text"])
    assert len(bedrock.titan_requests) == 3


def test_access_denied_fails_fast_and_clearly(titan: Embedder, bedrock: BedrockStub) -> None:
    bedrock.script_titan(then=bedrock_error(403, "AccessDeniedException", "no access"))
    started = time.perf_counter()
    with pytest.raises(PermanentEmbeddingError) as raised:
        titan.embed(["a private text"])
    assert time.perf_counter() - started < 2
    assert len(bedrock.titan_requests) == 1 and titan.stats.retries == 0
    message = str(raised.value)
    assert "AccessDeniedException, HTTP 403" in message and "Titan" in message
    assert "private" not in message


def test_an_unreachable_endpoint_is_transient(
    bedrock: BedrockStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", f"http://127.0.0.1:{port}")
    with _open() as embedder, pytest.raises(TransientEmbeddingError, match="could not be reached"):
        embedder.embed(["text"])


def test_missing_credentials_are_permanent(
    bedrock: BedrockStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance role lookup either
    with _open() as embedder, pytest.raises(PermanentEmbeddingError, match="credentials"):
        embedder.embed(["text"])
    assert bedrock.titan_requests == []


@pytest.mark.parametrize(
    ("reply", "says"),
    [
        (bedrock_error(400, "ValidationException", "Malformed input request"), "rejected"),
        (bedrock_error(404, "ResourceNotFoundException"), "not found"),
        (bedrock_error(403, "UnrecognizedClientException"), "refused"),
    ],
)
def test_other_refusals_are_permanent(
    titan: Embedder, bedrock: BedrockStub, reply: Reply, says: str
) -> None:
    bedrock.script_titan(then=reply)
    with pytest.raises(PermanentEmbeddingError, match=says):
        titan.embed(["text"])
    assert len(bedrock.titan_requests) == 1


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("<html>not json</html>", "not valid JSON"),
        ('{"inputTextTokenCount": 3}', "no embedding"),
        ('{"embedding": [0.5, 0.5], "inputTextTokenCount": 3}', "2 values, not the 256"),
        ('{"embedding": ' + str(["x"] * 256).replace("'", '"') + "}", "not numbers"),
        ('{"embedding": ' + str([0.0] * 256) + "}", "zero or infinite length"),
    ],
)
def test_a_malformed_answer_is_permanent(
    titan: Embedder, bedrock: BedrockStub, body: str, says: str
) -> None:
    bedrock.script_titan(then=Reply(text=body))
    with pytest.raises(PermanentEmbeddingError, match=says):
        titan.embed(["text"])


def test_a_failure_cancels_the_calls_not_started(bedrock: BedrockStub) -> None:
    bedrock.script_titan(bedrock_error(403, "AccessDeniedException"), latency=0.02)
    with _open(max_concurrency=2) as embedder, pytest.raises(PermanentEmbeddingError):
        embedder.embed(TEXTS * 5)
    assert len(bedrock.titan_requests) < 50


def test_vectors_are_renormalized(titan: Embedder, bedrock: BedrockStub) -> None:
    bedrock.script_titan(then=Reply(text='{"embedding": ' + str([3.0] * 256) + "}"))
    [vector] = titan.embed(["text"])
    np.testing.assert_allclose(vector, np.full(256, 1 / 16, dtype=np.float32), rtol=1e-6)
    assert titan.stats.input_tokens == 0  # no count in the answer: none assumed


def test_empty_texts_are_refused_without_a_call(titan: Embedder, bedrock: BedrockStub) -> None:
    with pytest.raises(ValueError, match="text 1 of 2 is empty"):
        titan.embed(["fine", "  "])
    assert titan.embed([]).shape == (0, 256)
    assert bedrock.titan_requests == []


@pytest.mark.parametrize("dimension", [300, 1536])
def test_a_dimension_titan_cannot_make_is_refused(dimension: int) -> None:
    with pytest.raises(ConfigurationError, match=f"not {dimension}"):
        _open(dimension=dimension)


def test_a_missing_region_is_a_configuration_error(
    bedrock: BedrockStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_REGION")
    with pytest.raises(ConfigurationError, match="AWS_REGION"):
        _open()
