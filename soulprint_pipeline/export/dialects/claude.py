"""Linearizing a Claude.ai conversation (both export shapes) into its visible messages.

The older bulk export lists ``chat_messages`` with no tree and not in sending order, so order
is by time. The newer shape links messages by ``parent_message_uuid`` and names the branch shown
last in ``current_leaf_message_uuid``: that path is followed, as for ChatGPT.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from soulprint_pipeline.export.dialects.branches import walk_back
from soulprint_pipeline.export.rows import Conversation, Message, id_text, number

_ROLES = {"human": "user", "assistant": "assistant"}


def _seconds(value: Any) -> float | None:
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except (ValueError, OverflowError, OSError):  # not a time, or none a calendar holds
            return None
    return number(value)


def _name_of(sender: Any) -> str:
    """A sender for a counter: a role name (kept short), or the JSON type of anything else,
    never its content."""
    if isinstance(sender, str):
        return sender[:40]
    for kind, name in ((bool, "boolean"), ((int, float), "number"), (dict, "object")):
        if isinstance(sender, kind):
            return name
    return "array" if isinstance(sender, list) else "null"


def _text(message: dict[str, Any]) -> str:
    """Text blocks of ``content[]`` first (the newer shape leaves ``text`` empty), else ``text``."""
    blocks = message.get("content")
    pieces = []
    if isinstance(blocks, list):
        for block in blocks:
            if isinstance(block, dict) and block.get("type") == "text":
                text = block.get("text")
                if isinstance(text, str) and text:
                    pieces.append(text)
    if not pieces and isinstance(message.get("text"), str):
        pieces.append(message["text"])
    files = [
        item
        for key in ("files_v2", "files", "attachments")
        if isinstance(message.get(key), list)
        for item in message[key]
        if isinstance(item, dict)
    ]
    if files and all(not piece or piece.isspace() for piece in pieces):
        kinds = {
            item.get("file_kind") if isinstance(item.get("file_kind"), str) else None
            for item in files
        }
        pieces.append("[image]" if kinds == {"image"} else "[attachment]")
    return "\n".join(pieces)


def _ordered(conversation: dict[str, Any], messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_id = {m.get("uuid"): m for m in messages if isinstance(m.get("uuid"), str)}
    leaf = conversation.get("current_leaf_message_uuid")
    if not (isinstance(leaf, str) and leaf in by_id):
        leaf = _newest_leaf(by_id)
    if leaf is not None:
        return [message for _, message in walk_back(by_id, leaf, "parent_message_uuid")]
    # No tree: order by time (stable for equal or missing times, which sort first).
    return sorted(messages, key=lambda m: _seconds(m.get("created_at")) or float("-inf"))


def _newest_leaf(by_id: dict[str, dict[str, Any]]) -> str | None:
    """The branch the app shows when the conversation names none: its newest leaf, by time (the
    last one listed among equals). ``None`` when the messages are not linked into a tree (the
    older bulk export)."""
    parents = {
        parent
        for parent in (m.get("parent_message_uuid") for m in by_id.values())
        if isinstance(parent, str)
    }
    if parents.isdisjoint(by_id):
        return None
    leaves = [message_id for message_id in by_id if message_id not in parents]
    if not leaves:
        return None  # every message is a parent: a cycle, no branch to follow
    return max(
        reversed(leaves),
        key=lambda message_id: _seconds(by_id[message_id].get("created_at")) or float("-inf"),
    )


def linearize(
    conversation: dict[str, Any], skipped: Counter[str], unknown_types: Counter[str]
) -> Conversation | None:
    """The conversation's visible messages in order (``unknown_types`` counts unknown senders)."""
    raw_messages = conversation.get("chat_messages")
    if not isinstance(raw_messages, list):
        skipped["conversation:no_mapping"] += 1
        return None
    messages = []
    model = conversation.get("model") if isinstance(conversation.get("model"), str) else None
    for message in _ordered(conversation, [m for m in raw_messages if isinstance(m, dict)]):
        sender = message.get("sender")
        role = _ROLES.get(sender) if isinstance(sender, str) else None
        if role is None:
            skipped["message:unknown_role"] += 1
            unknown_types[f"sender:{_name_of(sender)}"] += 1
            continue
        text = _text(message)
        if not text or text.isspace():
            skipped["message:empty"] += 1
            continue
        message_id = message.get("uuid")
        messages.append(
            Message(
                message_id if isinstance(message_id, str) else None,
                role,
                "text",
                text,
                _seconds(message.get("created_at")),
                model if role == "assistant" else None,
            )
        )
    conversation_id = conversation.get("uuid")
    title = conversation.get("name")
    return Conversation(
        id_text(conversation_id),
        title if isinstance(title, str) else None,
        _seconds(conversation.get("created_at")),
        messages,
    )
