"""A local HTTP server that speaks Bedrock's InvokeModel API for Anthropic and Titan models.

``POST /model/{model_id}/invoke``, with the model id URL-escaped in the path:

* Anthropic models take the messages body; answers are scripted per test (a text, or an HTTP
  error) with :meth:`BedrockStub.script`. :func:`soulprint_json` writes a valid answer.
* Titan Text Embeddings (told apart by their body, ``{"inputText", "dimensions",
  "normalize"}``, since the model id may be an ARN) answer with a deterministic unit vector
  derived from the text (:func:`titan_vector`), unless :meth:`BedrockStub.script_titan`
  scripts otherwise (:func:`bedrock_error` writes Bedrock's errors); an optional latency per
  call, and the most calls ever in flight at once, let tests check a client's concurrency.

Every request is recorded so tests can check what the real clients (``AsyncAnthropicBedrock``,
boto3's ``bedrock-runtime``) sent: their SigV4 signature, the body, the budget.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import numpy as np
import pytest

from soulprint_pipeline.soulprint.sections import NOT_ENOUGH_DATA, SECTION_FIELDS


def soulprint_json(ai_name: str = "Nova", **overrides: object) -> str:
    """A valid soulprint answer naming the AI ``ai_name``; ``section__field=value`` overrides."""
    sections = {
        section: {name: ["a", "b", "c"] if kind is list else "x" for name, kind in fields.items()}
        for section, fields in SECTION_FIELDS.items()
    }
    sections["identity"]["ai_name"] = ai_name
    sections["identity"]["archetype"] = "Curious Builder"
    sections["user"]["name"] = NOT_ENOUGH_DATA
    for key, value in overrides.items():
        section, name = key.split("__")
        sections[section][name] = value
    return json.dumps(sections)


@dataclass
class Reply:
    """One scripted answer: a model text (status 200) or an HTTP error.

    On the Titan route, a 200 with a ``text`` sends that text as the raw body (a malformed
    answer); a 200 without one sends the real embedding.
    """

    text: str = ""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    input_tokens: int = 1200
    output_tokens: int = 600


@dataclass
class Recorded:
    """One request the stub received."""

    model: str
    headers: dict[str, str]
    body: dict[str, Any]


def bedrock_error(status: int, code: str, message: str = "") -> Reply:
    """Bedrock's error: the status, the code in ``x-amzn-ErrorType``, ``{"message"}`` as body.

    botocore's rest-json parser reads the code from that header (else from a ``code`` in the
    body), and its retry policy decides on the code: a 429 without it is not throttling.
    """
    return Reply(status=status, text=message or code, headers={"x-amzn-ErrorType": code})


def throttled() -> Reply:
    """Bedrock's throttling answer: 429 ``ThrottlingException``."""
    return bedrock_error(429, "ThrottlingException", "Too many requests, please wait.")


def titan_vector(text: str, dimension: int) -> list[float]:
    """The stub's embedding of ``text``: a unit vector seeded by the text's hash."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(dimension)
    return (vector / np.linalg.norm(vector)).tolist()


class BedrockStub:
    """The server's state: the replies still to give and the requests received."""

    def __init__(self, remember_requests: bool = True) -> None:
        #: False for a benchmark's stub, which answers tens of thousands of calls
        self.remember_requests = remember_requests
        self.replies: list[Reply] = []
        self.then: Reply | None = None
        self.latency = 0.0
        #: Anthropic calls being answered now, and the most there ever were at once.
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests: list[Recorded] = []
        self.url = ""
        self._lock = threading.Lock()  # Titan calls arrive in parallel
        self._titan_reset()

    def script(self, *replies: Reply, then: Reply | None = None, latency: float = 0.0) -> None:
        """The Anthropic route's next answers, in order, then ``then`` for every later call
        (an error if None), each taking ``latency`` seconds at least; forgets the requests
        received."""
        with self._lock:
            self.replies = list(replies)
            self.then = then
            self.latency = latency
            self.in_flight = 0
            self.max_in_flight = 0
            self.requests = []
            self._titan_reset()

    def script_titan(
        self, *replies: Reply, then: Reply | None = None, latency: float = 0.0
    ) -> None:
        """The Titan route's next answers, in order, then ``then`` for every later call (a
        real embedding if None); each call takes ``latency`` seconds at least."""
        with self._lock:
            self.titan_replies = list(replies)
            self.titan_then = then
            self.titan_latency = latency

    @property
    def titan_requests(self) -> list[Recorded]:
        """The requests received on the Titan route."""
        with self._lock:
            return [request for request in self.requests if "inputText" in request.body]

    def _titan_reset(self) -> None:
        self.titan_replies: list[Reply] = []
        self.titan_then: Reply | None = None
        self.titan_latency = 0.0
        self.titan_in_flight = 0
        self.titan_max_in_flight = 0

    def _enter(self, request: Recorded) -> tuple[Reply, float]:
        """Records an Anthropic call and picks its reply (calls may arrive in parallel)."""
        with self._lock:
            if self.remember_requests:
                self.requests.append(request)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if self.replies:
                return self.replies.pop(0), self.latency
            return self.then or Reply(status=500, text="no reply scripted"), self.latency

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _titan_enter(self, request: Recorded) -> tuple[Reply | None, float]:
        with self._lock:
            if self.remember_requests:
                self.requests.append(request)
            self.titan_in_flight += 1
            self.titan_max_in_flight = max(self.titan_max_in_flight, self.titan_in_flight)
            reply = self.titan_replies.pop(0) if self.titan_replies else self.titan_then
            return reply, self.titan_latency

    def _titan_leave(self) -> None:
        with self._lock:
            self.titan_in_flight -= 1


def _handler(stub: BedrockStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        def do_POST(self) -> None:
            parts = self.path.split("/")
            if len(parts) != 4 or parts[1] != "model" or parts[3] != "invoke":
                self._send(404, {"message": f"unknown path {self.path}"})
                return
            length = int(self.headers.get("content-length", 0))
            body = json.loads(self.rfile.read(length))
            headers = {k.lower(): v for k, v in self.headers.items()}
            model = unquote(parts[2])
            if "inputText" in body:  # Titan's, whatever the model id (an ARN, a profile)
                self._titan(Recorded(model, headers, body))
                return
            reply, latency = stub._enter(Recorded(model, headers, body))
            # a call stops counting as in flight before its answer is sent: the client may
            # send its next call as soon as it has the answer, before this thread runs again
            try:
                time.sleep(latency)
            finally:
                stub._leave()
            self._anthropic(reply, len(stub.requests))

        def _anthropic(self, reply: Reply, number: int) -> None:
            if reply.status != 200:
                self._send(reply.status, {"message": reply.text or "error"}, reply.headers)
                return
            self._send(
                200,
                {
                    "id": f"msg_{number}",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-haiku-4-5-20251001",
                    "content": [{"type": "text", "text": reply.text}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": reply.input_tokens,
                        "output_tokens": reply.output_tokens,
                    },
                },
            )

        def _titan(self, request: Recorded) -> None:
            reply, latency = stub._titan_enter(request)
            try:
                time.sleep(latency)
            finally:
                stub._titan_leave()  # before the answer is sent (see do_POST)
            if reply is not None and reply.status != 200:
                self._send(reply.status, {"message": reply.text or "error"}, reply.headers)
            elif reply is not None and reply.text:
                self._send(200, reply.text)
            else:
                text = request.body["inputText"]
                dimension = request.body.get("dimensions", 1024)
                answer = {
                    "embedding": titan_vector(text, dimension),
                    "inputTextTokenCount": max(1, len(text) // 4),
                }
                self._send(200, answer)

        def _send(
            self, status: int, payload: dict | str, headers: dict[str, str] | None = None
        ) -> None:
            data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


def serve_until_stdin_closes(stub: BedrockStub) -> None:
    """A benchmark's stub in a process of its own: serves on a loopback port (keep-alive, as
    Bedrock's endpoint, else each call pays a new TCP connection), prints ``{"url": ...}`` and
    returns when the driver closes this process's stdin."""

    class Handler(_handler(stub)):  # type: ignore[misc, valid-type]
        protocol_version = "HTTP/1.1"

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(json.dumps({"url": f"http://127.0.0.1:{server.server_address[1]}"}), flush=True)
    sys.stdin.read()
    server.shutdown()


@pytest.fixture(scope="session")
def bedrock_server() -> Iterator[BedrockStub]:
    """The stub server, on a free loopback port, for the whole session."""
    stub = BedrockStub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stub))
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()


@pytest.fixture
def bedrock(bedrock_server: BedrockStub, monkeypatch: pytest.MonkeyPatch) -> BedrockStub:
    """The stub, with the AWS environment the SDK reads pointed at it (fake credentials)."""
    monkeypatch.setenv("ANTHROPIC_BEDROCK_BASE_URL", bedrock_server.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTTESTTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    # boto3's bedrock-runtime clients too, and nothing from this machine's AWS setup
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", bedrock_server.url)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_BEARER_TOKEN_BEDROCK",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
        "AWS_MAX_ATTEMPTS",
        "AWS_RETRY_MODE",
    ):
        monkeypatch.delenv(name, raising=False)
    bedrock_server.script()
    return bedrock_server
