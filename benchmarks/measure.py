"""One measurement in a fresh process, so its peak RSS is its own: prints one JSON line.

    python -m benchmarks.measure {bare|pipeline} EXPORT [OUT_DIR]

``bare`` is the baseline: ``ijson.items(f, "item")`` with the C backend on the same bytes the
pipeline reads (the ZIP member or the gzip stream for those forms), building every
conversation and dropping it. ``pipeline`` is the reader all the way to Parquet parts.
"""

from __future__ import annotations

import gzip
import json
import resource
import shutil
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

import ijson


@contextmanager
def _json_stream(path: str) -> Iterator[BinaryIO]:
    with open(path, "rb") as raw:
        magic = raw.read(4)
        raw.seek(0)
        if magic.startswith(b"PK"):
            with zipfile.ZipFile(raw) as archive:
                member = next(n for n in archive.namelist() if n.endswith("conversations.json"))
                with archive.open(member) as stream:
                    yield stream  # type: ignore[misc]
        elif magic.startswith(b"\x1f\x8b"):
            with gzip.GzipFile(fileobj=raw) as stream:
                yield stream  # type: ignore[misc]
        else:
            yield raw


def bare(path: str) -> dict:
    backend = ijson.get_backend("yajl2_c")
    with _json_stream(path) as stream:
        conversations = sum(1 for _ in backend.items(stream, "item"))
    return {"conversations": conversations}


def pipeline(path: str, out: str) -> dict:
    # Imported inside, so the bare baseline's RSS stays that of ijson alone; main() has
    # imported these already, before the clock starts, as in a running pipeline.
    from soulprint_pipeline.parquet_parts import PartWriter
    from soulprint_pipeline.reader import ExportReader
    from soulprint_pipeline.rows import DICTIONARY_COLUMNS

    shutil.rmtree(out, ignore_errors=True)
    reader = ExportReader(path)
    with PartWriter(out, dictionary_columns=DICTIONARY_COLUMNS) as writer:
        writer.write_all(reader.batches())
    return {
        "conversations": reader.stats.conversations,
        "rows": reader.stats.rows,
        "parts": len(writer.paths),
        "parquet_mb": round(writer.bytes_written / 2**20, 1),
    }


def main() -> None:
    mode, path = sys.argv[1], sys.argv[2]
    if mode == "pipeline":
        import soulprint_pipeline.parquet_parts
        import soulprint_pipeline.reader  # noqa: F401
    started = time.perf_counter()
    result = bare(path) if mode == "bare" else pipeline(path, sys.argv[3])
    result["seconds"] = time.perf_counter() - started
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


if __name__ == "__main__":
    main()
