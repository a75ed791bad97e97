"""Which conversations the model sees: a representative sample inside a token budget.

The cost of a soulprint must not grow with the export: a 2 GB export costs what a 50 MB one
does. One streaming pass over the rows keeps, in bounded memory, the conversations that say
the most about the person (by how much they wrote, how many turns, how recently), then the
best are taken until the budget is used. Custom instructions (ChatGPT's wrapper text removed,
versions dated, newest first) and saved memories (each one once) are always in, and so are
the candidate facts mined from every row (signals.py), so a fact stated once in one chat of
thousands reaches the model. The budget goes to the person: assistant turns are cut short
and tool output is left out.

Bedrock's client offers no token counting, so tokens are estimated from UTF-8 bytes (about 3.5
bytes a token for English prose, and CJK characters, 3 bytes each, come out near one token).
"""

from __future__ import annotations

import heapq
import html
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from soulprint_pipeline.export.rows import CONVERSATION_COLUMNS, CUSTOM_INSTRUCTIONS, MEMORY
from soulprint_pipeline.soulprint.signals import (
    StatedFacts,
    custom_instruction_parts,
    memory_items,
)

BYTES_PER_TOKEN = 3.5
COLUMNS = CONVERSATION_COLUMNS


def estimate_tokens(text: str) -> int:
    """Estimated tokens of ``text`` for Claude models (no tokenizer offline or on Bedrock)."""
    return math.ceil(len(text.encode()) / BYTES_PER_TOKEN)


@dataclass(frozen=True)
class SampleLimits:
    """The budget and the bounds of a sample."""

    token_budget: int = 50_000
    min_conversations: int = 5
    target_conversations: int = 25  # each conversation gets at most budget / this
    max_conversations: int = 50
    max_user_chars: int = 1_500  # per message; the person's own words matter most
    max_assistant_chars: int = 100  # context only: the assistant's words are no evidence
    max_conversation_chars: int = 40_000  # what one conversation may bring, before the budget
    min_user_words: int = 12  # a conversation with less says nothing about the person
    signal_token_share: float = 0.15  # custom instructions and memories, at most
    candidate_token_share: float = 0.08  # the candidate facts mined from every row, at most


@dataclass
class SampledConversation:
    """One conversation as the model will see it (messages already truncated)."""

    conversation_id: str
    title: str
    created_at: float | None
    messages: list[tuple[str, str]]  # (role, text)
    user_words: int
    user_turns: int
    chars: int = 0

    def add(self, role: str, text: str, cap: int, limit: int) -> None:
        """Keep a message, truncated, while the conversation is under ``limit`` characters."""
        if self.chars < limit:
            kept = text[:cap]
            self.messages.append((role, kept))
            self.chars += len(kept)

    def render(self) -> str:
        """This conversation as it appears in the prompt."""
        lines = [f'<conversation title="{_attribute(self.title)}">']
        lines += [f"[{role}] {escaped(text)}" for role, text in self.messages]
        lines.append("</conversation>")
        return "\n".join(lines)

    def tokens(self) -> int:
        """Estimated tokens of this conversation in the prompt."""
        return estimate_tokens(self.render()) + 1


@dataclass
class Sample:
    """What the model sees, and how it was chosen."""

    conversations: list[SampledConversation]
    custom_instructions: list[str]
    memories: list[str]
    total_conversations: int
    eligible_conversations: int
    estimated_tokens: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    candidate_facts: list[str] = field(default_factory=list)  # dated, quoted, most trusted first

    def person_texts(self) -> Iterator[str]:
        """What the model is shown of the person (their custom instructions, memories,
        candidate facts and messages, as cut for the prompt; never the assistant's lines):
        where a quote given as evidence must be found."""
        yield from self.custom_instructions
        yield from self.memories
        yield from self.candidate_facts
        for conversation in self.conversations:
            yield from (text for role, text in conversation.messages if role == "user")


#: A custom instruction or memory, by its text (whitespace folded), with the newest time seen.
Signals = dict[str, dict[str, tuple[float, str]]]


def _signal_texts(content_type: str, text: str) -> list[tuple[str, str]]:
    """``(key, text)`` of what one signal row holds: a custom-instructions version without
    ChatGPT's wrapper, or each memory of a memory snapshot (so a memory kept in many snapshots
    is sent once)."""
    if content_type == CUSTOM_INSTRUCTIONS:
        about, respond = custom_instruction_parts(text)
        kept = f"About me: {about}\nHow to respond: {respond}" if respond else about
        return [(" ".join(kept.split()), kept)] if kept else []
    return [(" ".join(memory.split()), memory) for memory in memory_items(text)]


def _conversations(
    batches: Iterable[pa.RecordBatch],
    limits: SampleLimits,
    signals: Signals,
    stated: StatedFacts,
) -> Iterator[SampledConversation]:
    """Rows grouped back into conversations (a conversation's rows are contiguous)."""
    current: SampledConversation | None = None
    for batch in batches:
        batch = batch.select(COLUMNS)
        stated.add(batch)
        for row in batch.to_pylist():
            content_type, text = row["content_type"], row["text"]
            if content_type in (CUSTOM_INSTRUCTIONS, MEMORY):
                # a signal row has no time of its own: its conversation's says when it held
                when = row["created_at"] or row["conversation_created_at"]
                seconds = when.timestamp() if when is not None else float("-inf")
                for key, kept in _signal_texts(content_type, text):
                    seen = signals[content_type].get(key)
                    if seen is None or seconds > seen[0]:
                        signals[content_type][key] = (seconds, kept)
                continue
            if row["role"] == "tool":
                continue  # tool output (code results, web pages) says nothing of the person
            conversation_id = row["conversation_id"] or ""
            if current is None or current.conversation_id != conversation_id:
                if current is not None:
                    yield current
                created = row["created_at"]
                current = SampledConversation(
                    conversation_id,
                    row["conversation_title"] or "",
                    created.timestamp() if created is not None else None,
                    [],
                    0,
                    0,
                )
            limit = limits.max_conversation_chars
            if row["role"] == "user":
                current.user_words += len(text.split())
                current.user_turns += 1
                current.add("user", text, limits.max_user_chars, limit)
            else:
                current.add(row["role"], text, limits.max_assistant_chars, limit)
    if current is not None:
        yield current


def _substance(conversation: SampledConversation) -> float:
    return math.log1p(conversation.user_words) + 0.5 * math.log1p(conversation.user_turns)


def sample_conversations(
    batches: Iterable[pa.RecordBatch], limits: SampleLimits | None = None
) -> Sample:
    """Pick the conversations the model sees; deterministic for the same rows."""
    limits = limits or SampleLimits()
    signals: Signals = {CUSTOM_INSTRUCTIONS: {}, MEMORY: {}}
    stated = StatedFacts()
    keep = limits.max_conversations * 4
    best: list[tuple[float, str, SampledConversation]] = []  # a min-heap of the most substantial
    short: list[tuple[float, str, SampledConversation]] = []  # fallback when few are long enough
    total = eligible = 0
    for conversation in _conversations(batches, limits, signals, stated):
        total += 1
        entry = (_substance(conversation), conversation.conversation_id, conversation)
        if conversation.user_words >= limits.min_user_words and conversation.user_turns >= 1:
            eligible += 1
            heap = best
        elif conversation.user_turns >= 1:
            heap = short
        else:
            continue
        if len(heap) < keep:
            heapq.heappush(heap, entry)
        elif entry[:2] > heap[0][:2]:
            heapq.heapreplace(heap, entry)

    candidates = [c for _, _, c in best]
    if len(candidates) < limits.min_conversations:
        fill = sorted(short, key=lambda e: e[:2], reverse=True)
        candidates += [c for _, _, c in fill[: limits.min_conversations - len(candidates)]]
    times = [c.created_at for c in candidates if c.created_at is not None]
    oldest, newest = (min(times), max(times)) if times else (0.0, 0.0)
    span = (newest - oldest) or 1.0

    def score(conversation: SampledConversation) -> tuple[float, str]:
        recency = ((conversation.created_at or oldest) - oldest) / span  # 0 oldest .. 1 newest
        return (_substance(conversation) + 1.5 * recency, conversation.conversation_id)

    custom = _newest_first(signals[CUSTOM_INSTRUCTIONS])[:3]
    memories = _newest_first(signals[MEMORY])
    signal_budget = int(limits.token_budget * limits.signal_token_share)
    kept_memories: list[str] = []
    # the request and the block's tags, then each custom instruction and memory line
    used = estimate_tokens(_FRAME) + sum(estimate_tokens(text) + 1 for text in custom)
    for memory in memories:
        cost = estimate_tokens(f"- {memory}") + 1
        if used + cost > signal_budget:
            break
        kept_memories.append(memory)
        used += cost
    # every stated fact, from every row: one said once in one chat of thousands still counts
    candidate_budget = used + int(limits.token_budget * limits.candidate_token_share)
    candidate_facts: list[str] = []
    for candidate in stated.candidates():
        if candidate.kind == "instruction":
            continue  # the custom instructions block holds them whole
        line = candidate.line()
        cost = estimate_tokens(f"- {line}") + 1
        if used + cost > candidate_budget:
            break
        candidate_facts.append(line)
        used += cost
    chosen: list[SampledConversation] = []
    # no conversation may crowd out the others: a representative sample is a broad one
    per_conversation = (limits.token_budget - used) // limits.target_conversations
    for conversation in sorted(candidates, key=score, reverse=True):
        if len(chosen) == limits.max_conversations:
            break
        if conversation.tokens() > per_conversation:
            conversation = _trimmed(conversation, per_conversation)
        cost = conversation.tokens()
        if not conversation.messages or used + cost > limits.token_budget:
            continue
        chosen.append(conversation)
        used += cost
    chosen.sort(key=lambda c: (c.created_at or 0.0, c.conversation_id))  # read in time order
    return Sample(
        conversations=chosen,
        custom_instructions=custom,
        memories=kept_memories,
        candidate_facts=candidate_facts,
        total_conversations=total,
        eligible_conversations=eligible,
        estimated_tokens=used,
    )


def _newest_first(found: dict[str, tuple[float, str]]) -> list[str]:
    """The signals, newest first (ties by text, for a deterministic sample), each dated."""
    ordered = sorted(found.values(), key=lambda entry: (-entry[0], entry[1]))
    return [f"({_date(seconds)}) {text}" for seconds, text in ordered]


def _date(seconds: float) -> str:
    if seconds == float("-inf"):
        return "undated"
    return datetime.fromtimestamp(seconds, UTC).date().isoformat()


def _trimmed(conversation: SampledConversation, tokens: int) -> SampledConversation:
    """The first messages of ``conversation`` that fit in ``tokens``."""
    kept: list[tuple[str, str]] = []
    used = estimate_tokens(f'<conversation title="{_attribute(conversation.title)}">') + 6
    for role, text in conversation.messages:
        cost = estimate_tokens(f"[{role}] {text}") + 1
        if used + cost > tokens:
            break
        kept.append((role, text))
        used += cost
    return SampledConversation(
        conversation.conversation_id,
        conversation.title,
        conversation.created_at,
        kept,
        conversation.user_words,
        conversation.user_turns,
    )


def render_sample(sample: Sample) -> str:
    """The sample as the delimited block the prompt wraps the conversations in."""
    lines = []
    if sample.custom_instructions:
        lines.append("<custom_instructions>")
        lines += [escaped(text) for text in sample.custom_instructions]
        lines.append("</custom_instructions>")
    if sample.memories:
        lines.append("<saved_memories>")
        lines += [f"- {escaped(memory)}" for memory in sample.memories]
        lines.append("</saved_memories>")
    if sample.candidate_facts:
        lines.append("<candidate_facts>")
        lines += [f"- {escaped(line)}" for line in sample.candidate_facts]
        lines.append("</candidate_facts>")
    lines.append("<conversations>")
    lines += [conversation.render() for conversation in sample.conversations]
    lines.append("</conversations>")
    return "\n".join(lines)


#: What render_sample adds around the texts, and room for the request that follows the block.
_FRAME = (
    "<custom_instructions>\n</custom_instructions>\n<saved_memories>\n</saved_memories>\n"
    "<candidate_facts>\n</candidate_facts>\n"
    "<conversations>\n</conversations>\n" + "x" * 4 * 64
)


def escaped(text: str) -> str:
    """A person's text inside the data block: ``&``, ``<`` and ``>`` as XML entities, so no
    message can close the block (``</conversations>``) or open a tag of its own."""
    return html.escape(text, quote=False)


def _attribute(value: Any) -> str:
    return escaped(str(value).replace('"', "'").replace("\n", " ")[:120])
