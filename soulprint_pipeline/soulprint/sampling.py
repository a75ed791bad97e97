"""Which conversations the model sees: a representative sample inside a token budget.

The cost of a soulprint must not grow with the export: a 2 GB export costs what a 50 MB one
does. The sample covers the person's themes and the span of their history, not only the
newest or the longest conversations: one streaming pass keeps, in bounded memory, the best
few conversations of each month and of each theme (themes.py: the topic whose specific words
the person's messages use most), then the sample takes each theme's best conversation, then
goes round the periods (months, or quarters or years on a long history), newest period
first, taking the next best of each, until the budget or the count is used. The best in a
bucket is where the person writes most per message (in coarse steps; pasted documents are
not their words), then the newest. Custom instructions (ChatGPT's wrapper text removed,
versions dated, newest first) and saved memories (each one once) are always in, and so are
the candidate facts mined from every row (signals.py), so a fact stated once in one chat of
thousands reaches the model. The budget goes to the person: assistant turns are cut short
(together at most half the person's words in a conversation) and tool output is left out.

Bedrock's client offers no token counting, so tokens are estimated from UTF-8 bytes (about 3.5
bytes a token for English prose, and CJK characters, 3 bytes each, come out near one token).
"""

from __future__ import annotations

import heapq
import html
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from soulprint_pipeline.export.rows import CONVERSATION_COLUMNS, CUSTOM_INSTRUCTIONS, MEMORY
from soulprint_pipeline.soulprint.evidence import LONG_MESSAGE_CHARS
from soulprint_pipeline.soulprint.signals import (
    StatedFacts,
    custom_instruction_parts,
    dated_memory_items,
)
from soulprint_pipeline.soulprint.themes import THEMES

BYTES_PER_TOKEN = 3.5
#: An assistant line shorter than this says too little to be worth its place.
MIN_ASSISTANT_CHARS = 24
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
    kept_per_month: int = 4  # the best conversations of each month kept while streaming
    kept_per_theme: int = 4  # and of each theme
    max_months: int = 120  # months remembered (the newest); bounds the memory


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
    theme: str = ""  # the topic its person's words are most about; "" none
    user_chars: int = 0  # kept of the person's messages
    assistant_chars: int = 0  # kept of the assistant's

    @property
    def month(self) -> int | None:
        """Months since 1970 (``None`` undated): the finest period of the sample."""
        if self.created_at is None:
            return None
        day = datetime.fromtimestamp(self.created_at, UTC)
        return (day.year - 1970) * 12 + day.month - 1

    def add(self, role: str, text: str, cap: int, limit: int) -> None:
        """Keep a message, truncated, while the conversation is under ``limit`` characters;
        the assistant's lines, context only, never add up to more than half the person's."""
        if self.chars >= limit:
            return
        if role == "user":
            kept = text[:cap]
            self.user_chars += len(kept)
        else:
            allowed = min(cap, self.user_chars // 2 - self.assistant_chars)
            if allowed < MIN_ASSISTANT_CHARS:
                return
            kept = text[:allowed]
            self.assistant_chars += len(kept)
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
    #: how the sample covers the history: periods and themes in the export, and sampled
    coverage: dict[str, int] = field(default_factory=dict)

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


def _signal_texts(content_type: str, text: str) -> list[tuple[str, str, float | None]]:
    """``(key, text, saved)`` of what one signal row holds: a custom-instructions version
    without ChatGPT's wrapper, or each memory of a memory snapshot (so a memory kept in many
    snapshots is sent once) with the time it was saved when the snapshot dates it."""
    if content_type == CUSTOM_INSTRUCTIONS:
        about, respond = custom_instruction_parts(text)
        kept = f"About me: {about}\nHow to respond: {respond}" if respond else about
        return [(" ".join(kept.split()), kept, None)] if kept else []
    return [(" ".join(memory.split()), memory, saved) for saved, memory in dated_memory_items(text)]


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
                for key, kept, saved in _signal_texts(content_type, text):
                    held = saved if saved is not None else seconds
                    seen = signals[content_type].get(key)
                    if seen is None or held > seen[0]:
                        signals[content_type][key] = (held, kept)
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
                if len(text) <= LONG_MESSAGE_CHARS:  # a pasted document is not their words
                    current.user_words += len(text.split())
                current.user_turns += 1
                current.add("user", text, limits.max_user_chars, limit)
            else:
                current.add(row["role"], text, limits.max_assistant_chars, limit)
    if current is not None:
        yield current


def _substance(conversation: SampledConversation) -> float:
    return math.log1p(conversation.user_words) + 0.5 * math.log1p(conversation.user_turns)


_WORD_RE = re.compile(r"[^\W\d_]+")


def conversation_theme(texts: Iterable[str]) -> str:
    """The theme (themes.py) whose specific words ``texts`` (the person's messages) use most;
    "" when none of them appears."""
    counts: Counter[str] = Counter()
    for text in texts:
        for word in _WORD_RE.findall(text.casefold()):
            for theme, words in THEMES.items():
                if word in words:
                    counts[theme] += 1
    if not counts:
        return ""
    return min(counts, key=lambda theme: (-counts[theme], theme))


def _rank(conversation: SampledConversation) -> tuple[float, float, str]:
    """How a conversation ranks in its bucket (higher first): how much the person writes per
    message, in coarse steps (a 40-word and a 90-word message tie; many short turns would
    spend the budget on the assistant's), then the newest."""
    words_per_turn = conversation.user_words / max(conversation.user_turns, 1)
    return (
        round(math.log1p(words_per_turn)),
        conversation.created_at or float("-inf"),
        conversation.conversation_id,
    )


def _keep_best(heap: list, conversation: SampledConversation, size: int) -> None:
    """Keep ``conversation`` in ``heap`` (a min-heap) if it is among the ``size`` best."""
    entry = (*_rank(conversation), conversation)
    if len(heap) < size:
        heapq.heappush(heap, entry)
    elif entry[:3] > heap[0][:3]:
        heapq.heapreplace(heap, entry)


def _period_months(months: set[int], periods: int) -> int:
    """The shortest period (1, 3, 12 months, or longer) that cuts ``months`` into at most
    ``periods`` periods."""
    for length in (1, 3, 12, 24, 60):
        if len({month // length for month in months}) <= periods:
            return length
    return 120


def _coverage_order(
    candidates: list[SampledConversation], themes: Counter[str], period_months: int
) -> list[SampledConversation]:
    """``candidates`` in the order the sample takes them: the best conversation (:func:`_rank`)
    of each theme (the person's most frequent themes first), then round the periods, newest
    first, the next best of each."""
    order: list[SampledConversation] = []
    left = sorted(candidates, key=_rank, reverse=True)
    for theme in sorted(themes, key=lambda theme: (-themes[theme], theme)):
        if theme:
            best = next((c for c in left if c.theme == theme), None)
            if best is None:
                continue  # its conversations were in months too old to remember
            order.append(best)
            left.remove(best)
    periods: dict[int | None, list[SampledConversation]] = {}
    for conversation in left:  # the best first within each period
        month = conversation.month
        periods.setdefault(None if month is None else month // period_months, []).append(
            conversation
        )
    newest_first = sorted(periods, key=lambda p: (p is None, -(p or 0)))  # undated last
    while any(periods.values()):
        for period in newest_first:
            bucket = periods[period]
            if bucket:
                order.append(bucket.pop(0))
    return order


def sample_conversations(
    batches: Iterable[pa.RecordBatch], limits: SampleLimits | None = None
) -> Sample:
    """Pick the conversations the model sees; deterministic for the same rows."""
    limits = limits or SampleLimits()
    signals: Signals = {CUSTOM_INSTRUCTIONS: {}, MEMORY: {}}
    stated = StatedFacts()
    # min-heaps of the best conversations of each month, of each theme and of all (for a
    # short history), and of the most substantial short ones (when few are long enough)
    best: list = []
    by_month: dict[int | None, list] = {}
    by_theme: dict[str, list] = {}
    short: list[tuple[float, str, SampledConversation]] = []
    themes: Counter[str] = Counter()  # conversations of each theme, in the whole export
    months: set[int] = set()
    total = eligible = 0
    for conversation in _conversations(batches, limits, signals, stated):
        total += 1
        if conversation.user_turns < 1:
            continue
        if conversation.user_words < limits.min_user_words:
            entry = (_substance(conversation), conversation.conversation_id, conversation)
            if len(short) < limits.min_conversations:
                heapq.heappush(short, entry)
            elif entry[:2] > short[0][:2]:
                heapq.heapreplace(short, entry)
            continue
        eligible += 1
        conversation.theme = conversation_theme(t for r, t in conversation.messages if r == "user")
        themes[conversation.theme] += 1
        month = conversation.month
        if month is not None and month not in months:
            months.add(month)
            if len(months) > limits.max_months:  # forget the oldest month
                oldest = min(months)
                months.discard(oldest)
                by_month.pop(oldest, None)
                if month == oldest:
                    continue
        _keep_best(best, conversation, limits.max_conversations)
        _keep_best(by_month.setdefault(month, []), conversation, limits.kept_per_month)
        _keep_best(by_theme.setdefault(conversation.theme, []), conversation, limits.kept_per_theme)

    kept = {
        c.conversation_id: c
        for heap in (best, *by_month.values(), *by_theme.values())
        for *_, c in heap
    }
    candidates = sorted(kept.values(), key=_rank, reverse=True)
    if len(candidates) < limits.min_conversations:
        fill = sorted(short, key=lambda e: e[:2], reverse=True)
        candidates += [c for _, _, c in fill[: limits.min_conversations - len(candidates)]]
    period_months = _period_months(months, limits.target_conversations)

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
    for conversation in _coverage_order(candidates, themes, period_months):
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
    periods = {month // period_months for month in months}
    sampled_themes = {c.theme for c in chosen if c.theme}
    return Sample(
        conversations=chosen,
        custom_instructions=custom,
        memories=kept_memories,
        candidate_facts=candidate_facts,
        total_conversations=total,
        eligible_conversations=eligible,
        estimated_tokens=used,
        coverage={
            "period_months": period_months,
            "periods": len(periods),
            "periods_sampled": len(
                {c.month // period_months for c in chosen if c.month is not None} & periods
            ),
            "themes": len([theme for theme in themes if theme]),
            "themes_sampled": len(sampled_themes),
        },
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
        theme=conversation.theme,
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
