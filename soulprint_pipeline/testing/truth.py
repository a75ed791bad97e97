"""What a reader should see in a synthetic export: the ground truth the generator reports.

:class:`ExportTruth` counts what :mod:`soulprint_pipeline.testing.synthetic` wrote, so tests can
compare a parser's output with it. :func:`classify_message` and :func:`message_text` are the
visibility rules those counts follow, on plain message dicts: which active-path messages become
rows, which are custom instructions or memories, and what text a row keeps. They know nothing of
how an export is generated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ExportTruth", "classify_message", "message_text"]


@dataclass
class ExportTruth:
    """Ground truth about what was written, for tests to compare with a parser."""

    conversations: int = 0  # conversation objects written (including the ones below)
    visible_messages: int = 0  # active-path messages a parser must emit as rows
    do_not_remember: int = 0  # conversations with is_do_not_remember true (rows not counted)
    without_mapping: int = 0  # corrupted conversations with no mapping/current_node (0 rows)
    custom_instructions: int = 0  # user_editable_context nodes on active paths
    memories: int = 0  # memory writes (recipient "bio") and model_editable_context on paths
    bytes_written: int = 0  # uncompressed JSON bytes (conversation JSON only)


_VISIBLE_CONTENT_TYPES = frozenset(
    {"text", "multimodal_text", "code", "execution_output", "tether_quote"}
)
# A browsing tool's quotes are plumbing; code output and generated images the person saw.
_VISIBLE_TOOL_CONTENT_TYPES = frozenset({"execution_output", "multimodal_text"})


def message_text(content: dict[str, Any]) -> str:
    """Return the text a parser should keep for a message ``content`` object.

    ``text``/``multimodal_text`` join their string parts with newlines; an image part becomes
    ``[image]`` and an audio transcription its text. ``code``, ``execution_output`` and
    ``tether_quote`` use their ``text`` field. Anything else has no text.
    """
    content_type = content.get("content_type")
    if content_type in ("text", "multimodal_text"):
        pieces: list[str] = []
        for part in content.get("parts") or ():
            if isinstance(part, str):
                pieces.append(part)
            elif isinstance(part, dict):
                part_type = part.get("content_type")
                if part_type == "image_asset_pointer":
                    pieces.append("[image]")
                elif part_type == "audio_transcription":
                    pieces.append(part.get("text") or "")
        return "\n".join(pieces)
    if content_type in ("code", "execution_output", "tether_quote"):
        return content.get("text") or ""
    return ""


def classify_message(message: dict[str, Any] | None) -> str | None:
    """Classify a message that lies on the active path.

    Returns ``"custom"`` for a ``user_editable_context`` node, ``"memory"`` for an assistant
    message sent to ``bio``, ``"visible"`` for a message a parser must emit as a row, and None
    for everything else (hidden, system, tool calls, reasoning, empty text...).
    """
    if not message:
        return None
    content = message.get("content") or {}
    content_type = content.get("content_type")
    role = (message.get("author") or {}).get("role")
    recipient = message.get("recipient") or "all"
    if content_type == "user_editable_context":
        return "custom"
    if content_type == "model_editable_context" or (role == "assistant" and recipient == "bio"):
        return "memory"
    if (message.get("metadata") or {}).get("is_visually_hidden_from_conversation"):
        return None
    if role == "tool":
        if content_type not in _VISIBLE_TOOL_CONTENT_TYPES:
            return None
    elif role not in ("user", "assistant"):
        return None
    if recipient != "all" or content_type not in _VISIBLE_CONTENT_TYPES:
        return None
    if not message_text(content).strip():
        return None
    return "visible"
