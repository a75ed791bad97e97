"""The memory step (``memory_chunks``) on a generated export: chunks/s, peak RSS, cost.

    python -m benchmarks.memory [--size 1GB] [--titan-max-tokens 2000000] [--uncapped-size 100MB]
                                [--no-dagster-step]

A JSON export of ``--size`` is generated at run time and parsed to Parquet parts (the
``soulprint-pipeline parse`` command); then each measurement runs in a fresh process, so its
peak RSS (``VmHWM``) is its own, on the parts read as the asset reads them (``StoredParts``):

* **chunk only** (the baseline): ``chunking.plan`` and ``chunking.chunk_rows``, nothing embedded
  or stored; one per export and cap, so every step is compared with the same chunks cut alone;
* **offline**: ``build_memory`` with the offline embedder (1024 dimensions, the default) into a
  LanceDB folder, with the asset's default cap (``DEFAULT_MAX_TOKENS``), and uncapped on the
  ``--uncapped-size`` export (0: skip);
* **titan**: ``build_memory`` with Titan V2 through boto3 against the tests' Bedrock stub, run
  in a process of its own on loopback, answering each call after ``--latency`` (50 ms), with
  the embedder's default concurrency (8), into LanceDB. Titan embeds one text a call, so this
  is capped at ``--titan-max-tokens`` (a subset of the export, said in the output);
* **Dagster step** (unless ``--no-dagster-step``): the import job's three upstream assets
  materialized once on a Dagster instance of its own, then ``memory_chunks`` alone in a fresh
  process, as a deployment's step process runs it. Its figure is the peak of the whole process
  tree (the step and whatever it starts: Dagster's compute-log capture, any helper), sampled
  every 10 ms: the stricter figure, since it counts a shared library's pages once a process and
  reclaimable code as resident; the anonymous share and the PSS are printed beside it, and
  ``benchmarks/container.py`` runs the same step under a container's memory limit.

No AWS: the measurements get fake credentials, ``AWS_REGION=us-east-1``, the stub's endpoint
and AWS config files that do not exist. Cost is Titan V2's price (``TITAN_USD_PER_MILLION_
TOKENS``) on the chunks' estimated tokens, on Titan's count where Titan ran, and on all the
export's text (``text_tokens``, before the cap). Everything is removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.table import print_aligned

MiB = 1024 * 1024
USER = "bench-user"
#: The RSS a user's memory materialization must stay under (the issue's).
RSS_BUDGET_MB = 300


# --- in the measuring process -------------------------------------------------------------


def _status_mb(field: str) -> float:
    """A memory figure of this process from ``/proc/self/status`` (``VmHWM``, ``VmRSS``)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _parts(parts_dir: str) -> Any:
    """The Parquet parts in ``parts_dir``, read as the memory asset reads them."""
    from soulprint_pipeline.lake.store import Lake, StoredParts

    paths = [str(path) for path in sorted(Path(parts_dir).glob("part-*.parquet"))]
    return StoredParts(Lake(parts_dir), {"parts": paths, "version": "bench"})


def measure_chunks(parts_dir: str, max_tokens: int | None) -> dict[str, Any]:
    """The baseline: plan and cut the chunks, drop them (no embedding, no store)."""
    from soulprint_pipeline.memory.build import _PLAN_COLUMNS
    from soulprint_pipeline.memory.chunking import COLUMNS, ChunkSettings, chunk_rows, plan
    from soulprint_pipeline.memory.process import arrow_without_pandas

    parts = _parts(parts_dir)
    arrow_without_pandas()  # as build_memory does
    settings = ChunkSettings(max_tokens=max_tokens)
    imported_mb = _status_mb("VmRSS")
    started = time.perf_counter()
    sized = plan(parts.batches(_PLAN_COLUMNS), settings)
    chunks = tokens = 0
    for chunk in chunk_rows(parts.batches(COLUMNS), settings, sized.kept):
        chunks += 1
        tokens += chunk.tokens
    return {
        "chunks": chunks,
        "estimated_tokens": tokens,
        "titan_tokens": None,
        "text_tokens": sized.tokens,
        "conversations_total": sized.conversations,
        "capped": sized.capped,
        "seconds": time.perf_counter() - started,
        "imported_rss_mb": imported_mb,
    }


def measure_build(
    parts_dir: str, max_tokens: int | None, backend: str, store_dir: str, dimension: int
) -> dict[str, Any]:
    """``build_memory`` with the ``backend`` embedder of ``dimension`` into a LanceDB store at
    ``store_dir``. Without Dagster: the step's library, as the asset calls it."""
    from soulprint_pipeline.memory.build import MemorySettings, build_memory
    from soulprint_pipeline.memory.chunking import ChunkSettings
    from soulprint_pipeline.memory.embedders import EmbedderSettings, open_embedder
    from soulprint_pipeline.memory.store import open_memory_store

    parts = _parts(parts_dir)
    settings = MemorySettings(chunking=ChunkSettings(max_tokens=max_tokens))
    before_mb = _status_mb("VmRSS")
    # what the step imports on its own (LanceDB, boto3), apart, since it is much of the peak;
    # the store imports LanceDB as it opens, after limiting malloc arenas (see lance.py)
    from soulprint_pipeline.memory.process import arrow_without_pandas, tune_malloc

    tune_malloc()
    arrow_without_pandas()
    import lancedb  # noqa: F401

    if backend == "bedrock":
        import soulprint_pipeline.memory.titan  # noqa: F401
    imported_mb = _status_mb("VmRSS")
    first_stage: dict[str, float] = {}

    def on_progress(fraction: float) -> None:
        # the plan pass and one staged batch: what the first pass and a table.add cost
        if not first_stage:
            first_stage.update(hwm_mb=_status_mb("VmHWM"), rss_mb=_status_mb("VmRSS"))

    embedder = open_embedder(EmbedderSettings(backend=backend, dimension=dimension))
    try:
        with open_memory_store(store_dir, dimension) as store:
            opened_mb = _status_mb("VmRSS")
            publish = store.publish

            def publish_measured(user_id: str, build_key: str) -> int:
                # the peak of chunking and staging, apart from publishing's
                first_stage["before_publish_hwm_mb"] = _status_mb("VmHWM")
                return publish(user_id, build_key)

            store.publish = publish_measured  # type: ignore[method-assign]
            built = build_memory(USER, parts, embedder, store, settings, on_progress)
    finally:
        embedder.close()
    metadata = built.metadata()
    return {
        "chunks": metadata["chunks"],
        "duplicates": metadata["duplicate_chunks"],
        "estimated_tokens": metadata["estimated_tokens"],
        "titan_tokens": metadata["tokens_embedded"] if backend == "bedrock" else None,
        "text_tokens": metadata["text_tokens"],
        "conversations_total": metadata["conversations_total"],
        "conversations_covered": metadata["conversations_covered"],
        "capped": metadata["capped"],
        "calls": metadata["embedding_calls"],
        "retries": metadata["embedding_retries"],
        "cost_usd": metadata["estimated_cost_usd"],
        "seconds": built.seconds,
        "before_imports_rss_mb": before_mb,
        "imported_rss_mb": imported_mb,
        "opened_rss_mb": opened_mb,
        "first_stage_hwm_mb": first_stage.get("hwm_mb"),
        "before_publish_hwm_mb": first_stage.get("before_publish_hwm_mb"),
        "store_mb": sum(f.stat().st_size for f in Path(store_dir).rglob("*") if f.is_file()) / MiB,
    }


def _measure(args: list[str]) -> dict[str, Any]:
    """``_measure chunk|offline|bedrock PARTS_DIR MAX_TOKENS|none [STORE_DIR DIMENSION]``."""
    mode, parts_dir, cap = args[0], args[1], args[2]
    max_tokens = None if cap == "none" else int(cap)
    if mode == "chunk":
        result = measure_chunks(parts_dir, max_tokens)
    else:
        result = measure_build(parts_dir, max_tokens, mode, args[3], int(args[4]))
    result["peak_rss_mb"] = _status_mb("VmHWM")
    return result


def _serve_stub(args: list[str]) -> None:
    """``_serve_stub LATENCY``: the tests' Bedrock stub on loopback until stdin closes."""
    from soulprint_pipeline_tests.support.bedrock_stub import (
        BedrockStub,
        serve_until_stdin_closes,
    )

    stub = BedrockStub(remember_requests=False)  # the bench makes tens of thousands
    stub.script_titan(latency=float(args[0]))
    serve_until_stdin_closes(stub)
    print(json.dumps({"max_in_flight": stub.titan_max_in_flight}), flush=True)


def _step(args: list[str]) -> dict[str, Any]:
    """``_step upstream|memory WORKDIR [EXPORT]``: the import job in this process, on an instance
    and data folder under WORKDIR (the embedded defaults, the offline embedder): ``upstream``
    materializes the three assets before the memory for ``EXPORT``; ``memory`` then
    materializes ``memory_chunks`` alone, as a step process of a deployment does."""
    mode, workdir = args[0], args[1]
    for name in [n for n in os.environ if n.startswith("SOULPRINT_")]:
        del os.environ[name]  # the embedded defaults only (never a real bucket or model)
    os.environ["SOULPRINT_DATA_DIR"] = f"{workdir}/data"
    os.environ["DAGSTER_HOME"] = f"{workdir}/home"
    os.makedirs(f"{workdir}/home", exist_ok=True)
    Path(f"{workdir}/home/dagster.yaml").touch()
    import dagster as dg

    from soulprint_pipeline.definitions import defs
    from soulprint_pipeline.defs.partitions import UPLOAD_TAG, users

    imported_mb = _status_mb("VmRSS")
    job = defs.resolve_job_def("import_user")
    started = time.perf_counter()
    with dg.DagsterInstance.get() as instance:
        if mode == "upstream":
            instance.add_dynamic_partitions(users.name, [USER])
            keys = ["raw_export", "conversation_batches", "quick_pass_soulprint"]
            tags = {UPLOAD_TAG: args[2]}
        else:
            keys, tags = ["memory_chunks"], {}
        result = job.execute_in_process(
            instance=instance,
            partition_key=USER,
            tags=tags,
            asset_selection=[dg.AssetKey(key) for key in keys],
            raise_on_error=False,
        )
    metadata: dict[str, Any] = {}
    for materialization in result.asset_materializations_for_node("memory_chunks"):
        metadata = {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
    return {
        "success": result.success,
        "seconds": time.perf_counter() - started,
        "imported_rss_mb": imported_mb,
        "process_peak_rss_mb": _status_mb("VmHWM"),
        **{k: metadata.get(k) for k in ("chunks", "estimated_tokens", "text_tokens", "capped")},
        "conversations_total": metadata.get("conversations_total"),
    }


HELPERS = {"_measure": _measure, "_serve_stub": _serve_stub, "_step": _step}


# --- the driver ---------------------------------------------------------------------------


def aws_environment(endpoint: str) -> dict[str, str]:
    """The environment of a measurement: AWS pointed at the stub, nothing of this machine's."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "SOULPRINT_"))
    }
    env.update(
        AWS_ACCESS_KEY_ID="AKIABENCHBENCHBENCH",
        AWS_SECRET_ACCESS_KEY="bench-secret",
        AWS_REGION="us-east-1",
        AWS_ENDPOINT_URL_BEDROCK_RUNTIME=endpoint,
        AWS_CONFIG_FILE="/nonexistent/aws-config",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent/aws-credentials",
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline") as cmdline:
            return cmdline.read().replace("\0", " ").strip()
    except OSError:
        return ""


def _tree(pid: int, parent: str = "") -> list[int]:
    """``pid`` and its descendants, less any child that is its parent forked and not yet
    exec'd (Python's ``subprocess`` uses ``vfork``: such a child shares its parent's memory,
    and its RSS would count that memory twice)."""
    command = _cmdline(pid)
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            found = [int(child) for child in children.read().split()]
    except OSError:
        return []
    below = [q for child in found for q in _tree(child, command)]
    return below if command == parent else [pid, *below]


def _kb(path: str, field: str) -> int:
    try:
        with open(path) as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_tree_sampled(*args: str, env: dict[str, str]) -> dict[str, Any]:
    """:func:`run_helper`, with the peak memory of its whole process tree (the helper and every
    process it starts), sampled every 10 ms: the sum of
    their RSS, of their anonymous RSS, and of their PSS (shared pages split between the
    processes mapping them; sampled every 10th time, as it costs more to read)."""
    command = [sys.executable, "-m", "benchmarks.memory", *args]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    peaks = {"rss": 0, "anon": 0, "pss": 0, "processes": 0}
    commands: dict[int, str] = {}

    def sample() -> None:
        tick = 0
        while process.poll() is None:
            pids = _tree(process.pid)
            for pid in pids:
                if pid not in commands:
                    commands[pid] = _cmdline(pid)[:80] or "?"
            rss = sum(_kb(f"/proc/{pid}/status", "VmRSS") for pid in pids)
            anon = sum(_kb(f"/proc/{pid}/status", "RssAnon") for pid in pids)
            peaks.update(rss=max(peaks["rss"], rss), anon=max(peaks["anon"], anon))
            peaks["processes"] = max(peaks["processes"], len(pids))
            if tick % 10 == 0:
                pss = sum(_kb(f"/proc/{pid}/smaps_rollup", "Pss") for pid in pids)
                peaks["pss"] = max(peaks["pss"], pss)
            tick += 1
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = process.communicate()
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result.update(
        tree_peak_rss_mb=max(peaks["rss"] / 1024, result.get("process_peak_rss_mb", 0)),
        tree_peak_anon_mb=peaks["anon"] / 1024,
        tree_peak_pss_mb=peaks["pss"] / 1024,
        tree_processes=peaks["processes"],
        tree_commands=sorted(set(commands.values())),
    )
    return result


def run_helper(*args: str, env: dict[str, str]) -> dict[str, Any]:
    """One helper in a fresh interpreter; its last line of JSON."""
    command = [sys.executable, "-m", "benchmarks.memory", *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def prepare(workdir: Path, size: int, seed: int, keep_export: bool = False) -> Path:
    """A generated JSON export of ``size`` bytes, parsed to parts; the parts' folder (the
    export is removed, unless ``keep_export``: ``export-SIZE.json`` beside the parts)."""
    from soulprint_pipeline.testing.synthetic import write_export

    export = workdir / f"export-{size}.json"
    parts = workdir / f"parts-{size}"
    started = time.perf_counter()
    write_export(str(export), fmt="json", target_bytes=size, seed=seed)
    generated = time.perf_counter() - started
    cli = Path(sys.executable).parent / "soulprint-pipeline"
    parsed = subprocess.run(
        [str(cli), "parse", str(export), "--out", str(parts)],
        capture_output=True,
        text=True,
        check=True,
    )
    summary = json.loads(parsed.stdout.strip().splitlines()[-1])
    if not keep_export:
        export.unlink()
    print(
        f"generated a {size / MiB:,.0f} MB export in {generated:.0f} s, parsed in "
        f"{summary['seconds']:.0f} s: {summary['conversations']:,} conversations, "
        f"{summary['rows']:,} rows, {summary['parts']} parts "
        f"({summary['parquet_bytes'] / MiB:,.0f} MB)",
        file=sys.stderr,
        flush=True,
    )
    return parts


def measure_dagster_step(workdir: Path, export: Path, env: dict[str, str]) -> dict[str, Any]:
    """The memory as a deployment runs it: the upstream assets materialized once for
    ``export`` (which is then removed), then ``memory_chunks`` alone in a fresh process, its
    whole process tree sampled (:func:`run_tree_sampled`)."""
    folder = workdir / "dagster"
    run_helper("_step", "upstream", str(folder), str(export), env=env)
    export.unlink()
    try:
        found = run_tree_sampled("_step", "memory", str(folder), env=env)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if not found["success"]:
        raise RuntimeError("the memory_chunks step failed")
    return {**found, "peak_rss_mb": found["tree_peak_rss_mb"], "titan_tokens": None}


def _cap_text(cap: int | None) -> str:
    return "none" if cap is None else f"{cap / 1e6:g}M"


def _cells(row: dict[str, Any], base: dict[str, Any], price: float) -> list[str]:
    rate = row["chunks"] / row["seconds"] if row["seconds"] else 0.0
    base_rate = base["chunks"] / base["seconds"] if base["seconds"] else 0.0
    titan = row.get("titan_tokens")
    billed = titan if titan is not None else row["estimated_tokens"]
    over = row["peak_rss_mb"] > RSS_BUDGET_MB and row["step"] != "chunk only"
    return [
        row["case"],
        row["step"],
        _cap_text(row["cap"]),
        f"{row['chunks']:,}",
        f"{rate:,.0f}",
        f"{rate / base_rate:.3f}x" if base_rate else "",
        f"{row['estimated_tokens']:,}",
        f"{titan:,}" if titan is not None else "-",
        f"${billed * price / 1e6:.4f}",
        f"${row['text_tokens'] * price / 1e6:.4f}",
        f"{row['peak_rss_mb']:.0f}" + (" OVER" if over else ""),
        f"{row['peak_rss_mb'] / base['peak_rss_mb']:.2f}x",
    ]


def print_table(rows: list[list[str]]) -> None:
    """``rows`` under the table's header, in aligned columns."""
    header = [
        "export",
        "step",
        "cap",
        "chunks",
        "chunks/s",
        "vs base",
        "est. tokens",
        "Titan tokens",
        "cost",
        "all text",
        "peak RSS MB",
        "vs base",
    ]
    print_aligned(header, rows)


def main(argv: list[str] | None = None) -> None:
    from soulprint_pipeline.defs.memory import DEFAULT_DIMENSION, DEFAULT_MAX_TOKENS
    from soulprint_pipeline.memory.embedders import TITAN_USD_PER_MILLION_TOKENS
    from soulprint_pipeline.testing.synthetic import parse_size

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="1GB", help="the export (default: %(default)s)")
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=DEFAULT_MAX_TOKENS,
        help="the cap of the offline run (default: the asset's, %(default)s)",
    )
    parser.add_argument(
        "--titan-max-tokens",
        type=int,
        default=2_000_000,
        help="the cap of the Titan run, one call a chunk (default: %(default)s; 0: skip)",
    )
    parser.add_argument(
        "--uncapped-size",
        default="100MB",
        help="an export embedded offline without a cap (default: %(default)s; 0: skip)",
    )
    parser.add_argument(
        "--no-dagster-step",
        dest="dagster_step",
        action="store_false",
        help="skip the Dagster step (memory_chunks alone, after its upstream assets)",
    )
    parser.add_argument("--latency", type=float, default=0.05, help="seconds a Titan call")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", default=None, help="a folder for it all (default: a temp)")
    args = parser.parse_args(argv)

    size, uncapped_size = parse_size(args.size), parse_size(args.uncapped_size)
    price = TITAN_USD_PER_MILLION_TOKENS
    workdir = Path(tempfile.mkdtemp(prefix="soulprint-bench-memory-", dir=args.workdir))
    stub: subprocess.Popen[str] | None = None
    results: list[dict[str, Any]] = []
    try:
        stub = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.memory", "_serve_stub", str(args.latency)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert stub.stdout is not None
        endpoint = json.loads(stub.stdout.readline())["url"]
        env = aws_environment(endpoint)
        print(f"Bedrock stub at {endpoint}, {args.latency * 1000:.0f} ms a call", file=sys.stderr)

        exports = {args.size: prepare(workdir, size, args.seed, keep_export=args.dagster_step)}
        steps: list[tuple[str, str, int | None]] = [(args.size, "offline", args.max_tokens)]
        if args.dagster_step:
            steps.append((args.size, "dagster", DEFAULT_MAX_TOKENS))
        if args.titan_max_tokens:
            steps.append((args.size, "bedrock", args.titan_max_tokens))
        if uncapped_size:
            if uncapped_size != size:
                exports[args.uncapped_size] = prepare(workdir, uncapped_size, args.seed)
            steps.append((args.uncapped_size, "offline", None))

        baselines: dict[tuple[str, int | None], dict[str, Any]] = {}
        for case, backend, cap in steps:
            parts = str(exports[case])
            key = (case, cap)
            if key not in baselines:
                base = run_helper("_measure", "chunk", parts, str(cap or "none"), env=env)
                base.update(case=case, step="chunk only", cap=cap)
                print(f"{case} chunk only, cap {_cap_text(cap)}: {json.dumps(base)}", flush=True)
                baselines[key] = base
                results.append(base)
            if backend == "dagster":
                built = measure_dagster_step(workdir, workdir / f"export-{size}.json", env)
                built.update(case=case, step="Dagster step, offline 1024", cap=cap)
                print(f"{case} Dagster step: {json.dumps(built)}", flush=True)
                results.append(built)
                continue
            store = workdir / "lancedb"
            step = "offline 1024" if backend == "offline" else "Titan V2 1024 (stub)"
            built = run_helper(
                "_measure",
                backend,
                parts,
                str(cap or "none"),
                str(store),
                str(DEFAULT_DIMENSION),
                env=env,
            )
            built.update(case=case, step=step, cap=cap)
            print(f"{case} {step}, cap {_cap_text(cap)}: {json.dumps(built)}", flush=True)
            results.append(built)
            shutil.rmtree(store, ignore_errors=True)
    finally:
        in_flight = "?"
        if stub is not None:
            try:  # communicate() closes the stub's stdin, which stops it
                rest, _ = stub.communicate(timeout=30)
                in_flight = json.loads(rest.strip().splitlines()[-1])["max_in_flight"]
            except (subprocess.TimeoutExpired, ValueError, IndexError, KeyError):
                stub.kill()
                stub.wait()
        shutil.rmtree(workdir, ignore_errors=True)

    print()
    print_table([_cells(row, baselines[(row["case"], row["cap"])], price) for row in results])
    print(
        f"\ncost: Titan V2 at ${price} per million input tokens, on Titan's count where it ran, "
        "else on the chunks' estimate (UTF-8 bytes / 3.5); 'all text' is every message of "
        "the export before the cap (text_tokens), without the chunks' overlap and titles."
    )
    if args.titan_max_tokens:
        print(
            f"Titan V2 ran on a subset: capped at {args.titan_max_tokens:,} tokens (one call "
            f"a chunk, {args.latency * 1000:.0f} ms each, at most {in_flight} in flight seen "
            "by the stub), not the asset's "
            f"{DEFAULT_MAX_TOKENS:,}."
        )
    for row in results:
        if row["step"].startswith("Dagster"):
            verdict = "under" if row["peak_rss_mb"] <= RSS_BUDGET_MB else "OVER"
            print(
                f"{row['case']} {row['step']}: peak RSS of the step's process tree "
                f"{row['peak_rss_mb']:.0f} MB, {verdict} the {RSS_BUDGET_MB} MB budget (the "
                f"step's process alone {row['process_peak_rss_mb']:.0f} MB, "
                f"{row['imported_rss_mb']:.0f} MB once the code location is imported; the "
                f"tree's anonymous RSS {row['tree_peak_anon_mb']:.0f} MB, PSS "
                f"{row['tree_peak_pss_mb']:.0f} MB; {row['tree_processes']} processes at most: "
                f"{'; '.join(row['tree_commands'])}). A summed RSS counts shared pages once a "
                "process; whether the step fits a container of the budget is "
                "benchmarks.container's measurement"
            )
        elif row["step"] != "chunk only":
            verdict = "under" if row["peak_rss_mb"] <= RSS_BUDGET_MB else "OVER"
            print(
                f"{row['case']} {row['step']}, cap {_cap_text(row['cap'])}: peak RSS "
                f"{row['peak_rss_mb']:.0f} MB, {verdict} the {RSS_BUDGET_MB} MB budget (RSS "
                f"{row['before_imports_rss_mb']:.0f} MB before LanceDB/boto3 are imported, "
                f"{row['imported_rss_mb']:.0f} MB after, store and embedder open "
                f"{row['opened_rss_mb']:.0f} MB, peak at the first staged batch "
                f"{row['first_stage_hwm_mb'] or 0:.0f} MB, before publishing "
                f"{row['before_publish_hwm_mb'] or 0:.0f} MB; LanceDB folder "
                f"{row['store_mb']:.0f} MB)"
            )
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in HELPERS:
        output = HELPERS[sys.argv[1]](sys.argv[2:])
        if output is not None:
            print(json.dumps(output))
    else:
        main()
