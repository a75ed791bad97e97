"""Parsing a sharded export's documents on several cores.

Since 2026 a ChatGPT export holds its conversations as ``conversations-000.json`` ...
members, each a whole JSON document, so separate processes can parse them side by side (one
Python process is bound to one core by its GIL). Each worker reads one document with the
function it is given (``reader.read_document``, with the reader's own settings, so every
reader option reaches the workers) and writes the batches to a local Arrow IPC
file (LZ4-compressed; at worst every document's rows wait there, when the parent writes parts
more slowly than the workers parse); the parent reads the files back in document order, so the
batches come out in exactly the order a sequential read gives, and adds up the workers' counts.

Memory: each worker process costs what a sequential reader does (about 170 MB, mostly the
libraries it imports), so parallel parsing is opt-in (``workers``); the parent holds one batch.
Workers are spawned, not forked, as the parent may run threads; a parent started from a script
on standard input cannot spawn (a limit of multiprocessing).
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, wait
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    from multiprocessing.sharedctypes import SynchronizedArray

    from soulprint_pipeline.export.reader import ExportReader, ReadSettings, ReadStats

    #: Parses one document into a spool file: (settings, document, on_progress, spool).
    DocumentParser = Callable[[ReadSettings, str, Callable[[int, int], None], str], ReadStats]

#: How often the parent reports progress while it waits for a document.
PROGRESS_INTERVAL_S = 0.5

_progress: Any = None  # in a worker: stored bytes read, one slot per document


def _start_worker(progress: SynchronizedArray) -> None:
    global _progress
    _progress = progress


def _parse_document(
    parse: DocumentParser, settings: ReadSettings, index: int, document: str, spool: str
) -> ReadStats:
    """In a worker: ``parse`` one document, its progress in the shared slot ``index``."""

    def on_progress(done: int, _total: int) -> None:
        _progress[index] = done

    return parse(settings, document, on_progress, spool)


def parallel_batches(
    reader: ExportReader, documents: list[str], parse: DocumentParser
) -> Iterator[pa.RecordBatch]:
    """``reader``'s batches, its ``documents`` parsed by ``parse`` in ``reader.workers``
    processes.

    Errors are the sequential reader's: a document's ExportError is raised once the batches
    of the documents before it have been given, as a sequential read would.
    """
    stats = reader.stats
    # spawn, not fork: the parent may run threads (Dagster's, the Parquet writer's)
    context = multiprocessing.get_context("spawn")
    progress = context.Array("q", len(documents), lock=False)

    def report() -> None:
        if reader.on_progress is not None:
            done = min(sum(progress), stats.total_bytes)
            stats.bytes_read = max(stats.bytes_read, done)
            reader.on_progress(stats.bytes_read, stats.total_bytes)

    with tempfile.TemporaryDirectory(prefix="soulprint-parse-") as spool_dir:
        pool = ProcessPoolExecutor(
            max_workers=min(reader.workers, len(documents)),
            mp_context=context,
            initializer=_start_worker,
            initargs=(progress,),
        )
        try:
            futures: list[Future[ReadStats]] = [
                pool.submit(
                    _parse_document, parse, reader.settings, index, document, f"{spool_dir}/{index}"
                )
                for index, document in enumerate(documents)
            ]
            for index, future in enumerate(futures):
                while not wait([future], timeout=PROGRESS_INTERVAL_S).done:
                    report()
                stats.add(future.result())  # a worker's error is raised here
                spool = f"{spool_dir}/{index}"
                with pa.OSFile(spool, "rb") as source, pa.ipc.open_stream(source) as stream:
                    for batch in stream:
                        yield batch
                        report()
                os.remove(spool)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    stats.bytes_read = stats.total_bytes
    if reader.on_progress is not None:
        reader.on_progress(stats.bytes_read, stats.total_bytes)
