"""Linearizing a ChatGPT conversation: the visible branch of its ``mapping`` tree, as messages.

A ChatGPT conversation is a tree: every regeneration and every edited prompt opens a branch.
What the person last saw is the path from ``current_node`` back to the root, reversed. The
rules for which messages on it are visible follow the public parsers that agree on them
(LibreChat's importer, chatgpt-export-parser, byeGPT): hidden, system, tool-plumbing and
reasoning messages are not part of the conversation a person read.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

from soulprint_pipeline.export._native import branch_messages, common_case, register_types
from soulprint_pipeline.export.dialects.branches import walk_back
from soulprint_pipeline.export.rows import (
    CUSTOM_INSTRUCTIONS,
    MEMORY,
    Conversation,
    Message,
    id_text,
    number,
)

_NEG_INF = float("-inf")

#: Content types whose text a person saw. Of a tool's messages, the person saw only code output
#: and generated images; quotes a browsing tool pulled from pages are plumbing for the answer.
_TEXT_TYPES = frozenset({"text", "multimodal_text", "code", "execution_output", "tether_quote"})
_TOOL_VISIBLE_TYPES = frozenset({"execution_output", "multimodal_text"})
_NEVER_VISIBLE_TYPES = {
    "thoughts": "thoughts",
    "reasoning_recap": "reasoning_recap",
    "tether_browsing_display": "tool_output",
    "system_error": "tool_output",
    "computer_output": "tool_output",
}
_ASSET_PLACEHOLDERS = {
    "image_asset_pointer": "[image]",
    "audio_asset_pointer": "[audio]",
    "real_time_user_audio_video_asset_pointer": "[video]",
    "video_container_asset_pointer": "[video]",
}


class CompactNode(NamedTuple):
    """A finished node of a huge conversation, reduced to what linearizing needs (see
    :func:`compact_node`): a third of a dict's memory, read through the same ``get``."""

    parent: Any
    children: Any
    result: Message | str | None  # what classify() made of its message, or None
    created_at: float | None

    def get(self, key: str, default: Any = None) -> Any:
        """``parent`` and ``children`` as a node dict has them; nothing else."""
        if key == "parent":
            return self.parent
        if key == "children":
            return self.children
        return default


#: What a mapping node can be once parsed: a JSON object, or a compacted one.
_NODE_TYPES = (dict, CompactNode)


def _node_time(node: Any) -> float:
    if node.__class__ is CompactNode:
        return _NEG_INF if node.created_at is None else node.created_at
    message = node.get("message") if isinstance(node, dict) else None
    if isinstance(message, dict):
        created = number(message.get("create_time"))
        if created is not None:
            return created
    return _NEG_INF


def _children(node: Any) -> list[str]:
    children = node.get("children") if isinstance(node, _NODE_TYPES) else None
    if type(children) is list or type(children) is tuple:  # a compacted node's are a tuple
        return [child for child in children if isinstance(child, str)]
    return []


def _newest_leaf(mapping: dict[str, Any]) -> str | None:
    """The leaf a person most likely saw last when ``current_node`` is missing or dangling.

    The newest leaf by message time; without times, the leaf reached from the root by always
    taking the last child (children are appended as branches are made).
    """
    leaves = [
        node_id
        for node_id, node in mapping.items()
        if isinstance(node, _NODE_TYPES) and not any(child in mapping for child in _children(node))
    ]
    if not leaves:
        return None
    newest = max(leaves, key=lambda node_id: _node_time(mapping[node_id]))
    if _node_time(mapping[newest]) != _NEG_INF:
        return newest
    roots = [
        node_id
        for node_id, node in mapping.items()
        if isinstance(node, _NODE_TYPES)
        and not (isinstance(node.get("parent"), str) and node.get("parent") in mapping)
    ]
    node_id = roots[0] if roots else leaves[-1]
    seen: set[str] = set()
    while node_id not in seen:
        seen.add(node_id)
        children = [child for child in _children(mapping[node_id]) if child in mapping]
        if not children:
            return node_id
        node_id = children[-1]
    return node_id


def active_path(mapping: dict[str, Any], current_node: Any) -> list[tuple[str, dict[str, Any]]]:
    """The (node id, node) pairs from the root to ``current_node`` (or the newest leaf),
    guarding against cycles."""
    leaf = current_node if isinstance(current_node, str) and current_node in mapping else None
    if leaf is None:
        leaf = _newest_leaf(mapping)
    path: list[tuple[str, dict[str, Any]]] = []
    node_id: Any = leaf
    node = mapping.get(leaf) if isinstance(leaf, str) else None
    limit = len(mapping)  # a walk longer than there are nodes has met a cycle
    while node is not None:
        if node.__class__ is not dict and not isinstance(node, _NODE_TYPES):
            break
        if len(path) == limit:
            return walk_back(mapping, leaf, "parent")  # met a cycle: walk it carefully
        path.append((node_id, node))
        node_id = node.get("parent")
        node = mapping.get(node_id) if isinstance(node_id, str) else None
    path.reverse()
    return path


def _label(value: Any) -> str | None:
    """A content type as a name: anything but a string is damage, read as no type at all."""
    return value if type(value) is str else None


def _joined_parts(content: dict[str, Any]) -> str:
    pieces: list[str] = []
    parts = content.get("parts")
    for part in parts if type(parts) is list else ():
        if isinstance(part, str):
            if part:
                pieces.append(part)
        elif isinstance(part, dict):
            kind = _label(part.get("content_type"))
            if isinstance(part.get("text"), str) and kind not in _ASSET_PLACEHOLDERS:
                pieces.append(part["text"])  # an audio transcription, a text attachment
            else:
                pieces.append(_ASSET_PLACEHOLDERS.get(kind, "[attachment]"))
    return "\n".join(pieces)


def _content_text(content: dict[str, Any], content_type: str) -> str:
    text = content.get("text")
    if not isinstance(text, str):
        text = _joined_parts(content)
    if content_type == "code" and not _blank(text):
        language = content.get("language")
        language = language if isinstance(language, str) and language != "unknown" else ""
        return f"```{language}\n{text}\n```"
    return text


def _custom_instructions(content: dict[str, Any]) -> str:
    about = content.get("user_profile")
    how = content.get("user_instructions")
    pieces = []
    if isinstance(about, str) and about.strip():
        pieces.append(f"About me: {about.strip()}")
    if isinstance(how, str) and how.strip():
        pieces.append(f"How to respond: {how.strip()}")
    return "\n".join(pieces)


def _blank(text: str) -> bool:
    return not text or text.isspace()  # without the copy ``strip()`` makes of long texts


_new_message = partial(tuple.__new__, Message)  # skips NamedTuple's Python-level __new__
_NEVER_VISIBLE_REASONS = {kind: f"message:{why}" for kind, why in _NEVER_VISIBLE_TYPES.items()}
_HIDDEN = "message:hidden"
_NOT_FOR_THE_PERSON = "message:not_for_the_person"
register_types(Message, _NEVER_VISIBLE_REASONS, _HIDDEN, _NOT_FOR_THE_PERSON)
_EMPTY: dict[str, Any] = {}


def classify(message: dict[str, Any]) -> Message | str:
    """The visible (or profile-signal) message of one node, or the reason it is skipped.

    A reason is a ``skipped`` counter key; an unknown content type is ``"unknown:<type>"``.
    """
    common = common_case(message)  # a text turn or a thought, in C (see _native.c)
    if common is not None:
        return common
    get = message.get
    content = get("content")
    if not isinstance(content, dict):
        content = _EMPTY
    author = get("author")
    if not isinstance(author, dict):
        author = _EMPTY
    metadata = get("metadata")
    if not isinstance(metadata, dict):
        metadata = _EMPTY
    content_type = _label(content.get("content_type"))
    role = author.get("role")
    recipient = get("recipient") or "all"
    created_at = number(get("create_time"))

    message_id = message.get("id")
    if content_type == "user_editable_context":
        text = _custom_instructions(content)
        if not text:
            return "message:empty"
        return Message(message_id, "user", CUSTOM_INSTRUCTIONS, text, created_at, None)
    if content_type == "model_editable_context":
        text = content.get("model_set_context")
        if not isinstance(text, str) or _blank(text):
            return "message:empty"
        return Message(message_id, "assistant", MEMORY, text, created_at, None)
    if recipient == "bio" and role == "assistant":
        text = _content_text(content, content_type or "text")
        if _blank(text):
            return "message:empty"
        return Message(message_id, "assistant", MEMORY, text, created_at, None)

    if metadata.get("is_visually_hidden_from_conversation"):
        return _HIDDEN
    if role == "system":
        if not metadata.get("is_user_system_message"):
            return "message:system"
        role = "user"
    if recipient != "all":
        return _NOT_FOR_THE_PERSON
    if content_type in _NEVER_VISIBLE_REASONS:
        return _NEVER_VISIBLE_REASONS[content_type]
    if content_type not in _TEXT_TYPES:
        return f"unknown:{content_type and content_type[:40]}"  # a label, kept short
    if role == "tool" and content_type not in _TOOL_VISIBLE_TYPES:
        return "message:tool_output"
    if role not in ("user", "assistant", "tool"):
        return "message:unknown_role"
    text = _content_text(content, content_type)
    if _blank(text):
        return "message:empty"
    slug = metadata.get("model_slug") if role == "assistant" else None
    return Message(message_id, role, content_type, text, created_at, slug)


def compact_node(node: Any, keep_text: Callable[[str], Any]) -> Any:
    """A finished mapping node reduced to what linearizing needs: links, time and its result.

    Used while parsing a huge conversation, node by node, so the conversation never exists in
    memory whole; ``keep_text`` may move a message's text out of memory (see TextSpill). A
    node that is not an object is left as it is (linearizing passes over it).
    """
    if not isinstance(node, dict):
        return node
    message = node.get("message")
    result: Message | str | None = None
    created_at = None
    if isinstance(message, dict):
        result = classify(message)
        created_at = number(message.get("create_time"))
        if isinstance(result, Message):
            message_id, role, content_type, text, created, slug = result
            # A huge conversation is tens of thousands of nodes, each naming its id up to four
            # times (key, message id, a child's parent, its parent's children) and a role,
            # type and model: one shared string for each, not one per mention.
            result = _new_message(
                (
                    _shared(message_id),
                    _shared(role),
                    _shared(content_type),
                    keep_text(text),
                    created,
                    _shared(slug),
                )
            )
    children = node.get("children")
    return CompactNode(
        _shared(node.get("parent")),
        tuple(map(_shared, children)) if type(children) is list else children,
        result,
        created_at,
    )


def _shared(value: Any) -> Any:
    """``value``, interned if it is a string (see compact_node)."""
    return sys.intern(value) if type(value) is str else value


def linearize(
    conversation: dict[str, Any], skipped: Counter[str], unknown_types: Counter[str]
) -> Conversation | None:
    """The conversation's visible messages in order, or ``None`` (counted) if it has none to give.

    A conversation without a mapping, or marked "do not remember", yields ``None``.
    """
    if conversation.get("is_do_not_remember") is True:
        skipped["conversation:do_not_remember"] += 1
        return None
    mapping = conversation.get("mapping")
    if not isinstance(mapping, dict) or not mapping:
        skipped["conversation:no_mapping"] += 1
        return None
    current_node = conversation.get("current_node")
    # the plain case in C (see _native.c); it answers None for anything the walk below decides
    messages = branch_messages(mapping, current_node, classify, skipped)
    if messages is None:
        messages = _branch_messages(mapping, current_node, skipped, unknown_types)
    conversation_id = conversation.get("conversation_id") or conversation.get("id")
    title = conversation.get("title")
    return Conversation(
        id_text(conversation_id),
        title if isinstance(title, str) else None,
        number(conversation.get("create_time")),
        messages,
    )


def _branch_messages(
    mapping: dict[str, Any], current_node: Any, skipped: Counter[str], unknown_types: Counter[str]
) -> list[Message]:
    """The visible messages on the branch ending at ``current_node``, the others counted."""
    messages = []
    for node_id, node in active_path(mapping, current_node):
        if node.__class__ is CompactNode:
            result = node.result
        else:
            message = node.get("message")
            result = classify(message) if isinstance(message, dict) else None
        if result is None:
            continue
        if type(result) is str:
            if result.startswith("unknown:"):
                skipped["message:unknown_content_type"] += 1
                unknown_types[result.removeprefix("unknown:")] += 1
            else:
                skipped[result] += 1
        elif result[0].__class__ is not str:  # some exports write the id as the node's key only
            messages.append(result._replace(message_id=id_text(result[0]) or node_id))
        else:
            messages.append(result)
    return messages
