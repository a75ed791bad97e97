"""One measurement in a fresh process, so its peak RSS is its own: prints one JSON line.

    python -m benchmarks.measure {bare|pipeline|materialize|sample} EXPORT [OUT_DIR [WORKERS]]

``bare`` is the baseline: ``ijson.items(f, "item")`` with the C backend on the same bytes the
pipeline reads (the ZIP member or the gzip stream for those forms), building every
conversation and dropping it. ``pipeline`` is the reader all the way to Parquet parts (with
WORKERS processes for a sharded export's documents; their peak RSS is reported apart).
``materialize`` runs the import job's four assets for one user through Dagster (an
in-process run on a temporary instance, the offline model). ``sample`` picks what the model
would see from the Parquet parts that ``pipeline`` left in OUT_DIR.
"""

from __future__ import annotations

import gzip
import json
import os
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


def pipeline(path: str, out: str, workers: int = 1) -> dict:
    # Imported inside, so the bare baseline's RSS stays that of ijson alone; main() has
    # imported these already, before the clock starts, as in a running pipeline.
    from soulprint_pipeline.errors import ExportError
    from soulprint_pipeline.export.reader import ExportReader
    from soulprint_pipeline.export.rows import DICTIONARY_COLUMNS
    from soulprint_pipeline.lake.parquet_parts import PartWriter

    shutil.rmtree(out, ignore_errors=True)
    reader = ExportReader(path, workers=workers)
    try:
        with PartWriter(out, dictionary_columns=DICTIONARY_COLUMNS) as writer:
            writer.write_all(reader.batches())
    except ExportError as error:  # a hostile export: refused, which is what is measured
        return {
            "refused": error.reason,
            "rows": 0,
            "parts": 0,
            "bytes_read": reader.stats.bytes_read,
        }
    return {
        "conversations": reader.stats.conversations,
        "rows": reader.stats.rows,
        "parts": len(writer.paths),
        "parquet_mb": round(writer.bytes_written / 2**20, 1),
    }


def materialize(path: str, workdir: str) -> dict:
    """The import job for one user on ``path``, with everything under ``workdir``."""
    import dagster as dg

    from soulprint_pipeline.definitions import defs
    from soulprint_pipeline.defs.partitions import UPLOAD_TAG, users
    from soulprint_pipeline.mirror.registry import open_profile_store

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(users.name, ["bench-user"])
        result = defs.resolve_job_def("import_user").execute_in_process(
            instance=instance, partition_key="bench-user", tags={UPLOAD_TAG: path}
        )
    store = open_profile_store(f"sqlite:///{workdir}/data/user_profiles.sqlite3")
    row = store.get("bench-user") or {}
    store.close()
    shutil.rmtree(f"{workdir}/data", ignore_errors=True)
    return {
        "success": result.success,
        "status": row.get("import_status"),
        "rows": row.get("total_messages"),
    }


def sample(out: str) -> dict:
    """What the model would see of the parts in ``out``, and its estimated cost."""
    from pathlib import Path

    from soulprint_pipeline.lake.store import Lake, StoredParts
    from soulprint_pipeline.soulprint.llm import PRICE_PER_MTOK
    from soulprint_pipeline.soulprint.sampling import COLUMNS, sample_conversations

    paths = [str(part) for part in sorted(Path(out).glob("part-*.parquet"))]
    parts = StoredParts(Lake(out), {"parts": paths})  # read as the soulprint asset reads them
    chosen = sample_conversations(parts.batches(COLUMNS))
    output_tokens = 1_500  # a soulprint's answer, about
    cost = (
        chosen.estimated_tokens * PRICE_PER_MTOK["input"] + output_tokens * PRICE_PER_MTOK["output"]
    ) / 1_000_000
    return {
        "conversations_total": chosen.total_conversations,
        "conversations_sampled": len(chosen.conversations),
        "estimated_input_tokens": chosen.estimated_tokens,
        "estimated_cost_usd": round(cost, 4),
    }


def _peak_rss_mb() -> float:
    """This process's peak RSS since it started. Not ``ru_maxrss``: Linux carries that over an
    exec from the forked parent's memory, so every figure would be at least the parent's."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux


def main() -> None:
    mode, path = sys.argv[1], sys.argv[2]
    if mode == "pipeline":
        # pandas too: pyarrow imports it on its first pa.array() call (about 0.2 s, once per
        # process), an import cost like these, not part of the reader's throughput
        import pandas  # noqa: F401

        import soulprint_pipeline.export.reader  # noqa: F401
        import soulprint_pipeline.lake.parquet_parts
    elif mode == "materialize":  # definitions read their settings from the environment:
        for name in [n for n in os.environ if n.startswith("SOULPRINT_")]:
            del os.environ[name]  # the embedded defaults only (never a real bucket or model)
        os.environ["SOULPRINT_DATA_DIR"] = f"{sys.argv[3]}/data"
        import soulprint_pipeline.definitions  # noqa: F401
    started = time.perf_counter()
    if mode == "bare":
        result = bare(path)
    elif mode == "pipeline":
        result = pipeline(path, sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 1)
    elif mode == "materialize":
        result = materialize(path, sys.argv[3])
    else:
        result = sample(path)
    result["seconds"] = time.perf_counter() - started
    result["peak_rss_mb"] = _peak_rss_mb()
    # the largest of any worker process (the parse workers of a sharded export)
    result["worker_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps(result))


if __name__ == "__main__":
    main()
