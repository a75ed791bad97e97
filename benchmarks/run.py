"""``make bench``: the reader's speed and memory on generated exports, against bare ijson.

Every figure is measured in this run, on exports generated at run time (never committed):
each measurement runs in a fresh process (``benchmarks.measure``) so its peak RSS is its own,
and each is repeated with the baseline interleaved, keeping the best time of each, because
these machines share their cores with neighbours. Exports come from the project's generator
(``soulprint_pipeline.testing.synthetic``) and, for one case, from the team's independent one
(``benchmarks/gen_export.py``, a verbatim copy), whose many short turns cost more per byte.

    python -m benchmarks.run [--size 1GB] [--small 200MB] [--giant 100MB] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from soulprint_pipeline.testing.synthetic import parse_size, write_export

MiB = 1024 * 1024
#: The shape of ``benchmarks/gen_export.py``, the team's independent generator: about twice
#: as many conversations and messages per GB as ours, many short turns, tool and browsing nodes.
INDEPENDENT = "gen_export"


def write_independent_export(path: Path, size: int) -> None:
    """A plain JSON export of ``size`` bytes from the independent generator, in a subprocess
    (it counts MB as 10**6 bytes)."""
    command = [sys.executable, "-m", "benchmarks.gen_export", "--target-mb", str(size / 1e6)]
    subprocess.run([*command, "-o", str(path)], check=True, capture_output=True)


def measure(mode: str, export: Path, out: Path, workers: int = 1) -> dict:
    """Run one measurement in a fresh interpreter and return its JSON result."""
    command = [sys.executable, "-m", "benchmarks.measure", mode, str(export), str(out)]
    command.append(str(workers))
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def best_of(repeat: int, export: Path, out: Path) -> tuple[dict, dict]:
    """The best bare and pipeline runs of ``repeat`` interleaved pairs."""
    bare: list[dict] = []
    pipeline: list[dict] = []
    for _ in range(repeat):
        bare.append(measure("bare", export, out))
        pipeline.append(measure("pipeline", export, out))
    return min(bare, key=lambda r: r["seconds"]), min(pipeline, key=lambda r: r["seconds"])


def sharded_speedup(repeat: int, workdir: Path, size: int, out: Path, members: int = 8) -> dict:
    """The reader on a sharded ZIP in one process against two worker processes."""
    export = workdir / "export-zip-sharded.zip"
    write_export(str(export), fmt="zip-sharded", target_bytes=size, seed=1, shards=members)
    os.sync()
    one: list[dict] = []
    two: list[dict] = []
    for _ in range(repeat):
        one.append(measure("pipeline", export, out))
        two.append(measure("pipeline", export, out, workers=2))
    export.unlink()
    best_one = min(one, key=lambda r: r["seconds"])
    best_two = min(two, key=lambda r: r["seconds"])
    return {
        "members": members,
        "one_mb_s": round(size / MiB / best_one["seconds"], 1),
        "two_mb_s": round(size / MiB / best_two["seconds"], 1),
        "speedup": round(best_one["seconds"] / best_two["seconds"], 2),
        "one_rss_mb": round(best_one["peak_rss_mb"]),
        "two_rss_mb": round(best_two["peak_rss_mb"]),
        "worker_rss_mb": round(best_two["worker_peak_rss_mb"]),
    }


def _hostile_files() -> dict[str, bytes]:
    """Small files built to make a JSON parser build far more than their size."""
    node = (
        '{"id": "m", "parent": "root", "children": [], "message": {"id": "m", "author": '
        '{"role": "user"}, "content": {"content_type": "text", "parts": [%s"hello"]}}}'
    )
    conversation = '{"title": "t", "current_node": "m", "mapping": {%s"m": %s}}'
    return {
        "200,000 nested [": b"[" * 200_000,
        "1 MB key over 170,000 keys": b'[{"'
        + b"k" * 1_000_000
        + b'": {'
        + b'"a": 1, ' * 170_000
        + b'"b": 1}}]',
        "400,000 {} in one message": (
            "[" + conversation % ("", node % ("{}, " * 400_000)) + "]"
        ).encode(),
        "300,000 empty nodes": (
            "["
            + conversation % ("".join(f'"x{i}": {{}}, ' for i in range(300_000)), node % "")
            + "]"
        ).encode(),
    }


def hostile_shapes(repeat: int, workdir: Path, out: Path) -> list[dict]:
    """Each hostile file's peak RSS and time against a generated export of the same size."""
    results = []
    for shape, data in _hostile_files().items():
        hostile = workdir / "hostile.json"
        hostile.write_bytes(data)
        normal = workdir / "normal.json"
        write_export(str(normal), fmt="json", target_bytes=len(data), seed=2)
        os.sync()
        ours = [measure("pipeline", hostile, out) for _ in range(repeat)]
        reference = [measure("pipeline", normal, out) for _ in range(repeat)]
        best, best_normal = (min(r, key=lambda m: m["seconds"]) for r in (ours, reference))
        results.append(
            {
                "shape": shape,
                "bytes": len(data),
                "refused": best.get("refused"),
                "rss_mb": round(best["peak_rss_mb"]),
                "normal_rss_mb": round(best_normal["peak_rss_mb"]),
                "time_ratio": round(best["seconds"] / best_normal["seconds"], 2),
            }
        )
        hostile.unlink()
        normal.unlink()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="1GB", help="the large export (default: %(default)s)")
    parser.add_argument("--small", default="200MB", help="the small export, for RSS growth")
    parser.add_argument("--giant", default="100MB", help="one conversation this big")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", default=None, help="where exports are generated")
    args = parser.parse_args(argv)

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="soulprint-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / "parts"
    size, small, giant = parse_size(args.size), parse_size(args.small), parse_size(args.giant)
    cases = [
        (f"{args.size} JSON", "json", size, 0, "pastes"),
        (f"{args.size} ZIP", "zip", size, 0, "pastes"),
        (f"{args.size} gzip", "gzip", size, 0, "pastes"),
        (f"{args.small} JSON", "json", small, 0, "pastes"),
        (f"{args.size} JSON, gen_export", "json", size, 0, INDEPENDENT),
        (f"{args.giant} conversation", "json", giant + giant // 2, giant, "pastes"),
        (f"{args.giant} of short turns", "json", giant + giant // 2, giant, "turns"),
    ]
    rows = []
    samples: list[dict] = []
    materialized: dict = {}
    for label, fmt, target, giant_bytes, giant_shape in cases:
        export = workdir / f"export-{fmt}-{target}-{giant_shape}.{fmt}"
        started = time.perf_counter()
        if giant_shape == INDEPENDENT:
            write_independent_export(export, target)
        else:
            write_export(
                str(export),
                fmt=fmt,
                target_bytes=target,
                giant_conversation_bytes=giant_bytes,
                giant_shape=giant_shape,
                seed=1,
            )
        print(f"generated {label} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        os.sync()  # else the kernel writes the new export back while it is being measured
        bare, pipeline = best_of(args.repeat, export, out)
        if fmt == "json" and not giant_bytes:
            model_input = measure("sample", out, out)
            model_input["case"] = label
            samples.append(model_input)
        if label == f"{args.size} ZIP":
            materialized = measure("materialize", export, workdir)
            materialized["case"] = label
        export_mb = target / MiB
        rows.append(
            {
                "case": label,
                "stored_mb": round(export.stat().st_size / MiB, 1),
                "bare_mb_s": round(export_mb / bare["seconds"], 1),
                "pipeline_mb_s": round(export_mb / pipeline["seconds"], 1),
                "ratio": round(bare["seconds"] / pipeline["seconds"], 2),
                "bare_rss_mb": round(bare["peak_rss_mb"]),
                "pipeline_rss_mb": round(pipeline["peak_rss_mb"]),
                "rows": pipeline["rows"],
                "parts": pipeline["parts"],
            }
        )
        export.unlink()

    sharded = sharded_speedup(args.repeat, workdir, size, out)
    hostile = hostile_shapes(args.repeat, workdir, out)

    header = (
        f"{'case':24} {'stored MB':>9} {'bare MB/s':>9} {'ours MB/s':>9} {'ratio':>6} "
        f"{'bare RSS':>8} {'our RSS':>8} {'rows':>9}"
    )
    print(header)
    for r in rows:
        print(
            f"{r['case']:24} {r['stored_mb']:9.1f} {r['bare_mb_s']:9.1f} {r['pipeline_mb_s']:9.1f} "
            f"{r['ratio']:5.2f}x {r['bare_rss_mb']:7d}M {r['pipeline_rss_mb']:7d}M {r['rows']:9d}"
        )
    by_case = {r["case"]: r for r in rows}
    growth = (
        by_case[f"{args.size} JSON"]["pipeline_rss_mb"]
        / by_case[f"{args.small} JSON"]["pipeline_rss_mb"]
    )
    print(f"peak RSS {args.size} / {args.small}: {growth:.2f}x")
    print(
        f"materialize (import job, 4 assets, offline model) on the {materialized['case']}: "
        f"{materialized['seconds']:.1f} s, peak RSS {materialized['peak_rss_mb']:.0f} MB, "
        f"status {materialized['status']}"
    )
    for entry in samples:
        print(
            f"model input for the {entry['case']}: {entry['conversations_sampled']} of "
            f"{entry['conversations_total']} conversations, ~{entry['estimated_input_tokens']:,} "
            f"tokens, ~${entry['estimated_cost_usd']:.4f} with Haiku 4.5"
        )
    print(
        f"sharded {args.size} ZIP ({sharded['members']} members): 1 process "
        f"{sharded['one_mb_s']:.1f} MB/s, 2 worker processes {sharded['two_mb_s']:.1f} MB/s "
        f"({sharded['speedup']:.2f}x); peak RSS {sharded['one_rss_mb']} MB against "
        f"{sharded['two_rss_mb']} MB + {sharded['worker_rss_mb']} MB per worker"
    )
    print(f"{'hostile shape':34} {'bytes':>9} {'refused':>13} {'RSS':>6} {'normal':>7} {'time':>7}")
    for h in hostile:
        print(
            f"{h['shape']:34} {h['bytes']:9,} {h['refused'] or 'no (read)':>13} "
            f"{h['rss_mb']:5d}M {h['normal_rss_mb']:9d}M {h['time_ratio']:6.2f}x"
        )
    print(
        json.dumps(
            {
                "results": rows,
                "hostile": hostile,
                "sharded": sharded,
                "rss_growth": round(growth, 2),
                "materialize": materialized,
                "model_input": samples,
            }
        )
    )


if __name__ == "__main__":
    main()
