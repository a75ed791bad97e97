"""The export reader: any fsspec URL in, bounded batches of message rows out.

    reader = ExportReader("s3://uploads/user-1/export.zip")
    for batch in reader.batches():      # pyarrow.RecordBatch, schema rows.SCHEMA
        ...
    reader.stats                         # counts, skips by reason, bytes read

Memory is bounded by one conversation (kept lean by :mod:`jsonstream`) plus one batch,
whatever the size of the export.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

import fsspec
import pyarrow as pa
import pyarrow.compute as pc

from soulprint_pipeline.errors import EmptyExportError
from soulprint_pipeline.export import parallel
from soulprint_pipeline.export.containers import OpenedExport, ReadLimits, open_export
from soulprint_pipeline.export.dialects import chatgpt, claude
from soulprint_pipeline.export.jsonstream import backend_name, iter_conversations
from soulprint_pipeline.export.rows import (
    CUSTOM_INSTRUCTIONS,
    MEMORY,
    SCHEMA,
    Conversation,
    RowBatcher,
)
from soulprint_pipeline.export.spill import TextSpill

#: The rows' version: bump it by hand when the same export would give different rows (a new
#: rule for which messages are visible, a new column). It is conversation_batches' code version.
READER_VERSION = 1

#: Called with (stored bytes consumed, stored bytes in all) as the parse advances.
ProgressCallback = Callable[[int, int], None]


@dataclass
class ReadStats:
    """What the reader found; every field is a count or a name, never the person's text."""

    container: str = ""  # json | gzip | zip
    format: str = ""  # chatgpt | claude
    documents: list[str] = field(default_factory=list)
    backend: str = ""
    conversations: int = 0  # conversation objects in the export, skipped ones included
    conversations_with_messages: int = 0
    # Row counts below are kept by batches(); conversations() alone leaves them at zero.
    messages: int = 0  # visible messages (rows other than profile signals)
    custom_instructions: int = 0
    memories: int = 0
    rows: int = 0
    batches: int = 0
    bytes_read: int = 0  # stored bytes consumed (compressed, for a ZIP or gzip)
    total_bytes: int = 0
    json_bytes: int = 0  # JSON bytes parsed (decompressed), each document counted once
    first_message_at: float | None = None
    last_message_at: float | None = None
    roles: Counter[str] = field(default_factory=Counter)  # rows by role
    skipped: Counter[str] = field(default_factory=Counter)
    unknown_content_types: Counter[str] = field(default_factory=Counter)

    def add(self, other: ReadStats) -> None:
        """Count in what ``other`` found in more documents of the same export."""
        for name in (
            "conversations",
            "conversations_with_messages",
            "messages",
            "custom_instructions",
            "memories",
            "rows",
            "batches",
            "json_bytes",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.format = self.format or other.format
        times = [t for t in (self.first_message_at, other.first_message_at) if t is not None]
        self.first_message_at = min(times, default=None)
        times = [t for t in (self.last_message_at, other.last_message_at) if t is not None]
        self.last_message_at = max(times, default=None)
        self.roles.update(other.roles)
        self.skipped.update(other.skipped)
        self.unknown_content_types.update(other.unknown_content_types)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        summary = asdict(self)
        summary["roles"] = dict(sorted(self.roles.items()))
        summary["skipped"] = dict(sorted(self.skipped.items()))
        summary["unknown_content_types"] = dict(sorted(self.unknown_content_types.items()))
        return summary


@contextmanager
def _relaxed_gc() -> Iterator[None]:
    # The parse allocates millions of short-lived containers; Python's cyclic GC would scan
    # them over and over (it costs up to 2x here) though none forms a cycle.
    threshold = gc.get_threshold()
    gc.set_threshold(max(threshold[0], 200_000), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)


class _Compactor:
    """Compacts the nodes of a huge ChatGPT conversation as they finish, spilling their texts."""

    def __init__(self, spill: TextSpill) -> None:
        self._spill = spill

    def begin(self, conversation: object) -> None:
        self._spill.begin(id(conversation))

    def compact(self, node: dict[str, Any]) -> dict[str, Any]:
        return chatgpt.compact_node(node, self._spill.keep)

    def done(self, conversation: object) -> None:
        self._spill.release(id(conversation))


@dataclass(frozen=True)
class ReadSettings:
    """How an export is read: what a worker process needs to read its share the same way."""

    url: str
    limits: ReadLimits = field(default_factory=ReadLimits)
    storage_options: dict[str, Any] | None = None
    batch_rows: int = 50_000
    batch_text_chars: int = 1024 * 1024


class ExportReader:
    """Streams one export into message rows; see the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        limits: ReadLimits | None = None,
        storage_options: dict[str, Any] | None = None,
        batch_rows: int = ReadSettings.batch_rows,
        batch_text_chars: int = ReadSettings.batch_text_chars,
        on_progress: ProgressCallback | None = None,
        workers: int = 1,
    ) -> None:
        self.settings = ReadSettings(
            url, limits or ReadLimits(), storage_options, batch_rows, batch_text_chars
        )
        self.on_progress = on_progress
        # processes parsing a sharded export's documents side by side (see parallel.py)
        self.workers = workers
        self.stats = ReadStats(backend=backend_name())
        self._spill = TextSpill(batch_text_chars)
        self._only_document: str | None = None

    @classmethod
    def of_document(
        cls, settings: ReadSettings, document: str, on_progress: ProgressCallback | None = None
    ) -> ExportReader:
        """A reader of one document of the export, as a worker process reads its share: holding
        no conversations is then no error (the whole export is judged by the parent)."""
        options = {option.name: getattr(settings, option.name) for option in fields(settings)}
        reader = cls(**options, on_progress=on_progress)
        reader._only_document = document
        return reader

    def conversations(self) -> Iterator[Conversation]:
        """Each conversation with at least one row, linearized, in export order.

        Texts are whole strings here, so a huge conversation is held in memory whole; the
        batches are the bounded way to read an export.
        """
        for conversation in self._conversations():
            # a lean conversation holds its texts as UTF-8 bytes, or in the spill file
            if any(type(m.text) is not str for m in conversation.messages):
                messages = [
                    m._replace(text=self._spill.text(m.text)) for m in conversation.messages
                ]
                conversation = conversation._replace(messages=messages)
            yield conversation

    def _conversations(self) -> Iterator[Conversation]:
        # Message texts of a huge conversation may wait in the spill file (see spill.py).
        stats = self.stats
        settings = self.settings
        compactor = _Compactor(self._spill)
        with (
            open_export(settings.url, settings.limits, settings.storage_options) as export,
            _relaxed_gc(),
            closing(self._spill),
        ):
            self._note(export)
            for name, open_stream in export.documents():
                if self._only_document is not None and name != self._only_document:
                    continue
                for item in iter_conversations(
                    open_stream,
                    name,
                    limits=settings.limits,
                    compactor=compactor,
                ):
                    stats.bytes_read = export.bytes_read
                    if self.on_progress is not None:
                        self.on_progress(stats.bytes_read, stats.total_bytes)
                    if item is None:
                        stats.skipped["conversation:not_an_object"] += 1
                        continue
                    stats.conversations += 1
                    conversation = self._linearize(item)
                    # the parse's frames still hold the item while its rows are batched: its
                    # mapping (tens of MB for a huge conversation) is not needed any more
                    item.clear()
                    if conversation is not None:
                        yield conversation
            stats.json_bytes = export.json_bytes
            # all of it, unless this reads one document of several (a worker's share)
            stats.bytes_read = (
                export.total_bytes if self._only_document is None else export.bytes_read
            )
            if self.on_progress is not None:
                self.on_progress(stats.bytes_read, stats.total_bytes)
        if self._only_document is None:
            self._require_conversations()

    def _require_conversations(self) -> None:
        if self.stats.conversations == 0:
            raise EmptyExportError("The export holds no conversations.")

    def _linearize(self, item: dict[str, Any]) -> Conversation | None:
        stats = self.stats
        dialect = claude if "chat_messages" in item else chatgpt
        if not stats.format:
            stats.format = "claude" if dialect is claude else "chatgpt"
        conversation = dialect.linearize(item, stats.skipped, stats.unknown_content_types)
        if conversation is None:
            return None
        if not conversation.messages:
            stats.skipped["conversation:no_visible_messages"] += 1
            return None
        stats.conversations_with_messages += 1
        return conversation

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The rows as Arrow record batches of bounded size (see :class:`RowBatcher`).

        With ``workers`` over 1, a sharded export's documents are parsed in that many
        processes; the batches come out in the same order either way.
        """
        if self.workers > 1:
            documents = self._documents_to_share()
            if len(documents) > 1:
                yield from parallel.parallel_batches(self, documents, read_document)
                self._require_conversations()
                return
        settings = self.settings
        # a thread of its own encodes each batch's texts while the parser fills the next one
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-texts") as encoder:
            batcher = RowBatcher(
                settings.batch_rows, settings.batch_text_chars, self._spill.utf8, encoder
            )
            for conversation in self._conversations():
                for batch in batcher.add(conversation):
                    yield self._counted(batch)
            for batch in batcher.finish():
                yield self._counted(batch)

    def _documents_to_share(self) -> list[str]:
        """The export's documents, if other processes can open it too (not ``memory://``)."""
        settings = self.settings
        fs = fsspec.core.url_to_fs(settings.url, **(settings.storage_options or {}))[0]
        if "memory" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
            return []
        with open_export(settings.url, settings.limits, settings.storage_options) as export:
            self._note(export)
            return list(export.members)

    def _note(self, export: OpenedExport) -> None:
        self.stats.container = export.container
        self.stats.documents = list(export.members)
        self.stats.total_bytes = export.total_bytes

    def _counted(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        # Counting in Arrow, a batch at a time, keeps a Python loop off every message.
        stats = self.stats
        stats.batches += 1
        stats.rows += batch.num_rows
        for entry in pc.value_counts(batch.column("content_type")).to_pylist():
            if entry["values"] == CUSTOM_INSTRUCTIONS:
                stats.custom_instructions += entry["counts"]
            elif entry["values"] == MEMORY:
                stats.memories += entry["counts"]
            else:
                stats.messages += entry["counts"]
        for entry in pc.value_counts(batch.column("role")).to_pylist():
            stats.roles[entry["values"]] += entry["counts"]
        bounds = pc.min_max(batch.column("created_at").cast(pa.int64())).as_py()
        if bounds["min"] is not None:
            first, last = bounds["min"] / 1e6, bounds["max"] / 1e6
            if stats.first_message_at is None or first < stats.first_message_at:
                stats.first_message_at = first
            if stats.last_message_at is None or last > stats.last_message_at:
                stats.last_message_at = last
        return batch

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        """Iterating a reader iterates its batches (so it can be handed over as an output)."""
        return self.batches()

    def dataframes(self) -> Iterator[pd.DataFrame]:
        """The rows as pandas DataFrames of bounded size."""
        for batch in self.batches():
            yield batch.to_pandas()


def read_document(
    settings: ReadSettings, document: str, on_progress: ProgressCallback, spool: str
) -> ReadStats:
    """Parse one ``document`` of the export into the Arrow IPC file ``spool``; return its counts
    (a worker process's share, see parallel.py)."""
    reader = ExportReader.of_document(settings, document, on_progress)
    options = pa.ipc.IpcWriteOptions(compression="lz4")
    with pa.OSFile(spool, "wb") as sink, pa.ipc.new_stream(sink, SCHEMA, options=options) as out:
        for batch in reader.batches():
            out.write_batch(batch)
    return reader.stats
