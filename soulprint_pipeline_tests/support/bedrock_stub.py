"""A local HTTP server that speaks Bedrock's InvokeModel API for Anthropic models.

``POST /model/{model_id}/invoke`` with the Anthropic messages body; answers are scripted per
test (a text, or an HTTP error), and every request is recorded so tests can check what the
real ``AsyncAnthropicBedrock`` client sent (its SigV4 signature, the body, the budget).
:func:`soulprint_json` writes a valid answer to script.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

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
    """One scripted answer: a model text (status 200) or an HTTP error."""

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


class BedrockStub:
    """The server's state: the replies still to give and the requests received."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.requests: list[Recorded] = []
        self.url = ""

    def script(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.requests = []

    def _next(self) -> Reply:
        if not self.replies:
            return Reply(status=500, text="no reply scripted")
        return self.replies.pop(0)


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
            stub.requests.append(
                Recorded(unquote(parts[2]), {k.lower(): v for k, v in self.headers.items()}, body)
            )
            reply = stub._next()
            if reply.status != 200:
                self._send(reply.status, {"message": reply.text or "error"}, reply.headers)
                return
            self._send(
                200,
                {
                    "id": f"msg_{len(stub.requests)}",
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

        def _send(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


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
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_BEARER_TOKEN_BEDROCK"):
        monkeypatch.delenv(name, raising=False)
    bedrock_server.script()
    return bedrock_server
