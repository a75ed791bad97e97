"""The message row: one per visible message, the reader's output schema."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from operator import itemgetter
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

#: Roles of visible messages. Profile signals keep the role of whoever wrote them.
ROLES = ("user", "assistant", "tool")

#: Content types of the profile-signal rows (not messages anyone saw in the chat, but what a
#: soulprint needs most): ChatGPT's custom instructions and its saved memories.
CUSTOM_INSTRUCTIONS = "custom_instructions"
MEMORY = "memory"
SIGNAL_CONTENT_TYPES = (CUSTOM_INSTRUCTIONS, MEMORY)

_UTC_MICROS = pa.timestamp("us", tz="UTC")

SCHEMA = pa.schema(
    [
        pa.field("conversation_id", pa.string()),
        pa.field("conversation_title", pa.string()),
        pa.field("conversation_created_at", _UTC_MICROS),
        pa.field("message_id", pa.string()),
        pa.field("position", pa.int32(), nullable=False),
        pa.field("role", pa.string(), nullable=False),
        pa.field("content_type", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("created_at", _UTC_MICROS),
        pa.field("model_slug", pa.string()),
    ]
)
COLUMNS = tuple(SCHEMA.names)
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


def to_micros(seconds: float | None) -> int | None:
    """Epoch seconds to integer microseconds (``None`` stays ``None``)."""
    return None if seconds is None else round(seconds * 1_000_000)


_TEXT = itemgetter(3)  # Message.text


def _array(values: list[Any], type_: pa.DataType) -> pa.Array:
    """``values`` as an Arrow array; odd exports hold numbers where ids should be strings."""
    try:
        return pa.array(values, type=type_)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        if type_ != pa.string():
            raise
        return pa.array([None if v is None else str(v) for v in values], type=type_)


class RowBatcher:
    """Collects conversations as columns and cuts Arrow record batches of bounded size.

    A batch is cut once it holds ``max_rows`` rows or ``max_text_chars`` characters of text,
    whichever comes first, so a batch never grows with the export (a single conversation
    larger than the bound is split across batches).
    """

    def __init__(
        self,
        max_rows: int = 50_000,
        max_text_chars: int = 2 * 1024 * 1024,
        text_of: Callable[[Any], str | bytes] | None = None,
    ) -> None:
        self.max_rows = max_rows
        self.max_text_chars = max_text_chars
        self._text_of = text_of  # resolves texts held as UTF-8 or waiting in a spill file
        self._reset()

    def _reset(self) -> None:
        self._columns: list[list] = [[] for _ in COLUMNS]
        self._rows = 0
        self._text_chars = 0

    def __len__(self) -> int:
        return self._rows

    def add(self, conversation: Conversation) -> Iterator[pa.RecordBatch]:
        """Add one conversation's rows, yielding each batch as it fills (often none).

        A generator, so a huge conversation never has all its batches alive at once: iterate
        it to the end.
        """
        messages = conversation.messages
        # the common case, a conversation that fits the open batch, without a per-row loop
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
                yield self.flush()
            start = end

    def _extend(self, conversation: Conversation, start: int, end: int) -> None:
        count = end - start
        columns = self._columns
        columns[0].extend([conversation.conversation_id] * count)
        columns[1].extend([conversation.title] * count)
        columns[2].extend([to_micros(conversation.created_at)] * count)
        # transpose the messages' fields in C: one tuple per column
        message_ids, roles, content_types, texts, created, slugs = zip(
            *conversation.messages[start:end], strict=True
        )
        columns[3].extend(message_ids)
        columns[4].extend(range(start, end))
        columns[5].extend(roles)
        columns[6].extend(content_types)
        if self._text_of is not None and any(type(text) is not str for text in texts):
            texts = [self._text_of(text) for text in texts]
        columns[7].extend(texts)
        columns[8].extend(created)
        columns[9].extend(slugs)
        self._rows += count

    def flush(self) -> pa.RecordBatch:
        """The rows collected so far as one record batch; the batcher starts empty again."""
        arrays = [
            _array(column, field.type)
            for column, field in zip(self._columns, SCHEMA, strict=True)
            if field.name not in ("text", "created_at")
        ]
        # pa.array(str) caches a UTF-8 copy inside every non-ASCII str it converts (slower, and
        # memory held until the str dies); encoding to bytes ourselves is about twice as fast.
        texts = pa.array(
            [text.encode() if type(text) is str else text for text in self._columns[7]],
            pa.binary(),
        )
        arrays.insert(7, texts.view(pa.string()))
        # message times arrive as float seconds: scale them in Arrow rather than per row
        seconds = pa.array(self._columns[8], type=pa.float64())
        micros = pc.cast(pc.round(pc.multiply(seconds, 1_000_000)), pa.int64())
        arrays.insert(8, micros.cast(_UTC_MICROS))
        batch = pa.RecordBatch.from_arrays(arrays, schema=SCHEMA)
        self._reset()
        return batch
