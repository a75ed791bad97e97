"""The ``soulprint-pipeline`` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from soulprint_pipeline.errors import UserSafeError
from soulprint_pipeline.export.containers import MiB, ReadLimits
from soulprint_pipeline.export.reader import ExportReader
from soulprint_pipeline.export.rows import DICTIONARY_COLUMNS
from soulprint_pipeline.lake.parquet_parts import PartWriter

DESCRIPTION = "Stream a ChatGPT or Claude export into a soulprint and a memory, with Dagster."
EXAMPLES = """examples:
  soulprint-pipeline parse conversations.json --out parts/
  soulprint-pipeline import export.zip --user 4f1c2b9e-user
  soulprint-pipeline recall --user 4f1c2b9e-user "where did I go on holiday?"

Settings come from environment variables (SOULPRINT_*, see the README); bad input or a bad
setting exits 2 with one line, and SOULPRINT_DEBUG=1 shows the traceback of a defect."""


def _limits(args: argparse.Namespace) -> ReadLimits:
    return ReadLimits(
        max_uncompressed_bytes=int(args.max_uncompressed_gb * 1024 * MiB),
        max_compression_ratio=args.max_compression_ratio,
        max_node_bytes=int(args.max_node_mb * MiB),
    )


def parse_command(args: argparse.Namespace) -> int:
    """Parse one export into Parquet parts and print a one-line JSON summary."""
    started = time.perf_counter()
    reader = ExportReader(args.export_url, limits=_limits(args), workers=args.workers)
    with (
        _progress_bar("parsing") as bar,
        PartWriter(args.out, dictionary_columns=DICTIONARY_COLUMNS) as writer,
    ):
        reader.on_progress = bar
        writer.write_all(reader.batches())
    seconds = time.perf_counter() - started
    summary = reader.stats.as_dict()
    summary.update(
        parts=len(writer.paths),
        parquet_bytes=writer.bytes_written,
        seconds=round(seconds, 3),
        mb_per_s=round(reader.stats.bytes_read / MiB / seconds, 1) if seconds else None,
    )
    print(json.dumps(summary))
    return 0


@contextmanager
def _progress_bar(label: str) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar of bytes on stderr when it is a terminal (nothing otherwise), fed with
    (bytes done, bytes in all); stdout keeps only the command's result."""
    if not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    with tqdm(desc=label, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr) as bar:

        def update(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        yield update


def import_command(args: argparse.Namespace) -> int:
    """Import one export for one user through the real asset graph, on a persistent instance."""
    import logging
    from pathlib import Path

    import dagster as dg

    from soulprint_pipeline.users import validate_user_id

    user_id = validate_user_id(args.user)
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path(".dagster_home").absolute())))
    if not (home / "dagster.yaml").exists():
        # a new instance: without a config file Dagster warns and prints its telemetry banner
        home.mkdir(parents=True, exist_ok=True)
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    from soulprint_pipeline.definitions import defs
    from soulprint_pipeline.defs.partitions import IMPORT_COMMAND, RUNNER_TAG, UPLOAD_TAG, users
    from soulprint_pipeline.mirror.progress import QUEUED, ProgressTracker, is_quiet
    from soulprint_pipeline.mirror.store import ProfileStoreError

    progress_log = logging.getLogger("soulprint_pipeline.mirror.progress")
    progress_log.setLevel(logging.INFO)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    progress_log.addHandler(handler)

    export_url = (
        args.export_url if "://" in args.export_url else str(Path(args.export_url).absolute())
    )
    with (
        dg.DagsterInstance.get() as instance,
        # outside a run, EnvVar settings (the mirror's URL) are resolved by building the resource
        dg.build_resources({"profiles": defs.resources["profiles"]}) as resources,
        _claim(instance, home, user_id),
    ):
        store = resources.profiles.store
        if not instance.has_dynamic_partition(users.name, user_id):
            instance.add_dynamic_partitions(users.name, [user_id])
        # a complete user stays complete in the app until a new soulprint is saved
        ProgressTracker(user_id, store, quiet=is_quiet(store, user_id)).start(QUEUED)
        result = defs.resolve_job_def("import_user").execute_in_process(
            instance=instance,
            partition_key=user_id,
            tags={UPLOAD_TAG: export_url, RUNNER_TAG: IMPORT_COMMAND},
            raise_on_error=False,
            # the run's own log (with stack traces) is in the instance; here, progress lines
            run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
        )
        try:
            row = store.get(user_id) or {}
        except ProfileStoreError as error:  # down since: the lake holds the result
            row, unreachable = None, error
        else:
            unreachable = None
    outcome = "succeeded" if result.success else "failed"
    print(f"\nrun {result.run_id} in {home}: {outcome}")
    if row is not None:
        shown = _printable(row)
        markdown = shown.pop("soulprint_text", None)
        print(json.dumps(shown, indent=2, default=str, ensure_ascii=False))
        if markdown:
            print("\n" + markdown)
    for materialization in result.asset_materializations_for_node("quick_pass_soulprint"):
        if "activity_path" in materialization.metadata:
            print(f"activity picture: {materialization.metadata['activity_path'].value}")
    if unreachable is not None:
        print(
            f"soulprint-pipeline: the import {outcome}, but user_profiles did not answer "
            f"({unreachable}); the row lags until mirror_reconcile_sensor rewrites it from "
            "the lake",
            file=sys.stderr,
        )
        return 0 if result.success else 2
    if not result.success:
        print(
            f"soulprint-pipeline: {row.get('import_error') or 'the import failed'}", file=sys.stderr
        )
        return 2
    return 0


@contextmanager
def _claim(instance: Any, home: Any, user_id: str) -> Iterator[None]:
    """Hold this user's import for the command's lifetime, or refuse with one line.

    A lock file in ``DAGSTER_HOME`` (released by the system even on ``kill -9``) keeps a
    second import command of the same user out. Holding it proves that no import command of
    this user is alive, so its runs still marked in progress died with their process: they
    are failed now, which the app hears from the new import. A run the daemon launched is
    left alone, and refuses this import while it works.
    """
    import dagster as dg
    from filelock import FileLock, Timeout

    from soulprint_pipeline.defs.partitions import IMPORT_COMMAND, PARTITION_TAG, RUNNER_TAG
    from soulprint_pipeline.defs.sensors import users_in_batches
    from soulprint_pipeline.errors import ImportInProgressError

    busy = f"An import of {user_id} is already running"
    (home / "locks").mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(home / "locks" / f"import-{user_id}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ImportInProgressError(f"{busy} (another import command); wait for it.") from None
    try:
        in_progress = instance.get_runs(
            dg.RunsFilter(
                tags={PARTITION_TAG: user_id},
                # the statuses of a run that has not ended (dagster's own list is private)
                statuses=[
                    dg.DagsterRunStatus.NOT_STARTED,
                    dg.DagsterRunStatus.QUEUED,
                    dg.DagsterRunStatus.STARTING,
                    dg.DagsterRunStatus.STARTED,
                    dg.DagsterRunStatus.CANCELING,
                ],
            )
        )
        for run in in_progress:
            if run.tags.get(RUNNER_TAG) != IMPORT_COMMAND:
                raise ImportInProgressError(
                    f"{busy} in Dagster (run {run.run_id[:8]}); wait for it, or cancel it."
                )
            instance.report_run_failed(
                run, "its import command ended before the run did (killed, or the machine died)"
            )
            print(f"run {run.run_id} of {user_id} had died with its process: marked failed")
        if user_id in users_in_batches(instance):  # a batch run carries no partition tag
            raise ImportInProgressError(
                f"{busy} in Dagster (a batch run of new users' imports); wait for it."
            )
        yield
    finally:
        lock.release()


def recall_command(args: argparse.Namespace) -> int:
    """Print the chunks of a user's memory nearest to a query, with their titles and dates.

    The person's own words, shown only to the operator who asks; the app's chat makes the
    same call (:func:`soulprint_pipeline.memory.recall.recall`).
    """
    import dagster as dg

    from soulprint_pipeline.definitions import defs
    from soulprint_pipeline.memory.recall import recall
    from soulprint_pipeline.users import validate_user_id

    user_id = validate_user_id(args.user)
    needed = {key: defs.resources[key] for key in ("embedder", "memory")}
    with (
        dg.build_resources(needed) as resources,
        resources.embedder.open() as embedder,
        resources.memory.open(embedder.dimension) as store,
    ):
        if store.count(user_id) == 0:
            print(
                f"soulprint-pipeline: no memory is stored for {user_id} yet "
                "(import their export first)",
                file=sys.stderr,
            )
            return 2
        found = recall(store, embedder, user_id, args.query, k=args.k)
    for rank, chunk in enumerate(found, 1):
        when = chunk.first_message_at or chunk.conversation_created_at
        date = when.date().isoformat() if when else "undated"
        title = chunk.conversation_title or "(untitled)"
        print(f"{rank}. {title} · {date} · score {chunk.score:.3f}")
        print("   " + chunk.text.replace("\n", "\n   ") + "\n")
    return 0


def _printable(row: dict) -> dict:
    """The user_profiles row, with the JSON columns shown as JSON."""
    shown = dict(row)
    for column in ("soul_md", "identity_md", "user_md", "agents_md", "tools_md"):
        if isinstance(shown.get(column), str):
            shown[column] = json.loads(shown[column])
    shown.pop("soulprint", None)  # the same sections as the *_md columns
    return shown


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``soulprint-pipeline``."""
    parser = argparse.ArgumentParser(
        prog="soulprint-pipeline",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    parse = commands.add_parser(
        "parse", help="stream an export (any fsspec URL) into Parquet parts of message rows"
    )
    parse.add_argument("export_url", help="path or fsspec URL of a ChatGPT or Claude export")
    parse.add_argument("--out", required=True, help="directory (path or fsspec URL) for parts")
    defaults = ReadLimits()
    parse.add_argument(
        "--max-node-mb",
        type=float,
        default=defaults.max_node_bytes / MiB,
        help="largest single conversation node accepted (default: %(default)s)",
    )
    parse.add_argument(
        "--max-uncompressed-gb",
        type=float,
        default=defaults.max_uncompressed_bytes / 1024 / MiB,
        help="cap on decompressed size (default: %(default)s)",
    )
    parse.add_argument(
        "--max-compression-ratio",
        type=float,
        default=defaults.max_compression_ratio,
        help="cap on decompression ratio (default: %(default)s)",
    )
    parse.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes parsing a sharded export's documents side by side (default: 1)",
    )
    parse.set_defaults(handler=parse_command)

    importer = commands.add_parser(
        "import",
        help="run the four assets for one user on this export, on the local Dagster instance",
    )
    importer.add_argument("export_url", help="path or fsspec URL of the export")
    importer.add_argument("--user", required=True, help="the user id (the partition key)")
    importer.set_defaults(handler=import_command)

    recaller = commands.add_parser(
        "recall", help="print the chunks of a user's memory nearest in meaning to a query"
    )
    recaller.add_argument("query", help="what to look for, in any words")
    recaller.add_argument("--user", required=True, help="the user id")
    recaller.add_argument("-k", type=int, default=5, help="how many chunks (default: 5)")
    recaller.set_defaults(handler=recall_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: bad input or configuration exits 2 with a one-line message, no traceback.

    Anything else is a defect: one line too, exit 1, and the traceback with SOULPRINT_DEBUG=1.
    """
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except UserSafeError as error:  # bad input, a setting, the mirror: the operator's to fix
        print(f"soulprint-pipeline: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("soulprint-pipeline: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if os.environ.get("SOULPRINT_DEBUG"):
            raise
        print(
            f"soulprint-pipeline: unexpected error ({type(error).__name__}): {error} "
            "(SOULPRINT_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
