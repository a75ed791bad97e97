"""Many users through the real daemon and run queue: imports per hour, the per-user fixed
cost broken down, and a soulprint backfill batched and unbatched.

    python -m benchmarks.scale [--users 16] [--backfill-users N] [--latency 2.0] [--llm 16]
                               [--export-kb 200]

* **Imports**: ``--users`` generated exports of ``--export-kb`` KB in a fresh uploads folder;
  ``dagster-daemon`` on a fresh instance (the repository's ``dagster.yaml``: 4 runs at once,
  one per user) with the upload sensor every 5 s, the offline model and embedder; from the
  first run's creation to the last run's end: imports per hour. ``make bench`` runs it twice:
  small exports (the fixed cost), then ``--users 4 --export-kb 204800 --imports-only`` (200 MB
  exports: the work, parse, soulprint and memory).
* **Fixed cost per user**, from the import runs' event logs, mean per run: run launch
  (``RUN_STARTING`` to ``RUN_START``: a process, the code loaded), step launch (each step's
  ``STEP_WORKER_STARTING`` to ``STEP_START``: none with the in-process executor), resource
  init (``RESOURCE_INIT_STARTED`` to ``..._SUCCESS``), lake reads (``STEP_START`` to
  ``LOADED_INPUT``), the steps' own work, and mirror writes (the run's progress writes, times
  the cost of one ``user_profiles`` write measured on the same SQLite store).
* **Backfills**: an asset backfill of ``quick_pass_soulprint`` over ``--backfill-users`` users
  (default ``--users``; those beyond the imported ones are seeded straight into the lake,
  unmeasured), run by the daemon: with the offline model, then with the Bedrock stub answering
  after ``--latency`` s (``llm`` pool ``--llm``), in batches of ``SOULPRINT_BACKFILL_BATCH``;
  and, up to 64 users, with a run per user. Wall time, users per minute, runs, the most model
  calls the stub saw in flight, the peak RSS of the daemon's whole process tree, the load.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.memory import aws_environment
from benchmarks.table import print_aligned

ROOT = Path(__file__).parents[1]
BIN = Path(sys.executable).parent


def _serve_stub(latency: float) -> None:
    """The tests' Bedrock stub answering every soulprint call after ``latency`` s, on
    loopback until stdin closes; then prints the most calls it had in flight."""
    from soulprint_pipeline_tests.support.bedrock_stub import (
        BedrockStub,
        Reply,
        serve_until_stdin_closes,
        soulprint_json,
    )

    stub = BedrockStub(remember_requests=False)  # a backfill makes thousands of calls
    stub.script(then=Reply(soulprint_json("Nova")), latency=latency)
    serve_until_stdin_closes(stub)
    print(json.dumps({"max_in_flight": stub.max_in_flight}), flush=True)


class Stub:
    """The stub in its own process."""

    def __init__(self, latency: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.scale", "_serve_stub", str(latency)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = json.loads(self.process.stdout.readline())["url"]

    def stop(self) -> int:
        """Stops it; the most calls it had in flight."""
        out, _ = self.process.communicate(input="", timeout=30)
        return int(json.loads(out.strip().splitlines()[-1])["max_in_flight"])


class Daemon:
    """``dagster-daemon run`` on the code location, in its own process group."""

    def __init__(self, env: dict[str, str], cwd: Path, log: Path) -> None:
        self.log = log.open("ab")
        self.process = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-m", "soulprint_pipeline.definitions"],
            env=env,
            cwd=cwd,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        os.killpg(self.process.pid, 15)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
            self.process.wait()
        self.log.close()


def _wait(done: Any, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done after {timeout:.0f} s")
        time.sleep(1)


def _finished(instance: Any, runs: list[Any]) -> list[Any]:
    from dagster import DagsterRunStatus

    ended = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
    return [r for r in runs if instance.get_run_by_id(r.run_id).status in ended]


def _spans(instance: Any, run_id: str) -> dict[str, float]:
    """Seconds of each fixed cost in one run, from its event log."""
    from dagster import DagsterEventType as T

    events = [e for e in instance.all_logs(run_id) if e.dagster_event is not None]
    first: dict[tuple[str, str | None], float] = {}
    for event in events:
        first.setdefault((event.dagster_event.event_type_value, event.step_key), event.timestamp)

    def span(start: T, end: T, step: str | None = None) -> float:
        a, b = first.get((start.value, step)), first.get((end.value, step))
        return b - a if a is not None and b is not None else 0.0

    steps = {e.step_key for e in events if e.step_key}
    spans = defaultdict(float)
    spans["run launch"] = span(T.RUN_STARTING, T.RUN_START)
    # the in-process executor starts the run's resources once, outside any step
    spans["resource init"] = span(T.RESOURCE_INIT_STARTED, T.RESOURCE_INIT_SUCCESS)
    for step in steps:
        spans["step launch"] += span(T.STEP_WORKER_STARTING, T.STEP_START, step)
        spans["resource init"] += span(T.RESOURCE_INIT_STARTED, T.RESOURCE_INIT_SUCCESS, step)
        spans["lake reads"] += span(T.STEP_START, T.LOADED_INPUT, step)
        spans["step work"] += span(T.STEP_START, T.STEP_SUCCESS, step)
    spans["step work"] -= spans["lake reads"]
    spans["progress writes"] = sum(
        1 for e in events if e.dagster_event.event_type_value == T.ASSET_OBSERVATION.value
    )
    spans["whole run"] = span(T.RUN_STARTING, T.RUN_SUCCESS)
    return spans


def _mirror_write_seconds(profiles_url: str) -> float:
    """One progress write to ``user_profiles`` (mean of 50, on the import's own store)."""
    from soulprint_pipeline.mirror.registry import open_profile_store

    store = open_profile_store(profiles_url)
    try:
        started = time.perf_counter()
        for i in range(50):
            store.upsert("bench-mirror", {"import_status": "processing", "progress_percent": i})
        return (time.perf_counter() - started) / 50
    finally:
        store.close()


def _seed(instance: Any, ids: list[str]) -> None:
    """Imports ``ids`` (their uploads written already) straight into the lake, as the import's
    first two assets store them (copy, parse, a chain made current), and adds their partitions:
    a bench-only shortcut that makes a thousand users in minutes, not measured."""
    from soulprint_pipeline.definitions import defs
    from soulprint_pipeline.defs.io_manager import ExportCopy, LakeExport
    from soulprint_pipeline.defs.partitions import users as partitions

    io_manager, uploads = defs.resources["lake"], defs.resources["uploads"]
    lake = io_manager.lake()
    for user_id in ids:
        upload = uploads.latest_upload(user_id)
        version = lake.new_version("raw_export", user_id)
        manifest, _ = io_manager._copy_export(lake, version, ExportCopy(upload, {}))
        raw = lake.stage(version, manifest)
        version = lake.new_version("conversation_batches", user_id)
        manifest, _ = io_manager._write_parts(lake, version, LakeExport(raw))
        lake.promote_chain(lake.stage(version, manifest, {"raw_export": raw}))
        # imported: the upload sensor must not import it again during the backfills
        Path(upload.url).unlink()
    instance.add_dynamic_partitions(partitions.name, ids)


class PeakRss:
    """The most resident memory of a process and all its descendants at once (sampled every
    ``interval`` s, while the context is open), in MB."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.pid, self.interval, self.peak_mb = pid, interval, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import psutil

        root = psutil.Process(self.pid)
        while not self._stop.wait(self.interval):
            total = 0
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            for process in tree:
                with contextlib.suppress(psutil.NoSuchProcess):
                    total += process.memory_info().rss
            self.peak_mb = max(self.peak_mb, total / 2**20)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join()


def _backfill(instance: Any, users: list[str]) -> str:
    from dagster import AssetKey
    from dagster._core.execution.backfill import PartitionBackfill

    from soulprint_pipeline.definitions import defs

    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id=uuid.uuid4().hex[:8],
        asset_graph=defs.resolve_asset_graph(),
        partition_names=users,
        asset_selection=[AssetKey("quick_pass_soulprint")],
        backfill_timestamp=time.time(),
        tags={},
        dynamic_partitions_store=instance,
        all_partitions=False,
        title=None,
        description=None,
        run_config=None,
    )
    instance.add_backfill(backfill)
    return backfill.backfill_id


def _load() -> str:
    """The machine's load averages (1, 5, 15 min): other jobs share its cores."""
    return "/".join(f"{load:.1f}" for load in os.getloadavg())


def _import_phase(instance: Any, base: dict[str, str], workdir: Path, users: int) -> dict[str, Any]:
    """``users`` uploads picked up by the sensor and imported through the daemon: imports per
    hour and the mean run's fixed costs."""
    from soulprint_pipeline.defs.partitions import uploads_of_run

    log = workdir / "daemon.log"
    data = Path(base["SOULPRINT_DATA_DIR"])
    daemon = Daemon({**base, "SOULPRINT_MODEL": "offline"}, workdir, log)

    def covered(runs: list[Any]) -> int:  # users of the runs (a batch run has several)
        return sum(len(uploads_of_run(r.tags)) for r in runs)

    try:
        with PeakRss(daemon.process.pid) as rss:
            _wait(lambda: covered(instance.get_runs()) >= users, "the sensor's runs", 600)
            runs = instance.get_runs()
            _wait(lambda: len(_finished(instance, runs)) == len(runs), "the imports", 3600)
    finally:
        daemon.stop()
    runs = [instance.get_run_by_id(r.run_id) for r in runs]
    records = {r.dagster_run.run_id: r for r in instance.get_run_records()}
    start = min(records[r.run_id].create_timestamp.timestamp() for r in runs)
    end = max(records[r.run_id].end_time or 0 for r in runs)
    ok = covered([r for r in runs if r.is_success])
    spans = [_spans(instance, r.run_id) for r in runs if r.is_success]
    cost = {key: sum(s[key] for s in spans) / len(spans) for key in spans[0]}
    write = _mirror_write_seconds(f"sqlite:///{data / 'user_profiles.sqlite3'}")
    cost["mirror writes"] = cost.pop("progress writes") * write
    per_run = covered(runs) / len(runs)
    fixed = ("run launch", "step launch", "resource init", "lake reads", "mirror writes")
    return {
        "runs": len(runs),
        "users_per_run": per_run,
        "fixed_cost_per_user": sum(cost[key] for key in fixed) / per_run,
        "imports_ok": ok,
        "import_wall_s": end - start,
        "imports_per_hour": ok / (end - start) * 3600,
        "fixed_cost": cost,
        "mirror_write_ms": write * 1000,
        "import_peak_rss_mb": rss.peak_mb,
        "import_load": _load(),
    }


def _backfill_phase(
    instance: Any, env: dict[str, str], workdir: Path, ids: list[str], label: str
) -> dict[str, Any]:
    """An asset backfill of ``quick_pass_soulprint`` over ``ids``, run by the daemon."""
    from dagster._core.execution.backfill import BulkActionStatus

    before = {r.run_id for r in instance.get_runs()}
    daemon = Daemon(env, workdir, workdir / "daemon.log")
    try:
        with PeakRss(daemon.process.pid) as rss:
            started = time.time()
            backfill_id = _backfill(instance, ids)
            _wait(
                lambda: instance.get_backfill(backfill_id).status != BulkActionStatus.REQUESTED,
                f"the {label} backfill",
                3600,
            )
            wall = time.time() - started
    finally:
        daemon.stop()
    status = instance.get_backfill(backfill_id).status
    new_runs = [r for r in instance.get_runs() if r.run_id not in before]
    return {
        "status": status.value,
        "wall_s": wall,
        "users_per_min": len(ids) / wall * 60,
        "runs": len(new_runs),
        "peak_rss_mb": rss.peak_mb,
        "load": _load(),
    }


def measure(
    users: int,
    latency: float,
    llm: int,
    export_kb: int,
    backfill_users: int | None = None,
    keep: bool = False,
    import_batch: int | None = None,
    imports_only: bool = False,
) -> dict[str, Any]:
    """Every figure, on a fresh instance and data folder: ``users`` imports through the
    daemon, then soulprint backfills over ``backfill_users`` (those imported, and the rest
    seeded straight into the lake)."""
    from dagster import DagsterInstance

    from soulprint_pipeline.testing.synthetic import write_export

    backfill_users = max(users, backfill_users or users)
    workdir = Path(tempfile.mkdtemp(prefix="soulprint-scale-"))
    try:
        home, data = workdir / "home", workdir / "data"
        home.mkdir()
        shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
        ids = [f"user-{i:04d}" for i in range(backfill_users)]
        for i, user_id in enumerate(ids[:users]):
            path = data / "uploads" / user_id / "conversations.json"
            path.parent.mkdir(parents=True)
            write_export(str(path), fmt="json", target_bytes=export_kb * 1024, seed=i)
        stub = Stub(latency)
        base = {
            **aws_environment(stub.url),
            "ANTHROPIC_BEDROCK_BASE_URL": stub.url,
            "DAGSTER_HOME": str(home),
            "SOULPRINT_DATA_DIR": str(data),
            "SOULPRINT_SENSOR_INTERVAL_SECONDS": "5",
            "SOULPRINT_EMBEDDING_DIMENSION": "256",
            # new users per upload batch run at most (the sensor's default when unset)
            **({"SOULPRINT_IMPORT_BATCH": str(import_batch)} if import_batch else {}),
        }
        stub.stop()
        subprocess.run(
            [str(BIN / "dagster"), "instance", "concurrency", "set", "llm", str(llm)],
            env=base, check=True, capture_output=True,
        )  # fmt: skip
        os.environ["DAGSTER_HOME"] = str(home)
        os.environ["SOULPRINT_DATA_DIR"] = str(data)
        instance = DagsterInstance.get()
        # read now: the package's settings are read from the environment set above
        from soulprint_pipeline.defs.backfill import BACKFILL_BATCH

        result: dict[str, Any] = {"users": users, "backfill_users": backfill_users}
        if users:
            result.update(_import_phase(instance, base, workdir, users))
        result["backfills"] = {}
        if imports_only:
            return result

        seeded = ids[users:]
        if seeded:
            started = time.time()
            for i, user_id in enumerate(seeded, start=users):
                path = data / "uploads" / user_id / "conversations.json"
                path.parent.mkdir(parents=True)
                write_export(str(path), fmt="json", target_bytes=export_kb * 1024, seed=i)
            _seed(instance, seeded)
            result["seed_s"] = time.time() - started

        runs = [
            ("offline", "offline", str(BACKFILL_BATCH)),
            ("stub", "bedrock", str(BACKFILL_BATCH)),
        ]
        if backfill_users <= 64:  # a run per user: minutes for a few dozen, hours for 1,000
            runs.append(("stub, a run per user", "bedrock", "1"))
        for label, model, batch in runs:
            stub = Stub(latency)
            env = {
                **base,
                **aws_environment(stub.url),
                "ANTHROPIC_BEDROCK_BASE_URL": stub.url,
                "SOULPRINT_MODEL": model,
                "SOULPRINT_BACKFILL_BATCH": batch,
            }
            figures = _backfill_phase(instance, env, workdir, ids, label)
            figures["max_in_flight"] = stub.stop()
            result["backfills"][label] = {"batch": batch, **figures}
        return result
    finally:
        if keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_serve_stub"]:
        _serve_stub(float(argv[1]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=16, help="about 8 minutes on 2 cores")
    parser.add_argument("--latency", type=float, default=2.0, help="seconds per model call")
    parser.add_argument("--llm", type=int, default=16, help="the llm pool's limit")
    parser.add_argument("--export-kb", type=int, default=200)
    parser.add_argument(
        "--backfill-users",
        type=int,
        help="users in the soulprint backfills (default: --users); those beyond --users are "
        "seeded straight into the lake, unmeasured (1,000: about 15 minutes in all)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the instance and data")
    parser.add_argument(
        "--import-batch",
        type=int,
        help="SOULPRINT_IMPORT_BATCH: new users per upload batch run at most (1: a run each)",
    )
    parser.add_argument("--imports-only", action="store_true", help="no soulprint backfills")
    args = parser.parse_args(argv)
    r = measure(
        args.users,
        args.latency,
        args.llm,
        args.export_kb,
        args.backfill_users,
        args.keep,
        args.import_batch,
        args.imports_only,
    )
    if r["users"]:
        print(
            f"\nImports through the daemon: {r['imports_ok']}/{r['users']} exports of "
            f"{args.export_kb} KB in {r['import_wall_s']:.0f} s = {r['imports_per_hour']:.0f} "
            "imports/hour (the repository's dagster.yaml: 4 runs at once; peak RSS of the "
            f"deployment {r['import_peak_rss_mb']:.0f} MB; load {r['import_load']})\n"
        )
        print_aligned(
            ["per import run (mean)", "seconds"],
            [[name, f"{seconds:.2f}"] for name, seconds in r["fixed_cost"].items()],
        )
        print(f"(mirror writes: {r['mirror_write_ms']:.1f} ms per write)")
        print(
            f"{r['runs']} runs, {r['users_per_run']:.1f} users a run: fixed cost per user "
            f"(run launch, step launch, resource init, lake reads, mirror writes, over the "
            f"run's users) {r['fixed_cost_per_user']:.2f} s\n"
        )
    if not r["backfills"]:
        return
    if "seed_s" in r:
        print(f"({r['backfill_users'] - r['users']} users seeded in {r['seed_s']:.0f} s)")
    print(
        f"Soulprint backfills over {r['backfill_users']} users, stub at {args.latency:g} s a "
        f"call, llm pool {args.llm}:"
    )
    rows = [
        [label, b["batch"], b["status"], f"{b['wall_s']:.0f}", f"{b['users_per_min']:.1f}",
         str(b["runs"]), str(b["max_in_flight"]), f"{b['peak_rss_mb']:.0f}", b["load"]]
        for label, b in r["backfills"].items()
    ]  # fmt: skip
    print_aligned(
        ["model", "batch", "status", "wall s", "users/min", "runs", "calls in flight",
         "peak RSS MB", "load 1/5/15"],
        rows,
    )  # fmt: skip


if __name__ == "__main__":
    main()
