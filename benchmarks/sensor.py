"""The upload sensor on a big bucket, and a streaming read of a big export from S3.

    python -m benchmarks.sensor [--local 100000] [--s3 10000] [--read 200MB] [--baseline 20MB]

* **Local tick**: ``--local`` small files under a temporary uploads folder (users of 5 files
  each: 3 export names, a ``.DS_Store`` and a ``notes.txt``; one user in 20 has an invalid id),
  then one ``upload_sensor`` tick over it, called as the tests call it (``build_sensor_context``
  with the resources; at most ``SOULPRINT_SENSOR_MAX_RUNS_PER_TICK`` runs a tick, by default
  the test instance's run queue limit, 10),
  then a second tick from the first one's cursor, and the bare listing on its own.
* **S3 tick**: the same over ``--s3`` objects put into a bucket on a local S3 server (moto's
  ``ThreadedMotoServer``, as the tests' ``s3_server``).
* **Streaming read**: a ``--read`` JSON export (``synthetic.write_export``) put on that server
  and parsed from ``s3://`` by ``ExportReader`` to its last batch, and a ``--baseline`` one the
  same way: the two peak RSS must be about equal, since the reader streams. The big one is read
  from local disk too, for the cost of S3 alone.

Each measurement runs in a fresh process, and so do the S3 server, the uploads and the export
generation: on Linux a child's ``ru_maxrss`` starts from its parent's peak (the high-water mark
survives fork and exec), so the process that starts the measurements must itself stay small.
``VmHWM`` (``/proc/self/status``, the peak of the process's own memory) is printed alongside as
a check. Everything is generated at run time in a temporary folder and removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.table import print_aligned

MiB = 1024 * 1024
BUCKET = "bench-uploads"
FILES_PER_USER = 5
REGION = "eu-west-1"
KEY, SECRET = "bench-access-key", "bench-secret-key"


def _layout(count: int) -> list[tuple[str, bytes]]:
    """``count`` objects: (path relative to the bucket, content), as real buckets hold them."""
    users = -(-count // FILES_PER_USER)
    names = ("export.json", "export-2.zip", "conversations.json.gz", ".DS_Store", "notes.txt")
    objects = []
    for index in range(users):
        user = f"bad.user-{index:06d}" if index % 20 == 19 else f"user-{index:06d}"
        for name in names:
            objects.append((f"{user}/{name}", b"[]" if name.startswith(("e", "c")) else b"junk"))
    return objects[:count]


def _memory() -> dict[str, float]:
    """Peak RSS by getrusage, and the peak of this process's own memory (VmHWM), in MB."""
    hwm = 0.0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) / 1024
    return {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "hwm_mb": hwm}


def _size(text: str) -> int:
    units = {"KB": 1024, "MB": MiB, "GB": 1024 * MiB, "B": 1}
    text = text.strip().upper()
    for unit, factor in units.items():
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def _s3_settings(endpoint: str | None) -> Any:
    from soulprint_pipeline.defs.resources import S3Settings

    if not endpoint:
        return S3Settings()
    return S3Settings(
        endpoint_url=endpoint, access_key_id=KEY, secret_access_key=SECRET, region=REGION
    )


def _s3_client(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        region_name=REGION,
        config=Config(max_pool_connections=64),
    )


# ------------------------------------------------------------------------------------------
# the helper processes (``python -m benchmarks.sensor _name ...``)


def serve_s3() -> None:
    """A local S3 server with an empty bucket; prints its endpoint, stops when stdin closes."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        _s3_client(endpoint).create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        print(json.dumps({"endpoint": endpoint}), flush=True)
        sys.stdin.read()
    finally:
        server.stop()


def put_objects(endpoint: str, count: int) -> dict[str, Any]:
    """``count`` small objects into the bucket, 32 at a time."""
    from concurrent.futures import ThreadPoolExecutor

    client = _s3_client(endpoint)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=32) as pool:
        list(
            pool.map(
                lambda item: client.put_object(Bucket=BUCKET, Key=item[0], Body=item[1]),
                _layout(count),
            )
        )
    return {"seconds": time.perf_counter() - started}


def put_export(endpoint: str, path: str, target: int, key: str) -> dict[str, Any]:
    """Generate a JSON export of ``target`` bytes at ``path`` and upload it as ``key``."""
    from soulprint_pipeline.testing.synthetic import write_export

    started = time.perf_counter()
    write_export(path, fmt="json", target_bytes=target, seed=7)
    generated = time.perf_counter() - started
    started = time.perf_counter()
    _s3_client(endpoint).upload_file(path, BUCKET, key)
    return {"generated_s": generated, "uploaded_s": time.perf_counter() - started}


def measure_tick(url: str, endpoint: str | None, workdir: str) -> dict[str, Any]:
    """Two sensor ticks over ``url`` (fresh cursor, then the first tick's), and the listing."""
    import dagster as dg

    from soulprint_pipeline.definitions import default_resources
    from soulprint_pipeline.defs.assets import ASSETS
    from soulprint_pipeline.defs.io_manager import LakeIOManager
    from soulprint_pipeline.defs.jobs import import_user
    from soulprint_pipeline.defs.resources import ProfilesResource, UploadsResource
    from soulprint_pipeline.defs.sensors import upload_sensor

    uploads = UploadsResource(url=url, s3=_s3_settings(endpoint))
    resources = {
        **default_resources(),
        "uploads": uploads,
        "lake": LakeIOManager(url=str(Path(workdir) / "lake"), s3=_s3_settings(None)),
        "profiles": ProfilesResource(url=f"sqlite:///{Path(workdir) / 'profiles.sqlite3'}"),
    }
    defs = dg.Definitions(
        assets=ASSETS,
        jobs=[import_user],
        sensors=[upload_sensor],
        resources=resources,
    )
    imports = _memory()
    started = time.perf_counter()
    listed = sum(1 for _ in uploads.list_uploads())
    list_seconds = time.perf_counter() - started
    ticks = []
    cursor = None
    with dg.instance_for_test() as instance:
        for _ in range(2):
            with dg.build_sensor_context(
                instance=instance, cursor=cursor, definitions=defs, resources=resources
            ) as context:
                started = time.perf_counter()
                result = upload_sensor(context)
                seconds = time.perf_counter() - started
            for request in result.dynamic_partitions_requests or []:
                instance.add_dynamic_partitions(
                    request.partitions_def_name, list(request.partition_keys)
                )
            ticks.append({"seconds": seconds, "runs": len(result.run_requests)})
            cursor = result.cursor
    return {
        "listed": listed,
        "list_seconds": list_seconds,
        "ticks": ticks,
        "before_mb": imports["peak_rss_mb"],
        **_memory(),
    }


def measure_read(url: str, endpoint: str | None) -> dict[str, Any]:
    """Parse the export at ``url`` to its last batch through ``ExportReader``."""
    from soulprint_pipeline.export.reader import ExportReader

    options = _s3_settings(endpoint).storage_options(url) or None
    if options:
        import s3fs  # noqa: F401  (imported before the baseline, as in a running pipeline)
    before = _memory()["peak_rss_mb"]  # the interpreter and the imports
    reader = ExportReader(url, storage_options=options)
    started = time.perf_counter()
    rows = sum(batch.num_rows for batch in reader.batches())
    seconds = time.perf_counter() - started
    return {
        "bytes": reader.stats.total_bytes,
        "rows": rows,
        "conversations": reader.stats.conversations,
        "seconds": seconds,
        "before_mb": before,
        **_memory(),
    }


HELPERS = {
    "_serve_s3": lambda args: serve_s3(),
    "_put_objects": lambda args: put_objects(args[0], int(args[1])),
    "_put_export": lambda args: put_export(args[0], args[1], int(args[2]), args[3]),
    "_tick": lambda args: measure_tick(args[0], args[1] or None, args[2]),
    "_read": lambda args: measure_read(args[0], args[1] or None),
}


# ------------------------------------------------------------------------------------------
# the driver: small on purpose (see the module docstring), it only starts processes


def _run(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """One helper in a fresh interpreter; its JSON result."""
    command = [sys.executable, "-m", "benchmarks.sensor", *args]
    result = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, **(env or {})}, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _make_local(root: Path, count: int) -> None:
    old = time.time() - 86_400  # uploads that finished long ago (settled)
    for index, (relative, data) in enumerate(_layout(count)):
        path = root / relative
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        modified = old + index * 0.001  # distinct times, in layout order
        os.utime(path, (modified, modified))


def _memory_cells(result: dict[str, Any]) -> list[str]:
    return [
        f"{result['peak_rss_mb']:.0f}",
        f"{result['before_mb']:.0f}",
        f"{result['hwm_mb']:.0f}",
    ]


def _tick_rows(label: str, result: dict[str, Any]) -> list[list[str]]:
    listed = result["listed"]
    rows = [
        [
            f"{label}: listing only",
            f"{listed:,} objects",
            f"{result['list_seconds']:.2f}",
            f"{listed / result['list_seconds']:,.0f} obj/s",
            "",
            *_memory_cells(result),
        ]
    ]
    for n, tick in enumerate(result["ticks"], start=1):
        rows.append(
            [
                f"{label}: upload_sensor tick {n}",
                f"{listed:,} objects",
                f"{tick['seconds']:.2f}",
                f"{listed / tick['seconds']:,.0f} obj/s",
                str(tick["runs"]),
                "",
                "",
                "",
            ]
        )
    return rows


def _read_row(label: str, result: dict[str, Any]) -> list[str]:
    mb = result["bytes"] / MiB
    return [
        label,
        f"{mb:,.0f} MB, {result['rows']:,} rows",
        f"{result['seconds']:.2f}",
        f"{mb / result['seconds']:,.1f} MB/s",
        "",
        *_memory_cells(result),
    ]


def _print_table(rows: list[list[str]]) -> None:
    header = [
        "measurement",
        "size",
        "seconds",
        "rate",
        "runs",
        "peak RSS MB",
        "before MB",
        "VmHWM MB",
    ]
    print_aligned(header, rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--local", type=int, default=100_000, help="objects in the folder")
    parser.add_argument("--s3", type=int, default=10_000, help="objects in the S3 bucket")
    parser.add_argument("--read", default="200MB", help="the export read from S3 (0: none)")
    parser.add_argument("--baseline", default="20MB", help="the small export, for RSS growth")
    parser.add_argument("--workdir", default=None, help="a folder for it all (default: a temp)")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="soulprint-bench-sensor-", dir=args.workdir))
    env = {
        "SOULPRINT_SENSOR_SETTLE_SECONDS": "0",  # the objects just put on S3 count as settled
        "SOULPRINT_DATA_DIR": str(workdir / "data"),
    }
    rows: list[list[str]] = []
    reads: dict[str, float] = {}
    server: subprocess.Popen[str] | None = None
    try:
        if args.local:
            uploads = workdir / "uploads"
            uploads.mkdir()
            started = time.perf_counter()
            _make_local(uploads, args.local)
            print(f"created {args.local:,} files in {time.perf_counter() - started:.1f} s")
            result = _run("_tick", str(uploads), "", str(workdir), env=env)
            print(f"local tick: {json.dumps(result)}")
            rows += _tick_rows("local folder", result)
            shutil.rmtree(uploads)

        if args.s3 or _size(args.read):
            server = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.sensor", "_serve_s3"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert server.stdout is not None
            endpoint = json.loads(server.stdout.readline())["endpoint"]
            print(f"S3 server (moto) at {endpoint}")
            if args.s3:
                put = _run("_put_objects", endpoint, str(args.s3))
                print(f"put {args.s3:,} objects in {put['seconds']:.1f} s")
                result = _run("_tick", f"s3://{BUCKET}", endpoint, str(workdir), env=env)
                print(f"S3 tick: {json.dumps(result)}")
                rows += _tick_rows("S3 (moto server)", result)
            for label, size in (("read", args.read), ("baseline", args.baseline)):
                target = _size(size)
                if not target:
                    continue
                path = workdir / f"{label}.json"
                key = f"reader/{label}/export.json"
                made = _run("_put_export", endpoint, str(path), str(target), key)
                print(
                    f"{size} export: generated in {made['generated_s']:.1f} s, "
                    f"uploaded in {made['uploaded_s']:.1f} s"
                )
                result = _run("_read", f"s3://{BUCKET}/{key}", endpoint)
                print(f"{size} from S3: {json.dumps(result)}")
                rows.append(_read_row(f"ExportReader {size} from S3", result))
                reads[size] = result["peak_rss_mb"]
                if label == "read":
                    result = _run("_read", str(path), "")
                    print(f"{size} from disk: {json.dumps(result)}")
                    rows.append(_read_row(f"ExportReader {size} from disk", result))
                path.unlink()
    finally:
        if server is not None:
            assert server.stdin is not None
            server.stdin.close()  # the server stops when its stdin closes
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        shutil.rmtree(workdir, ignore_errors=True)

    print()
    _print_table(rows)
    if len(reads) == 2:
        big, small = reads[args.read], reads[args.baseline]
        print(f"\npeak RSS reading {args.read} / {args.baseline} from S3: {big / small:.2f}x")
    print(f"(this driver's own peak RSS: {_memory()['peak_rss_mb']:.0f} MB)")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in HELPERS:
        output = HELPERS[sys.argv[1]](sys.argv[2:])
        if output is not None:
            print(json.dumps(output))
    else:
        main()
