"""Cutting a person's parsed rows into memory chunks.

A chunk is a run of whole turns of one conversation, headed by the conversation's title, about
:attr:`ChunkSettings.target_tokens` long; consecutive chunks share the last turn (or the tail of
a long one) up to :attr:`ChunkSettings.overlap_tokens`, so a fact stated across a turn boundary is
whole in at least one chunk. A single message longer than the target is cut into windows at
whitespace. Chunks never cross conversations. Custom instructions and saved memories (the rows
the reader marks as such) become chunks of their own, labelled, since "what do I know about
this person" is exactly what recall is for.

Tokens are estimated the way the soulprint's sample does (UTF-8 bytes / 3.5); Titan counts its
own, and the asset reports both.

When the person's text is larger than the operator's cap (``max_tokens``), a first pass over the
rows ranks the conversations (newest and most substantial first, as the soulprint's sample does)
and only those that fit are chunked: the cost of a memory has a ceiling whatever the export's
size.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from soulprint_pipeline.export.rows import CONVERSATION_COLUMNS, CUSTOM_INSTRUCTIONS, MEMORY
from soulprint_pipeline.soulprint.sampling import estimate_tokens

#: The row columns the chunker reads.
COLUMNS = CONVERSATION_COLUMNS
#: Bumped by hand when chunks come out differently: part of the memory's code version.
CHUNKER_VERSION = 1

_LABELS = {"user": "User", "assistant": "Assistant", "tool": "Tool"}
_SIGNAL_LABELS = {CUSTOM_INSTRUCTIONS: "About me (custom instructions)", MEMORY: "Saved memory"}


@dataclass(frozen=True)
class ChunkSettings:
    """How long a chunk is, how much consecutive chunks share, and the cap on all of them."""

    target_tokens: int = 400
    overlap_tokens: int = 60
    max_tokens: int | None = None  # of all chunks of one person; None: no cap


@dataclass
class Chunk:
    """One chunk of one conversation, ready to embed."""

    conversation_id: str
    conversation_title: str
    conversation_created_at: datetime | None
    first_message_at: datetime | None
    last_message_at: datetime | None
    chunk_index: int
    text: str
    tokens: int
    content_hash: str = field(init=False)

    def __post_init__(self) -> None:
        self.content_hash = hashlib.sha256(self.text.encode()).hexdigest()[:32]

    def chunk_id(self, user_id: str) -> str:
        """A stable id: the same conversation cut the same way keeps its ids."""
        key = f"{user_id}\x00{self.conversation_id}\x00{self.chunk_index}\x00{self.content_hash}"
        return hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass
class _Turn:
    text: str
    tokens: int
    created_at: datetime | None


@dataclass
class Plan:
    """What the first pass found: how much text there is, and which conversations to chunk."""

    conversations: int = 0
    tokens: int = 0
    kept: set[str] | None = None  # None: every conversation
    kept_tokens: int = 0

    @property
    def capped(self) -> bool:
        """Whether the cap left conversations out."""
        return self.kept is not None


def plan(batches: Iterable[pa.RecordBatch], settings: ChunkSettings) -> Plan:
    """Size the person's text, and pick the conversations that fit ``settings.max_tokens``.

    Ranking follows the soulprint's sample: the person's own words (log-scaled) and recency.
    """
    sizes: dict[str, list[float]] = {}  # id -> [tokens, user bytes, newest time]
    for batch in batches:
        lengths = pc.binary_length(batch.column("text").cast(pa.binary())).to_pylist()
        ids = batch.column("conversation_id").to_pylist()
        roles = batch.column("role").to_pylist()
        times = pc.cast(batch.column("conversation_created_at"), pa.int64()).to_pylist()
        for conversation_id, role, length, created in zip(ids, roles, lengths, times, strict=True):
            entry = sizes.setdefault(conversation_id or "", [0.0, 0.0, 0.0])
            entry[0] += length / 3.5
            if role == "user":
                entry[1] += length
            if created is not None and created > entry[2]:
                entry[2] = created
    found = Plan(conversations=len(sizes), tokens=math.ceil(sum(e[0] for e in sizes.values())))
    found.kept_tokens = found.tokens
    if settings.max_tokens is None or found.tokens <= settings.max_tokens:
        return found
    newest = max(entry[2] for entry in sizes.values()) or 1.0
    oldest = min(entry[2] for entry in sizes.values())
    span = max(newest - oldest, 1.0)

    def score(item: tuple[str, list[float]]) -> tuple[float, str]:
        conversation_id, (_, user_bytes, created) = item
        recency = (created - oldest) / span if created else 0.0
        return (math.log1p(user_bytes) * (0.5 + recency), conversation_id)

    found.kept, found.kept_tokens = set(), 0
    for conversation_id, (tokens, _, _) in sorted(sizes.items(), key=score, reverse=True):
        if found.kept_tokens + tokens <= settings.max_tokens:
            found.kept.add(conversation_id)
            found.kept_tokens += math.ceil(tokens)
    return found


def chunk_rows(
    batches: Iterable[pa.RecordBatch], settings: ChunkSettings, kept: set[str] | None = None
) -> Iterator[Chunk]:
    """The chunks of the rows in ``batches`` (a conversation's rows are contiguous), in order.

    Only conversations in ``kept`` are chunked, when it is given (see :func:`plan`).
    """
    conversation: _Conversation | None = None
    wanted = pa.array(sorted(kept), pa.string()) if kept is not None else None
    for batch in batches:
        if wanted is not None:  # only the kept rows become Python objects
            ids = pc.fill_null(batch.column("conversation_id"), "")
            batch = batch.filter(pc.is_in(ids, wanted))
        columns = [batch.column(name).to_pylist() for name in COLUMNS]
        for conversation_id, title, created, role, content_type, text, at in zip(
            *columns, strict=True
        ):
            conversation_id = conversation_id or ""
            if conversation is None or conversation.conversation_id != conversation_id:
                if conversation is not None:
                    yield from conversation.finish()
                conversation = _Conversation(conversation_id, title or "", created, settings)
            label = _SIGNAL_LABELS.get(content_type) or _LABELS.get(role, role.title())
            yield from conversation.add(label, text, at)
    if conversation is not None:
        yield from conversation.finish()


class _Conversation:
    """The chunks of one conversation, cut as its turns arrive."""

    def __init__(
        self,
        conversation_id: str,
        title: str,
        created_at: datetime | None,
        settings: ChunkSettings,
    ) -> None:
        self.conversation_id = conversation_id
        self.title = title
        self.created_at = created_at
        self.settings = settings
        self.header = f"Conversation: {title}\n" if title else ""
        self.header_tokens = estimate_tokens(self.header)
        self.turns: list[_Turn] = []
        self.tokens = self.header_tokens
        self.fresh = False  # whether the turns hold anything not yet in a chunk
        self.index = 0

    def add(self, label: str, text: str, created_at: datetime | None) -> Iterator[Chunk]:
        """Take one message; yields the chunks it completes."""
        text = text.strip()
        if not text:
            return
        for window, piece in enumerate(_windows(f"{label}: {text}", self.settings)):
            turn = _Turn(piece, estimate_tokens(piece) + 1, created_at)
            if self.fresh and self.tokens + turn.tokens > self.settings.target_tokens:
                yield self._emit()
                # a message's windows overlap already; whole turns carry the last one over
                self._keep_overlap(keep=window == 0)
            self.turns.append(turn)
            self.tokens += turn.tokens
            self.fresh = True

    def finish(self) -> Iterator[Chunk]:
        """The last chunk, unless it would only repeat the previous one's overlap."""
        if self.fresh:
            yield self._emit()

    def _emit(self) -> Chunk:
        times = [turn.created_at for turn in self.turns if turn.created_at is not None]
        chunk = Chunk(
            self.conversation_id,
            self.title,
            self.created_at,
            min(times) if times else None,
            max(times) if times else None,
            self.index,
            self.header + "\n".join(turn.text for turn in self.turns),
            self.tokens,
        )
        self.index += 1
        self.fresh = False
        return chunk

    def _keep_overlap(self, keep: bool = True) -> None:
        """Keep the last turns (or the tail of the last) within the overlap for the next chunk."""
        budget = self.settings.overlap_tokens if keep else 0
        kept: list[_Turn] = []
        used = 0
        for turn in reversed(self.turns):
            if used + turn.tokens > budget:
                if not kept:
                    tail = _tail(turn.text, budget)
                    if tail:
                        kept.append(_Turn(tail, estimate_tokens(tail) + 1, turn.created_at))
                        used += kept[-1].tokens
                break
            kept.append(turn)
            used += turn.tokens
        self.turns = kept[::-1]
        self.tokens = self.header_tokens + used


def _windows(text: str, settings: ChunkSettings) -> Iterator[str]:
    """``text`` whole when it fits a chunk, else in windows of about the target, overlapping."""
    room = max(settings.target_tokens - 20, 16)  # the title and labels need their share
    if estimate_tokens(text) <= room:
        yield text
        return
    chars_per_token = len(text) / estimate_tokens(text)
    width = max(int(room * chars_per_token), 16)
    step = max(width - int(settings.overlap_tokens * chars_per_token), width // 2)
    start = 0
    while start < len(text):
        end = min(start + width, len(text))
        if end < len(text):  # end at whitespace when there is some in the last fifth
            cut = text.rfind(" ", start + width * 4 // 5, end)
            end = cut if cut > start else end
        yield text[start:end].strip()
        if end >= len(text):
            return
        start = max(end - (width - step), start + 1)


def _tail(text: str, tokens: int) -> str:
    """About the last ``tokens`` of ``text``, starting at a word."""
    if tokens <= 0:
        return ""
    chars = int(tokens * len(text) / max(estimate_tokens(text), 1))
    if chars >= len(text):
        return text
    tail = text[-chars:]
    space = tail.find(" ")
    return "… " + (tail[space + 1 :] if 0 <= space < len(tail) // 2 else tail).strip()
