"""Streaming the conversations out of one JSON document with ijson, in bounded memory.

ijson's C backend builds each conversation as Python objects at C speed. Two things keep that
lean on real exports, where one long-running chat can hold 100 MB of pasted documents:

* The objects it builds are of :func:`_lean_object_type`, a ``dict`` whose ``__setitem__`` drops
  every member the linearizers never read (citations, search results, tool payloads, ...) as soon
  as it is built, so a conversation costs little more than the text that will become rows.
* The bytes fed to the parser since the last completed conversation node are bounded, so a
  monstrous value (yajl buffers a whole token, in time quadratic in its length) is rejected
  after ``max_node_bytes`` instead of being parsed.

yajl's own error messages quote the JSON around the fault, which is the person's own words, so
they are never passed on: errors name the byte range the parser had reached instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import ijson

from soulprint_pipeline.errors import (
    EmptyExportError,
    EncodingError,
    InvalidJSONError,
    NotAnExportError,
    OversizedValueError,
    TruncatedExportError,
)
from soulprint_pipeline.storage import MiB, describe_content

_PEEK_BYTES = 64 * 1024
_UTF8_BOM = b"\xef\xbb\xbf"

#: Members read by the ChatGPT and Claude linearizers; all others are dropped while parsing.
_KEPT_MEMBERS = frozenset(
    {
        # conversation (ChatGPT, Claude)
        "conversations",
        "title",
        "create_time",
        "mapping",
        "current_node",
        "id",
        "conversation_id",
        "is_do_not_remember",
        "default_model_slug",
        "uuid",
        "name",
        "created_at",
        "chat_messages",
        "current_leaf_message_uuid",
        "model",
        # ChatGPT node, message, author, content, metadata
        "message",
        "parent",
        "children",
        "author",
        "role",
        "content",
        "metadata",
        "recipient",
        "content_type",
        "parts",
        "text",
        "language",
        "user_profile",
        "user_instructions",
        "model_set_context",
        "is_visually_hidden_from_conversation",
        "is_user_system_message",
        "model_slug",
        # Claude message and content block
        "parent_message_uuid",
        "type",
        "files",
        "files_v2",
        "attachments",
        "file_kind",
    }
)


_backend_cache: Any = None


def ijson_backend() -> Any:
    """ijson's C backend (``yajl2_c``), or the best one available with a warning (once)."""
    global _backend_cache
    if _backend_cache is None:
        try:
            _backend_cache = ijson.get_backend("yajl2_c")
        except ImportError:
            _backend_cache = ijson
            warnings.warn(
                f"ijson's C backend is not available; parsing with the slower "
                f"{ijson.backend!r} backend.",
                RuntimeWarning,
                stacklevel=2,
            )
    return _backend_cache


def backend_name() -> str:
    """The name of the ijson backend the reader parses with."""
    backend = ijson_backend()
    return getattr(backend, "backend_name", None) or getattr(backend, "backend", "unknown")


class ParserFeed:
    """The byte stream handed to ijson: counts what it feeds and enforces the node bound."""

    def __init__(self, stream: BinaryIO, document: str, max_node_bytes: int) -> None:
        self._stream = stream
        self._document = document
        self._max_node_bytes = max_node_bytes
        self._pending = b""
        self.fed = 0  # bytes handed to the parser so far
        self.last_chunk = 0
        self._marked_at = 0

    def peek(self, size: int) -> bytes:
        """Read ahead ``size`` bytes (minus a UTF-8 BOM) that later ``read`` calls will return."""
        head = self._stream.read(size)
        if head.startswith(_UTF8_BOM):
            head = head[len(_UTF8_BOM) :]
        self._pending = head
        return head

    def mark(self) -> None:
        """Note that the parser completed a node: the bound restarts here."""
        self._marked_at = self.fed

    def read(self, size: int = -1) -> bytes:
        if size == 0:  # ijson probes the stream's type with read(0)
            return b""
        if self._pending:
            data, self._pending = self._pending, b""
        else:
            data = self._stream.read(size)
        if self.fed - self._marked_at > self._max_node_bytes:
            raise OversizedValueError(
                f"{self._document}: one conversation message is larger than "
                f"{self._max_node_bytes // MiB} MB (ending past byte {self.fed:,}), "
                "over the limit for one message."
            )
        self.fed += len(data)
        self.last_chunk = len(data)
        return data

    def where(self) -> str:
        """The byte range the parser had reached, for error messages."""
        start = max(self.fed - self.last_chunk, 0)
        return f"{self._document}, between bytes {start:,} and {self.fed:,}"


def _lean_object_type(on_node: Callable[[], None]) -> type[dict]:
    set_member = dict.__setitem__
    kept = _KEPT_MEMBERS

    # ijson's builder adds an object to its parent as soon as the object starts, then fills it,
    # so a member is judged by its key (and by which object it is added to), never by content.
    class LeanObject(dict):
        """A JSON object that keeps only the members the linearizers read."""

        __slots__ = ()

        def __setitem__(self, key: str, value: Any) -> None:
            if key in kept:
                if key == "mapping" and value.__class__ is LeanObject:
                    value.__class__ = NodeMap
                set_member(self, key, value)
            elif key == "sender":
                set_member(self, key, value)  # a Claude message: the node bound restarts
                on_node()

    class NodeMap(LeanObject):
        """A ChatGPT ``mapping``: every member is a node, keyed by its id."""

        __slots__ = ()

        def __setitem__(self, key: str, value: Any) -> None:
            set_member(self, key, value)
            on_node()

    return LeanObject


def _item_prefix(head: bytes) -> str:
    """The ijson prefix of the conversations: an array, ``{"conversations": [...]}`` or one."""
    stripped = head.lstrip()
    if not stripped:
        raise EmptyExportError("The export is empty: the file holds no data.")
    if stripped[:1] == b"[":
        return "item"
    if stripped[:1] != b"{":
        raise NotAnExportError(
            f"This is not a ChatGPT or Claude export: the file looks like {describe_content(head)}."
        )
    try:
        for _, event, value in ijson.parse(stripped):
            if event == "map_key":
                return "conversations.item" if value == "conversations" else ""
            if event == "end_map":
                break
    except ijson.JSONError:
        pass  # a fault inside the head is reported, with its offset, by the real parse
    return ""


def _is_conversation(item: Any) -> bool:
    return isinstance(item, dict) and any(
        key in item for key in ("mapping", "chat_messages", "current_node", "title", "uuid")
    )


def _describe_items(items: list[Any]) -> str:
    kinds = sorted({type(item).__name__ for item in items})
    names = {
        "dict": "objects",
        "list": "arrays",
        "str": "strings",
        "int": "numbers",
        "float": "numbers",
        "Decimal": "numbers",
        "bool": "booleans",
        "NoneType": "nulls",
    }
    return "a JSON list of " + " and ".join(sorted({names.get(kind, kind) for kind in kinds}))


_PROBE_ITEMS = 100


def iter_conversations(
    stream: BinaryIO, document: str, max_node_bytes: int
) -> Iterator[dict[str, Any] | None]:
    """Yield each conversation object of one JSON document, lean; ``None`` for non-objects.

    Raises an :class:`~soulprint_pipeline.errors.ExportError` for a document that is not an
    export or whose JSON is broken, naming the byte range where the parser stopped.
    """
    feed = ParserFeed(stream, document, max_node_bytes)
    prefix = _item_prefix(feed.peek(_PEEK_BYTES))
    lean_object = _lean_object_type(feed.mark)
    probe: list[Any] = []
    seen_conversation = False
    try:
        for item in ijson_backend().items(feed, prefix, map_type=lean_object, use_float=True):
            feed.mark()
            if _is_conversation(item):
                seen_conversation = True
                yield item
                continue
            if not seen_conversation:
                probe.append(item)
                if len(probe) >= _PROBE_ITEMS:
                    break
            yield None
    except ijson.JSONError as error:
        raise _translate(error, feed) from None
    if probe and not seen_conversation:
        found = "a JSON object" if prefix == "" else _describe_items(probe)
        raise NotAnExportError(
            f"This is not a ChatGPT or Claude export: {document} holds {found}, not conversations."
        )


def _translate(error: ijson.JSONError, feed: ParserFeed) -> InvalidJSONError:
    # Only yajl's first words are read, to classify; the rest quotes the person's text.
    kind = str(error).lstrip("b'\"").split(".")[0].split("\n")[0]
    if "premature EOF" in kind:
        return TruncatedExportError(
            f"The export is cut short: {feed.where()} the JSON ends before it is complete "
            "(an interrupted upload?).",
            feed.fed,
        )
    if "UTF8" in kind:
        return EncodingError(
            f"The export is not valid UTF-8 text: invalid bytes in {feed.where()}.", feed.fed
        )
    detail = "trailing data after the JSON" if "trailing garbage" in kind else "malformed JSON"
    return InvalidJSONError(f"The export is not valid JSON: {detail} in {feed.where()}.", feed.fed)
