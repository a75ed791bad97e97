"""Streaming the conversations out of one JSON document with ijson, in bounded memory.

ijson's C backend builds each conversation as plain Python objects at C speed; that is the fast
path, and it costs memory in proportion to the conversation (about five times its JSON). Real
exports hold a few long-running chats with 100 MB of pasted documents, so when the bytes fed to
the parser since the last conversation ended pass ``lean_after_bytes``, the document is read
again from the start in lean mode (the conversations already yielded are skipped):

* Lean objects are of :func:`_lean_object_type`, a ``dict`` whose ``__setitem__`` drops every
  member the linearizers never read (citations, search results, tool payloads, ...), so a
  conversation costs little more than the text that will become rows. The hook is a Python call
  per member, which is why it is not the default.
* In lean mode the bytes fed since the last conversation node began are bounded by
  ``max_node_bytes``, so a monstrous value (yajl buffers a whole token, in time quadratic in its
  length) is rejected instead of being parsed.

Before ijson sees a block, a structure guard (``_native.c``) refuses nesting, key paths and
containers that would cost ijson far more than their size (see :class:`ParserFeed`).

yajl's own error messages quote the JSON around the fault, which is the person's own words, so
they are never passed on: errors name the byte range the parser had reached instead.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, BinaryIO, Protocol

import ijson

from soulprint_pipeline.errors import (
    EmptyExportError,
    EncodingError,
    ExportError,
    InvalidJSONError,
    NotAnExportError,
    OversizedValueError,
    StructureLimitError,
    TruncatedExportError,
)
from soulprint_pipeline.export._native import StructureGuard
from soulprint_pipeline.export.containers import MiB, ReadLimits, describe_content

_TOO_DEEP = 1  # StructureGuard.scan's status for nesting past max_depth

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


class _ReadLeanly(Exception):
    """Internal: a conversation outgrew the fast path; read the document again, leanly."""


_BLOCK_BYTES = 512 * 1024  # what the parser is fed at a time


class ParserFeed:
    """The byte stream handed to ijson: guarded, counted, and bounded.

    Every block is scanned by a :class:`StructureGuard` before ijson sees it (in C, about
    2.6 GB/s, on the guard's own thread while ijson parses the block before), so nesting, key
    paths or containers that would cost ijson far more than their size are refused first. In
    fast mode the bounds on one conversation's bytes and containers ask for a lean re-read when
    passed; in lean mode they are on one node, and passing them rejects the export.
    """

    def __init__(self, stream: BinaryIO, document: str, limits: ReadLimits, *, lean: bool) -> None:
        self._stream = stream
        self._document = document
        self._limits = limits
        self._lean = lean
        self._byte_bound = limits.max_node_bytes if lean else limits.lean_after_bytes
        self._container_bound = limits.max_node_containers if lean else limits.lean_after_containers
        self._guard = StructureGuard(max_depth=limits.max_depth, max_path=limits.max_key_path_bytes)
        self._next = b""  # the block ijson gets next, being scanned
        self._containers_fed = 0  # objects and arrays in the bytes handed to the parser
        self.fed = 0  # bytes handed to the parser so far
        self.last_chunk = 0
        self._marked_at = 0
        self._containers_at_mark = 0
        self._nodes = 0  # nodes of the conversation being parsed (lean mode)

    def peek(self, size: int) -> bytes:
        """Read ahead ``size`` bytes (minus a UTF-8 BOM) that later ``read`` calls will return."""
        head = self._stream.read(size)
        if head.startswith(_UTF8_BOM):
            head = head[len(_UTF8_BOM) :]
        self._read_ahead(head)
        return head

    def _read_ahead(self, data: bytes) -> None:
        # the guard scans the next block on its own thread while ijson parses this one
        self._next = data
        if data:
            self._guard.scan_async(data)

    def mark(self) -> None:
        """Note that the parser completed a conversation: the bounds restart."""
        self._restart_bounds()
        self._nodes = 0

    def node(self) -> None:
        """Note that a lean parse began a conversation node (ChatGPT) or message (Claude): the
        bounds on one node restart, and one conversation's nodes are counted."""
        self._restart_bounds()
        # the count is checked at the next read: ijson turns an error raised here into a
        # SystemError
        self._nodes += 1

    def _restart_bounds(self) -> None:
        self._marked_at = self.fed
        self._containers_at_mark = self._containers_fed

    def read(self, size: int = -1) -> bytes:
        if size == 0:  # ijson probes the stream's type with read(0)
            return b""
        if self._nodes > self._limits.max_conversation_nodes:
            raise StructureLimitError(
                f"{self._document}: one conversation holds more than "
                f"{self._limits.max_conversation_nodes:,} messages (ending past byte "
                f"{self.fed:,}), over the limit for one conversation.",
                self.fed,
            )
        data = self._next
        if not data:
            return data  # the end
        status, self._containers_fed = self._guard.wait()
        if status:
            raise self._refusal(status, self._guard.error_offset)
        if (
            self.fed - self._marked_at > self._byte_bound
            or self._containers_fed - self._containers_at_mark > self._container_bound
        ):
            if not self._lean:
                raise _ReadLeanly
            raise self._oversized_node()
        self._read_ahead(self._stream.read(_BLOCK_BYTES))
        self.fed += len(data)
        self.last_chunk = len(data)
        return data

    def _refusal(self, status: int, offset: int) -> StructureLimitError:
        where = f"at byte {offset:,} of {self._document}"
        if status == _TOO_DEEP:
            return StructureLimitError(
                f"The export nests its data deeper than {self._limits.max_depth} levels ({where}); "
                "a ChatGPT or Claude export nests fewer than 30.",
                offset,
            )
        return StructureLimitError(
            f"The export holds a path of keys longer than {self._limits.max_key_path_bytes:,} "
            f"bytes ({where}); a ChatGPT or Claude export's are under 200.",
            offset,
        )

    def _oversized_node(self) -> ExportError:
        if self.fed - self._marked_at > self._byte_bound:
            return OversizedValueError(
                f"{self._document}: one conversation message is larger than "
                f"{self._byte_bound // MiB} MB (ending past byte {self.fed:,}), "
                "over the limit for one message."
            )
        return StructureLimitError(
            f"{self._document}: one conversation message holds more than "
            f"{self._container_bound:,} objects and arrays (ending past byte {self.fed:,}), "
            "over the limit for one message.",
            self.fed,
        )

    def where(self) -> str:
        """The byte range the parser had reached, for error messages."""
        start = max(self.fed - self.last_chunk, 0)
        return f"{self._document}, between bytes {start:,} and {self.fed:,}"


class NodeCompactor(Protocol):
    """Reduces finished nodes of conversations parsed in lean mode (see chatgpt.compact_node).

    The parser reads ahead: the next conversation's first nodes may be compacted before the
    consumer is done with the conversation before it, so each conversation is named.
    """

    def begin(self, conversation: object) -> None:
        """The nodes of ``conversation`` start (those compacted next are its own)."""

    def compact(self, node: dict[str, Any]) -> dict[str, Any]:
        """The finished ``node``, reduced."""

    def done(self, conversation: object) -> None:
        """The consumer is done with ``conversation`` (possibly not an object, or never begun)."""


def _lean_object_type(on_node: Callable[[], None], compactor: NodeCompactor | None) -> type[dict]:
    set_member = dict.__setitem__
    get_member = dict.__getitem__
    intern = sys.intern
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
                    if compactor is not None:
                        compactor.begin(self)
                set_member(self, key, value)
            elif key == "sender":
                set_member(self, key, value)  # a Claude message: the node bound restarts
                on_node()

    class NodeMap(LeanObject):
        """A ChatGPT ``mapping``: every member is a node, keyed by its id."""

        __slots__ = ()

        def __setitem__(self, key: str, value: Any) -> None:
            if compactor is not None:
                if self:
                    # a new node starts, so the one before it is finished: compact it
                    previous = next(reversed(self))
                    set_member(self, previous, compactor.compact(get_member(self, previous)))
                key = intern(key)  # the same id as the compacted nodes' links (compact_node)
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
    open_stream: Callable[[], AbstractContextManager[BinaryIO]],
    document: str,
    *,
    limits: ReadLimits,
    compactor: NodeCompactor | None = None,
) -> Iterator[dict[str, Any] | None]:
    """Yield each conversation object of one JSON document; ``None`` for items that are not objects.

    ``open_stream`` opens the document from its start (it is called again for a lean re-read).
    In lean mode, ``compactor`` reduces each finished node as the next one starts; it is told
    when each conversation begins and when the consumer is done with it.
    Raises an :class:`~soulprint_pipeline.errors.ExportError` for a document that is not an
    export or whose JSON is broken, naming the byte range where the parser stopped.
    """
    yielded = 0
    lean = False
    while True:
        try:
            with open_stream() as stream:
                items = _items(stream, document, lean, limits, compactor)
                for index, item in enumerate(items):
                    if index >= yielded:  # after a lean re-read, skip what was yielded
                        yielded += 1
                        yield item
                    if lean and compactor is not None:
                        compactor.done(item)
            return
        except _ReadLeanly:
            lean = True


def _items(
    stream: BinaryIO,
    document: str,
    lean: bool,
    limits: ReadLimits,
    compactor: NodeCompactor | None,
) -> Iterator[dict[str, Any] | None]:
    feed = ParserFeed(stream, document, limits, lean=lean)
    prefix = _item_prefix(feed.peek(_PEEK_BYTES))
    object_type = _lean_object_type(feed.node, compactor) if lean else None
    probe: list[Any] = []
    seen_conversation = False
    try:
        for item in ijson_backend().items(feed, prefix, map_type=object_type, use_float=True):
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
