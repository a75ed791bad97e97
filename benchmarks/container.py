"""The memory step in a container of the budget's size: does it finish, and at what speed?

    python -m benchmarks.container [--size 1GB] [--limits 300,280] [--seed 1]

``benchmarks/memory.py`` reports the peak RSS of the ``memory_chunks`` step and of its process
tree. A sum of RSS counts a shared library's pages once for each process that maps them, and
counts pages the kernel can drop and read again (a library's code) as if they could not be
dropped. A container's memory limit (a memory cgroup) counts each page once, reclaims page
cache under pressure, and kills the container only when what cannot be reclaimed does not fit.
So this runs the step as a deployment's container would: ``memory_chunks`` alone, after its
upstream assets (as ``benchmarks.memory``'s Dagster step), in a fresh memory cgroup with no
swap, first with no limit, then limited to each of ``--limits`` MB. Before each run the
interpreter, the libraries and the data are evicted from the page cache, so the container reads
them and is charged for them, as one started from an image is.

Each run reports whether it finished, its seconds against the run without a limit, the major
page faults (a limit that only just fits shows as pages read again and again, and time), the
cgroup's peak usage and its OOM kills. This process imports nothing of the pipeline: pages it
mapped would stay charged to it, not to the container.

Needs a memory cgroup this process may create children in (root on cgroup v1, or a delegated
cgroup v2 subtree); elsewhere it says so and exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.memory import RSS_BUDGET_MB, aws_environment, run_helper
from benchmarks.table import print_aligned

MiB = 1024 * 1024


class MemoryCgroup:
    """A fresh memory cgroup below this process's own (v1 or v2), removed by :meth:`remove`."""

    def __init__(self, name: str) -> None:
        parent, self.v2 = _own_memory_cgroup()
        self.path = parent / name
        self.path.mkdir()

    def limit(self, megabytes: int) -> None:
        """No more than ``megabytes`` of memory, and no swap."""
        limit = str(megabytes * MiB)
        if self.v2:
            (self.path / "memory.max").write_text(limit)
            (self.path / "memory.swap.max").write_text("0")
            return
        (self.path / "memory.limit_in_bytes").write_text(limit)
        swap = self.path / "memory.memsw.limit_in_bytes"  # absent without swap accounting
        if swap.exists():
            swap.write_text(limit)

    def enter(self) -> None:
        """Move the calling process into this cgroup (its children follow)."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def kill_all(self) -> None:
        """SIGKILL every process in the cgroup."""
        for pid in (self.path / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)

    def figures(self) -> dict[str, Any]:
        """Peak usage (MB; 0 where the kernel does not keep it), OOM kills and major page
        faults since the cgroup was made."""
        stat = dict(line.split() for line in (self.path / "memory.stat").read_text().splitlines())
        if self.v2:
            events = dict(
                line.split() for line in (self.path / "memory.events").read_text().splitlines()
            )
            peak_file = self.path / "memory.peak"  # Linux 5.19 and later
            peak = int(peak_file.read_text()) if peak_file.exists() else 0
            oom_kills = int(events.get("oom_kill", 0))
        else:
            control = dict(
                line.split() for line in (self.path / "memory.oom_control").read_text().splitlines()
            )
            peak = int((self.path / "memory.max_usage_in_bytes").read_text())
            oom_kills = int(control.get("oom_kill", 0))
        return {
            "cgroup_peak_mb": peak / MiB,
            "oom_kills": oom_kills,
            "major_faults": int(stat.get("pgmajfault", 0)),
        }

    def remove(self) -> None:
        """Remove the cgroup (it is empty once its processes have exited)."""
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)


def _own_memory_cgroup() -> tuple[Path, bool]:
    """This process's memory cgroup's folder, and whether it is cgroup v2."""
    with open("/proc/self/cgroup") as cgroups:
        lines = [line.rstrip("\n").split(":", 2) for line in cgroups]
    for _, controllers, path in lines:
        if "memory" in controllers.split(","):
            return Path("/sys/fs/cgroup/memory" + path), False
    unified = [path for hierarchy, _, path in lines if hierarchy == "0"]
    root = Path("/sys/fs/cgroup")
    if unified and "memory" in (root / "cgroup.controllers").read_text().split():
        return root / unified[0].lstrip("/"), True
    raise OSError("no memory cgroup controller")


def evict_from_page_cache(paths: list[Path]) -> int:
    """Drop the page-cache pages of every file under ``paths`` that no process maps; the files
    seen. Written pages are written back first (``sync``): a dirty page cannot be dropped, and
    a file just copied, as the upstream state is before each run, is all dirty pages."""
    os.sync()
    seen = 0
    for top in paths:
        files = [top] if top.is_file() else (p for p in top.rglob("*") if p.is_file())
        for path in files:
            try:
                descriptor = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
                seen += 1
            finally:
                os.close(descriptor)
    return seen


def _runtime_paths() -> list[Path]:
    """The interpreter, its standard library and the virtualenv's packages."""
    paths = {
        Path(os.path.realpath(sys.executable)),
        Path(sys.prefix),
        Path(sysconfig.get_paths()["stdlib"]),
    }
    library = sysconfig.get_config_var("LDLIBRARY")
    libdir = sysconfig.get_config_var("LIBDIR")
    if library and libdir and (Path(libdir) / library).exists():
        paths.add(Path(os.path.realpath(Path(libdir) / library)))
    return sorted(paths)


def run_in_cgroup(
    folder: Path, limit_mb: int | None, env: dict[str, str], timeout: float | None = None
) -> dict[str, Any]:
    """``memory_chunks`` alone on ``folder`` (a copy of the upstream state), in a fresh memory
    cgroup limited to ``limit_mb`` (None: no limit), with cold caches; stopped, with every
    process in the cgroup, after ``timeout`` seconds (a limit far too small thrashes for ever)."""
    evict_from_page_cache([*_runtime_paths(), folder])
    cgroup = MemoryCgroup(f"soulprint-bench-{os.getpid()}-{limit_mb or 'none'}")
    timed_out = False
    try:
        if limit_mb is not None:
            cgroup.limit(limit_mb)
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.memory", "_step", "memory", str(folder)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            preexec_fn=cgroup.enter,
        )
        try:
            out, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            cgroup.kill_all()
            out, _ = process.communicate()
        seconds = time.perf_counter() - started
        found = cgroup.figures()
    finally:
        cgroup.remove()
    step: dict[str, Any] = {}
    if process.returncode == 0:
        step = json.loads(out.strip().splitlines()[-1])
    return {
        "limit_mb": limit_mb,
        "finished": process.returncode == 0 and bool(step.get("success")),
        "returncode": process.returncode,
        "timed_out": timed_out,
        "seconds": seconds,
        "chunks": step.get("chunks"),
        "process_peak_rss_mb": step.get("process_peak_rss_mb"),
        **found,
    }


def _outcome(row: dict[str, Any]) -> str:
    if row["finished"]:
        return "yes"
    return "no (stopped: too slow)" if row["timed_out"] else f"no (exit {row['returncode']})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="1GB", help="the export (default: %(default)s)")
    parser.add_argument(
        "--limits",
        default=f"{RSS_BUDGET_MB},280",
        help="container limits to run under, in MB (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", default=None, help="a folder for it all (default: a temp)")
    args = parser.parse_args(argv)
    limits = [int(limit) for limit in args.limits.split(",") if limit.strip()]

    try:  # a cgroup made and limited, or a v2 parent that does not hand out its memory controller
        probe = MemoryCgroup(f"soulprint-bench-{os.getpid()}-probe")
        try:
            probe.limit(RSS_BUDGET_MB)
        finally:
            probe.remove()
    except OSError as error:
        print(f"benchmarks.container: skipped, cannot make a memory cgroup here ({error})")
        return

    workdir = Path(tempfile.mkdtemp(prefix="soulprint-bench-container-", dir=args.workdir))
    env = aws_environment("http://127.0.0.1:9")  # the offline defaults: nothing is called
    rows: list[dict[str, Any]] = []
    try:
        export = workdir / "export.json"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "soulprint_pipeline.testing.synthetic",
                str(export),
                "--size",
                args.size,
                "--seed",
                str(args.seed),
            ],
            capture_output=True,
            check=True,
        )
        upstream = workdir / "upstream"
        run_helper("_step", "upstream", str(upstream), str(export), env=env)
        export.unlink()
        for limit in [None, *limits]:
            folder = workdir / "run"
            shutil.rmtree(folder, ignore_errors=True)
            shutil.copytree(upstream, folder)
            # a limited run gets ten times the unlimited one's time, then is stopped
            timeout = None if not rows else max(600.0, 10 * rows[0]["seconds"])
            row = run_in_cgroup(folder, limit, env, timeout)
            print(json.dumps(row), flush=True)
            rows.append(row)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    unlimited = rows[0]["seconds"]
    print()
    print_aligned(
        [
            "container limit",
            "finished",
            "seconds",
            "vs no limit",
            "major faults",
            "cgroup peak MB",
            "OOM kills",
            "step's peak RSS MB",
        ],
        [
            [
                f"{row['limit_mb']} MB" if row["limit_mb"] else "none",
                _outcome(row),
                f"{row['seconds']:.0f}",
                f"{row['seconds'] / unlimited:.2f}x",
                f"{row['major_faults']:,}",
                f"{row['cgroup_peak_mb']:.0f}",
                str(row["oom_kills"]),
                f"{row['process_peak_rss_mb']:.0f}" if row["process_peak_rss_mb"] else "-",
            ]
            for row in rows
        ],
    )
    print(json.dumps({"results": rows}))


if __name__ == "__main__":
    main()
