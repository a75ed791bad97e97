"""Writing record batches as numbered Parquet parts under any fsspec directory URL.

Encoding and compressing Parquet is the expensive half of a parse; pyarrow does it outside the
GIL, so a background thread writes parts while the parser fills the next batch.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable
from types import TracebackType
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

_DONE = object()


def part_name(index: int) -> str:
    """The file name of the ``index``-th part (sorted names are reading order)."""
    return f"part-{index:05d}.parquet"


class _Part:
    """One part being encoded in memory.

    Encoding into memory first, then writing the whole part in one call: writing through a
    Python file object would take the GIL for every write pyarrow makes, stalling the parser in
    the other thread.
    """

    def __init__(
        self, schema: pa.Schema, compression: str, dictionary_columns: list[str] | bool
    ) -> None:
        self._buffer = pa.BufferOutputStream()
        self._writer = pq.ParquetWriter(
            self._buffer, schema, compression=compression, use_dictionary=dictionary_columns
        )
        self.batches = 0

    def add(self, batch: pa.RecordBatch) -> None:
        """Encode ``batch`` as the next row group."""
        self._writer.write_batch(batch)
        self.batches += 1

    def close(self) -> pa.Buffer:
        """The encoded part."""
        self._writer.close()
        return self._buffer.getvalue()


class PartWriter:
    """Writes batches as numbered Parquet parts, in order, on one background thread.

    Each part holds up to ``batches_per_part`` batches, one row group each: a part's size is
    bounded like a batch's, and fewer parts cost less (each is a writer set up and closed).
    """

    def __init__(
        self,
        url: str,
        *,
        storage_options: dict[str, Any] | None = None,
        compression: str = "zstd",
        queue_depth: int = 1,
        dictionary_columns: list[str] | bool = True,
        batches_per_part: int = 8,
    ) -> None:
        self.fs, self.root = fsspec.core.url_to_fs(url, **(storage_options or {}))
        self.fs.makedirs(self.root, exist_ok=True)
        self.compression = compression
        # Dictionary-encoding free text only costs memory and time; callers name the columns
        # with few distinct values.
        self.dictionary_columns = dictionary_columns
        self.batches_per_part = batches_per_part
        self.paths: list[str] = []
        self.bytes_written = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_depth)
        self._error: BaseException | None = None
        self._aborted = False  # the producer failed: do not save a last, partial part
        self._thread = threading.Thread(target=self._run, name="parquet-parts", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        part: _Part | None = None
        while (batch := self._queue.get()) is not _DONE:
            if self._error is not None:
                continue  # drain, so the producer never blocks on a dead writer
            try:
                if part is None:
                    part = _Part(batch.schema, self.compression, self.dictionary_columns)
                part.add(batch)
                if part.batches == self.batches_per_part:
                    self._save(part)
                    part = None
            except BaseException as error:  # re-raised in the producer's thread
                self._error = error
        if part is not None and self._error is None and not self._aborted:
            try:
                self._save(part)
            except BaseException as error:
                self._error = error

    def _save(self, part: _Part) -> None:
        encoded = part.close()
        path = f"{self.root}/{part_name(len(self.paths))}"
        with self.fs.open(path, "wb") as handle:
            handle.write(encoded)
        self.paths.append(path)
        self.bytes_written += encoded.size

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def write(self, batch: pa.RecordBatch) -> None:
        """Queue one batch (blocks while ``queue_depth`` batches are pending)."""
        self._raise_if_failed()
        self._queue.put(batch)

    def write_all(self, batches: Iterable[pa.RecordBatch]) -> None:
        """Queue every batch of ``batches``."""
        for batch in batches:
            self.write(batch)

    def close(self) -> list[str]:
        """Wait for every queued part to be written; return the part paths in order."""
        self._stop()
        self._raise_if_failed()
        return self.paths

    def _stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_DONE)
            self._thread.join()

    def __enter__(self) -> PartWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
        else:
            self._aborted = True
            self._stop()
