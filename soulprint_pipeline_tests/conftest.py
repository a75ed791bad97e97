"""Shared fixtures: a local S3 server (moto's server mode) and small export builders."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from soulprint_pipeline_tests.bedrock_stub import bedrock, bedrock_server  # noqa: F401
from soulprint_pipeline_tests.postgres import postgres_profiles_url, postgres_url  # noqa: F401

S3_BUCKET = "user-imports"

#: Real exports from public projects, copied into the repository (provenance: SOURCES.md there).
REAL_FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[dict[str, Any]]:
    """A local S3 server speaking the real protocol; yields s3fs storage options for it."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    options = {
        "key": "test-access-key",
        "secret": "test-secret-key",
        "client_kwargs": {"endpoint_url": f"http://{host}:{port}", "region_name": "eu-west-1"},
    }
    try:
        yield options
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server: dict[str, Any]) -> Iterator[Any]:
    """An s3fs filesystem on the local server with an empty ``user-imports`` bucket."""
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True, **s3_server)
    if fs.exists(S3_BUCKET):
        fs.rm(S3_BUCKET, recursive=True)
    fs.mkdir(S3_BUCKET)
    fs.invalidate_cache()
    yield fs


def chatgpt_conversation(
    index: int, turns: list[tuple[str, str]], *, create_time: float = 1_700_000_000.0
) -> dict[str, Any]:
    """A small, canonical ChatGPT conversation with the given (role, text) turns."""
    mapping: dict[str, Any] = {
        "root": {"id": "root", "message": None, "parent": None, "children": []}
    }
    parent = "root"
    for turn, (role, text) in enumerate(turns):
        node_id = f"c{index}-m{turn}"
        mapping[parent]["children"].append(node_id)
        mapping[node_id] = {
            "id": node_id,
            "parent": parent,
            "children": [],
            "message": {
                "id": node_id,
                "author": {"role": role, "name": None, "metadata": {}},
                "create_time": create_time + turn,
                "content": {"content_type": "text", "parts": [text]},
                "metadata": {"model_slug": "gpt-4o"} if role == "assistant" else {},
                "recipient": "all",
            },
        }
        parent = node_id
    return {
        "title": f"Conversation {index}",
        "create_time": create_time,
        "mapping": mapping,
        "current_node": parent,
        "conversation_id": f"conv-{index}",
        "id": f"conv-{index}",
    }


def chatgpt_export_bytes(count: int = 5) -> bytes:
    """A small ChatGPT export (a JSON array) of ``count`` two-turn conversations."""
    conversations = [
        chatgpt_conversation(i, [("user", f"question {i} ✨"), ("assistant", f"answer {i} 答")])
        for i in range(count)
    ]
    return json.dumps(conversations, ensure_ascii=False).encode()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    """A ZIP archive (deflated) holding ``members``, as bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()
