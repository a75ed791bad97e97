"""Small exports built in code, and the real ones copied into the repository."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

#: Real exports from public projects, copied into the repository (provenance: SOURCES.md there).
REAL_FIXTURES = Path(__file__).parents[1] / "fixtures"


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
