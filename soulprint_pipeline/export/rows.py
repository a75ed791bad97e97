"""The message row: one per visible message, the reader's output schema."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from operator import itemgetter
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from soulprint_pipeline.export._native import utf8_texts

#: Roles of visible messages. Profile signals keep the role of whoever wrote them.
ROLES = ("user", "assistant", "tool")

#: Content types of the profile-signal rows (not messages anyone saw in the chat, but what a
#: soulprint needs most): ChatGPT's custom instructions and its saved memories.
CUSTOM_INSTRUCTIONS = "custom_instructions"
MEMORY = "memory"
SIGNAL_CONTENT_TYPES = (CUSTOM_INSTRUCTIONS, MEMORY)

UTC_MICROS = pa.timestamp("us", tz="UTC")  # every time column of the rows

SCHEMA = pa.schema(
    [
        pa.field("conversation_id", pa.string()),
        pa.field("conversation_title", pa.string()),
        pa.field("conversation_created_at", UTC_MICROS),
        pa.field("message_id", pa.string()),
        pa.field("position", pa.int32(), nullable=False),
        pa.field("role", pa.string(), nullable=False),
        pa.field("content_type", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("created_at", UTC_MICROS),
        pa.field("model_slug", pa.string()),
    ]
)
COLUMNS = tuple(SCHEMA.names)
#: What readers of a person's conversations need of each row (the soulprint's sample, the
#: memory's chunks): whose conversation, what it says, who said it, when.
CONVERSATION_COLUMNS = [
    "conversation_id",
    "conversation_title",
    "conversation_created_at",
    "role",
    "content_type",
    "text",
    "created_at",
]
#: Columns with few distinct values per part, worth dictionary-encoding in Parquet.
DICTIONARY_COLUMNS = ["conversation_id", "conversation_title", "role", "content_type", "model_slug"]


class Message(NamedTuple):
    """One row's message-level fields, as a linearizer produces them."""

    message_id: str | None
    role: str
    content_type: str
    text: str  # inside the reader, a huge conversation's are UTF-8 bytes or spill.SpilledText
    created_at: float | None  # seconds since the epoch, UTC
    model_slug: str | None


class Conversation(NamedTuple):
    """One conversation's visible messages, in the order the person saw them."""

    conversation_id: str | None
    title: str | None
    created_at: float | None
    messages: list[Message]


#: Seconds since the epoch of years 1 and 9999: a time outside them is damage, kept as null.
EARLIEST, LATEST = -62_135_596_800.0, 253_402_300_799.0


def number(value: Any) -> float | None:
    """A JSON number as a float; ``None`` for anything else (booleans included) and for an
    integer too large for a float."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            return None
    return None


def _timestamps(seconds: list[float | None] | tuple[float | None, ...]) -> pa.Array:
    """Epoch seconds as UTC microseconds, scaled in Arrow; impossible times become null."""
    values = pa.array(seconds, type=pa.float64())
    in_range = pc.and_(pc.greater_equal(values, EARLIEST), pc.less_equal(values, LATEST))
    values = pc.if_else(in_range, values, None)
    return pc.cast(pc.round(pc.multiply(values, 1_000_000)), pa.int64()).cast(UTC_MICROS)


_TEXT = itemgetter(3)  # Message.text


def id_text(value: Any) -> str | None:
    """An id as text: odd exports hold numbers where ids should be strings; anything else is
    damage, kept as null."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def _array(values: list[Any], type_: pa.DataType) -> pa.Array:
    """``values`` as an Arrow array of ``type_`` (ids that are not strings: see id_text)."""
    try:
        return pa.array(values, type=type_)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        if type_ != pa.string():
            raise
        return pa.array([id_text(v) for v in values], type=type_)


class _CutBatch(NamedTuple):
    """A batch cut from the batcher, its texts possibly still being encoded."""

    arrays: list[pa.Array | None]  # every column; the texts' is None until they are encoded
    rows: int
    texts: Future[tuple[bytes, bytes]]  # their UTF-8 buffer and int32 offsets

    def result(self) -> pa.RecordBatch:
        data, offsets = self.texts.result()
        texts = pa.Array.from_buffers(
            pa.string(), self.rows, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
        )
        arrays = [texts if array is None else array for array in self.arrays]
        return pa.RecordBatch.from_arrays(arrays, schema=SCHEMA)


_PLAIN_TEXTS = frozenset({str, bytes})  # what utf8_texts takes


class RowBatcher:
    """Collects conversations as columns and cuts Arrow record batches of bounded size.

    A batch is cut once it holds ``max_rows`` rows or ``max_text_chars`` characters of text,
    whichever comes first, so a batch never grows with the export (a single conversation
    larger than the bound is split across batches).

    Conversation-level fields are kept once per conversation and repeated per row only in
    Arrow. Texts are kept as they arrive and encoded into the batch's one UTF-8 buffer, in C
    without the GIL (``_native.utf8_texts``): with an ``encoder`` (a one-thread executor) that
    runs on another core while the parser fills the next batch, so each batch is given out
    when the next one is cut, or by :meth:`finish`. That takes ``str.encode``, the reader's
    largest cost after ijson's (most of a real export's texts hold an emoji or a curly quote,
    which makes the whole str wide), off the parser's thread.
    """

    def __init__(
        self,
        max_rows: int = 50_000,
        max_text_chars: int = 2 * 1024 * 1024,
        text_of: Callable[[Any], str | bytes] | None = None,
        encoder: Executor | None = None,
    ) -> None:
        self.max_rows = max_rows
        self.max_text_chars = max_text_chars
        self._text_of = text_of  # resolves texts held as UTF-8 or waiting in a spill file
        self._encoder = encoder
        self._cut: _CutBatch | None = None  # cut, not given out yet
        self._reset()

    def _reset(self) -> None:
        # one entry per conversation (or per piece of one split across batches)
        self._conversations: list[tuple[Any, str | None, float | None]] = []
        self._row_counts: list[int] = []
        self._first_positions: list[int] = []
        # one entry per row
        self._message_ids: list[Any] = []
        self._roles: list[str] = []
        self._content_types: list[str] = []
        self._times: list[float | None] = []
        self._slugs: list[str | None] = []
        self._texts: list[str | bytes] = []  # bytes: UTF-8
        self._rows = 0
        self._text_chars = 0

    def add(self, conversation: Conversation) -> Iterator[pa.RecordBatch]:
        """Add one conversation's rows, yielding each batch given out meanwhile (often none).

        A generator, so a huge conversation never has all its batches alive at once: iterate
        it to the end.
        """
        messages = conversation.messages
        # the common case, a conversation that fits the open batch, without a per-row check
        chars = sum(map(len, map(_TEXT, messages)))
        if (
            self._rows + len(messages) < self.max_rows
            and self._text_chars + chars < self.max_text_chars
        ):
            self._text_chars += chars
            self._extend(conversation, 0, len(messages))
            return
        start = 0
        while start < len(messages):
            end = start
            while (
                end < len(messages)
                and self._rows + end - start < self.max_rows
                and self._text_chars < self.max_text_chars
            ):
                self._text_chars += len(messages[end].text)
                end += 1
            self._extend(conversation, start, end)
            if self._rows >= self.max_rows or self._text_chars >= self.max_text_chars:
                yield from self._cut_batch()
            start = end

    def finish(self) -> Iterator[pa.RecordBatch]:
        """The batches not given out yet: the last one cut and the rows collected since."""
        if self._rows:
            yield from self._cut_batch()
        if self._cut is not None:
            cut, self._cut = self._cut, None
            yield cut.result()

    def _extend(self, conversation: Conversation, start: int, end: int) -> None:
        messages = conversation.messages
        if start or end < len(messages):
            messages = messages[start:end]
        self._conversations.append(
            (conversation.conversation_id, conversation.title, conversation.created_at)
        )
        self._row_counts.append(len(messages))
        self._first_positions.append(start)
        # transpose the messages' fields in C: one tuple per column
        message_ids, roles, content_types, texts, times, slugs = zip(*messages, strict=True)
        self._message_ids.extend(message_ids)
        self._roles.extend(roles)
        self._content_types.extend(content_types)
        self._times.extend(times)
        self._slugs.extend(slugs)
        if not _PLAIN_TEXTS.issuperset(map(type, texts)):
            # a huge conversation's texts may wait in the spill file: read them back now, while
            # the spill still holds them
            text_of = self._text_of or (lambda text: text)
            texts = tuple(map(text_of, texts))
        self._texts.extend(texts)
        self._rows += len(messages)

    def _cut_batch(self) -> Iterator[pa.RecordBatch]:
        """Cut the rows collected so far as a batch (the batcher starts empty again), and give
        out the one cut before it."""
        rows = self._rows
        counts = np.array(self._row_counts, dtype=np.int64)
        # each row's conversation, and its position: its index in the batch, less the index
        # its conversation starts at, plus the position that piece of the conversation starts at
        owner = np.repeat(np.arange(len(counts)), counts)
        offsets = np.cumsum(counts) - counts - np.array(self._first_positions, dtype=np.int64)
        positions = np.arange(rows, dtype=np.int64) - offsets[owner]
        ids, titles, created = zip(*self._conversations, strict=True) if rows else ((), (), ())
        take = pa.array(owner)
        arrays: list[pa.Array | None] = [
            _array(list(ids), pa.string()).take(take),
            _array(list(titles), pa.string()).take(take),
            _timestamps(created).take(take),
            _array(self._message_ids, pa.string()),
            pa.array(positions.astype(np.int32)),
            pa.array(self._roles, type=pa.string()),
            pa.array(self._content_types, type=pa.string()),
            None,  # the texts, encoded by _encode_texts
            _timestamps(self._times),
            _array(self._slugs, pa.string()),
        ]
        previous, self._cut = self._cut, _CutBatch(arrays, rows, self._encode_texts(self._texts))
        self._reset()
        if previous is not None:
            yield previous.result()

    def _encode_texts(self, texts: list[str | bytes]) -> Future[tuple[bytes, bytes]]:
        if self._encoder is not None:
            return self._encoder.submit(utf8_texts, texts)
        encoded: Future[tuple[bytes, bytes]] = Future()
        encoded.set_result(utf8_texts(texts))
        return encoded
