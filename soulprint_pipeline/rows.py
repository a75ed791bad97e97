"""The message row: one per visible message, the reader's output schema."""

from __future__ import annotations

from typing import NamedTuple

import pyarrow as pa

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


class Message(NamedTuple):
    """One row's message-level fields, as a linearizer produces them."""

    message_id: str | None
    role: str
    content_type: str
    text: str
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


class RowBatcher:
    """Collects conversations as columns and cuts Arrow record batches of bounded size.

    A batch is cut once it holds ``max_rows`` rows or ``max_text_chars`` characters of text,
    whichever comes first, so a batch never grows with the export (a single conversation
    larger than the bound is split across batches).
    """

    def __init__(self, max_rows: int = 100_000, max_text_chars: int = 32 * 1024 * 1024) -> None:
        self.max_rows = max_rows
        self.max_text_chars = max_text_chars
        self._reset()

    def _reset(self) -> None:
        self._columns: list[list] = [[] for _ in COLUMNS]
        self._rows = 0
        self._text_chars = 0

    def __len__(self) -> int:
        return self._rows

    def add(self, conversation: Conversation) -> list[pa.RecordBatch]:
        """Add one conversation's rows; return the batches that became full (often none)."""
        full: list[pa.RecordBatch] = []
        (
            conv_ids,
            titles,
            conv_created,
            message_ids,
            positions,
            roles,
            content_types,
            texts,
            created,
            slugs,
        ) = self._columns
        conv_id, title = conversation.conversation_id, conversation.title
        conv_micros = to_micros(conversation.created_at)
        for position, message in enumerate(conversation.messages):
            conv_ids.append(conv_id)
            titles.append(title)
            conv_created.append(conv_micros)
            message_ids.append(message.message_id)
            positions.append(position)
            roles.append(message.role)
            content_types.append(message.content_type)
            texts.append(message.text)
            created.append(to_micros(message.created_at))
            slugs.append(message.model_slug)
            self._rows += 1
            self._text_chars += len(message.text)
            if self._rows >= self.max_rows or self._text_chars >= self.max_text_chars:
                full.append(self.flush())
                (
                    conv_ids,
                    titles,
                    conv_created,
                    message_ids,
                    positions,
                    roles,
                    content_types,
                    texts,
                    created,
                    slugs,
                ) = self._columns
        return full

    def flush(self) -> pa.RecordBatch:
        """The rows collected so far as one record batch; the batcher starts empty again."""
        batch = pa.RecordBatch.from_arrays(
            [
                pa.array(column, type=field.type)
                for column, field in zip(self._columns, SCHEMA, strict=True)
            ],
            schema=SCHEMA,
        )
        self._reset()
        return batch
