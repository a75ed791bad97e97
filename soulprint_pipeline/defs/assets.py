"""The per-user asset graph: raw export -> conversation batches -> quick-pass soulprint and
memory chunks."""

import random
from collections.abc import Iterator
from typing import Any

import dagster as dg

from soulprint_pipeline.defs.backfill import (
    BACKFILL_BATCH,
    MEMORY_BACKFILL_BATCH,
    export_batch,
    is_batch,
    memory_batch,
    parse_batch,
    soulprint_batch,
    start_generating,
    to_save,
)
from soulprint_pipeline.defs.checks import (
    BATCHES_CHECKS,
    SOULPRINT_CHECKS,
    rows_checks,
    soulprint_checks,
)
from soulprint_pipeline.defs.io_manager import LAKE, ExportCopy, LakeIOManager, run_manifest
from soulprint_pipeline.defs.memory import EmbedderResource, MemoryResource, memory_code_version
from soulprint_pipeline.defs.metadata import table_schema, without_credentials
from soulprint_pipeline.defs.model import SoulprintModel
from soulprint_pipeline.defs.partitions import uploads_of_run, users
from soulprint_pipeline.defs.resources import ProfilesResource, UploadsResource
from soulprint_pipeline.export.reader import READER_VERSION, ExportReader
from soulprint_pipeline.export.rows import SCHEMA
from soulprint_pipeline.lake.store import Lake, StoredParts
from soulprint_pipeline.memory.build import MemorySettings, build_memory
from soulprint_pipeline.memory.embedders import PermanentEmbeddingError, TransientEmbeddingError
from soulprint_pipeline.mirror.progress import (
    DOWNLOADING,
    GENERATING,
    PARSING,
    REMEMBERING,
    ProgressTracker,
    is_quiet,
    now,
)
from soulprint_pipeline.soulprint.llm import TransientModelError
from soulprint_pipeline.soulprint.prompt import quick_pass_prompt
from soulprint_pipeline.users import validate_user_id

GROUP = "soulprint"
#: Who answers for these assets in the UI (and, on Dagster+, who its alerts go to): the team
#: that runs the import, not a person.
OWNERS = ["team:data"]

#: Re-run a user's soulprint or memory (only that asset) when its code version changes (the
#: prompt's; the chunker's and embedder's); users never imported are left alone, and the
#: "llm" and "embeddings" pools throttle the backfill.
REBUILD_ON_CODE_CHANGE = (
    dg.AutomationCondition.code_version_changed().since(
        dg.AutomationCondition.newly_requested() | dg.AutomationCondition.newly_updated()
    )
    & ~dg.AutomationCondition.in_progress()
    & ~dg.AutomationCondition.missing()
).with_label("code version changed")


def _tracker(
    context: dg.AssetExecutionContext, profiles: ProfilesResource, user_id: str | None = None
) -> ProgressTracker:
    """This step's progress for its user (``user_id`` in a batch of several): to
    ``user_profiles`` and, live, to the run's event log."""
    user_id = validate_user_id(user_id or context.partition_key)
    store = profiles.store

    def observe(stage: str, percent: int) -> None:
        context.log_event(
            dg.AssetObservation(
                asset_key=context.asset_key,
                partition=user_id,
                metadata={"stage": stage, "progress_percent": percent},
            )
        )

    return ProgressTracker(user_id, store, quiet=is_quiet(store, user_id), listener=observe)


def _lake(context: dg.AssetExecutionContext) -> Lake:
    """The lake the step's IO manager writes to (the checks read back what it stored)."""
    io_manager: LakeIOManager = context.resources.lake
    return io_manager.lake()


def _stored(context: dg.AssetExecutionContext, lake: Lake, asset: str) -> dict[str, Any]:
    """The manifest of the version of ``asset`` this run stored for the step's user."""
    return run_manifest(lake, context.instance, context.run, asset, context.partition_key)


@dg.asset(
    partitions_def=users,
    group_name=GROUP,
    kinds={"file"},
    io_manager_key=LAKE,
    owners=OWNERS,
    code_version="copy-v1",
)
def raw_export(
    context: dg.AssetExecutionContext, uploads: UploadsResource, profiles: ProfilesResource
) -> Iterator[dg.Output]:
    """A person's export exactly as uploaded, copied into the lake (sha256, size, container)."""
    copy_of = lambda tracker: _copy_of(context, uploads, tracker)  # noqa: E731
    if is_batch(context):  # an upload batch: each user's export in turn
        tracker_for = lambda user_id: _tracker(context, profiles, user_id)  # noqa: E731
        yield from export_batch(context, tracker_for, copy_of)
        return
    copy, metadata = copy_of(_tracker(context, profiles))
    yield dg.Output(copy, metadata=metadata)


def _copy_of(
    context: dg.AssetExecutionContext, uploads: UploadsResource, tracker: ProgressTracker
) -> tuple[ExportCopy, dict[str, Any]]:
    """The user's copy starts: the upload their run was requested for (else their newest), to
    copy as ``raw_export``'s output, and the upload's identity for its metadata."""
    tracker.start(DOWNLOADING, processing_started_at=now(), import_error=None)
    user_id = tracker.user_id
    url, identity = uploads_of_run(context.run.tags).get(user_id, ("", ""))
    upload = uploads.upload_at(url, user_id) if url else uploads.latest_upload(user_id)
    # the upload's URL holds the file name the person chose: the log gets its size only
    context.log.info(f"{user_id}: importing an upload of {upload.size:,} bytes")
    copy = ExportCopy(
        upload,
        uploads.s3.storage_options(upload.url),
        on_progress=lambda done, total: tracker.advance(DOWNLOADING, done / max(total, 1)),
    )
    return copy, {"upload_identity": identity or upload.identity}


@dg.asset(
    partitions_def=users,
    group_name=GROUP,
    kinds={"parquet"},
    io_manager_key=LAKE,
    owners=OWNERS,
    code_version=f"reader-v{READER_VERSION}",
    metadata={"dagster/column_schema": dg.MetadataValue.table_schema(table_schema(SCHEMA))},
    check_specs=BATCHES_CHECKS,
)
def conversation_batches(
    context: dg.AssetExecutionContext, raw_export: ExportReader | None, profiles: ProfilesResource
) -> Iterator[dg.Output | dg.AssetCheckResult | dg.AssetCheckEvaluation]:
    """Parsed messages of one user's export, one row per visible message, in Parquet parts."""
    if is_batch(context):  # an upload batch: each user's export parsed in turn
        tracker_for = lambda user_id: _tracker(context, profiles, user_id)  # noqa: E731
        yield from parse_batch(context, tracker_for, _start_parse)
        return
    assert raw_export is not None  # one user's: the IO manager's reader
    _start_parse(_tracker(context, profiles), raw_export)
    # The reader is consumed by the IO manager, part by part, as it writes the Parquet parts;
    # the checks run once it has (Dagster stores each output as it is yielded).
    yield dg.Output(raw_export)
    lake = _lake(context)
    stored = StoredParts(lake, _stored(context, lake, "conversation_batches"))
    yield from rows_checks(stored, raw_export.stats)


def _start_parse(tracker: ProgressTracker, reader: ExportReader) -> None:
    """The row enters the parsing stage, advancing with the bytes ``reader`` consumes."""
    tracker.start(PARSING)
    reader.on_progress = lambda done, total: tracker.advance(PARSING, done / max(total, 1))


@dg.asset(
    partitions_def=users,
    group_name=GROUP,
    kinds={"json"},
    io_manager_key=LAKE,
    # the prompt's version: bumping it marks every user's soulprint stale in the UI
    code_version=f"prompt-v{quick_pass_prompt().version}",
    pool="llm",
    automation_condition=REBUILD_ON_CODE_CHANGE,
    # a backfill runs up to SOULPRINT_BACKFILL_BATCH users a run (defs/backfill.py); such a
    # run saves and materializes each user itself, so it yields no output
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=BACKFILL_BATCH),
    output_required=False,
    # read from the lake per user (a batch's step has several partitions, one input for all)
    deps=[conversation_batches],
    owners=OWNERS,
    check_specs=SOULPRINT_CHECKS,
)
def quick_pass_soulprint(
    context: dg.AssetExecutionContext, profiles: ProfilesResource, llm: SoulprintModel
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """The person's quick-pass soulprint: five sections, also mirrored into user_profiles."""
    if is_batch(context):  # a backfill's or an upload batch's run
        tracker_for = lambda user_id: _tracker(context, profiles, user_id)  # noqa: E731
        yield from soulprint_batch(context, tracker_for, llm, profiles.store)
        return
    tracker = _tracker(context, profiles)
    lake = _lake(context)
    # the rows this run parsed, else the current ones (a soulprint-only run)
    conversation_batches = StoredParts(lake, _stored(context, lake, "conversation_batches"))
    totals = start_generating(tracker, conversation_batches)
    try:
        generated = llm.generate(
            conversation_batches, on_progress=lambda f: tracker.advance(GENERATING, 0.9 * f)
        )
    except TransientModelError as error:
        # throttled past the client's own retries: back off (with jitter) and run the step
        # again; anything else fails at once
        wait = llm.retry_delay_seconds * 2**context.retry_number * random.uniform(0.75, 1.25)
        raise dg.RetryRequested(max_retries=llm.max_step_retries, seconds_to_wait=wait) from error
    # saved: the app may start with the quick pass while the memory is built
    soulprint, messages = to_save(tracker, conversation_batches, totals, generated)
    yield dg.Output(soulprint, metadata={**generated.metadata, "activity_messages": messages})
    yield from soulprint_checks(
        lake, _stored(context, lake, "quick_pass_soulprint"), profiles.store, tracker
    )


@dg.asset(
    partitions_def=users,
    group_name=GROUP,
    kinds={"lancedb", "embeddings"},
    # the chunker's and the embedder's identity: a change re-embeds, never re-parses
    code_version=memory_code_version(),
    pool="embeddings",
    automation_condition=REBUILD_ON_CODE_CHANGE,
    # a backfill runs up to SOULPRINT_MEMORY_BACKFILL_BATCH users a run (defs/backfill.py),
    # materializing each user itself, so it yields no output
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=MEMORY_BACKFILL_BATCH),
    output_required=False,
    # the rows read from the lake per user (a batch's step has several partitions)
    deps=[conversation_batches, quick_pass_soulprint],
    owners=OWNERS,
)
def memory_chunks(
    context: dg.AssetExecutionContext,
    profiles: ProfilesResource,
    embedder: EmbedderResource,
    memory: MemoryResource,
) -> Iterator[dg.MaterializeResult | dg.Output]:
    """The person's memory: their conversations in chunks of whole turns, embedded for recall."""
    lake = _lake(context)

    def build(user_id: str, rows: dict[str, Any]) -> dict[str, Any]:
        return _memory_of(
            context, lake, rows, embedder, memory, _tracker(context, profiles, user_id)
        )

    if is_batch(context):
        # a backfill's batch (each user's current rows) or an upload batch's (this run's)
        tracker_for = lambda user_id: _tracker(context, profiles, user_id)  # noqa: E731
        yield from memory_batch(context, tracker_for, build)
        return
    # the rows this run parsed, else the current ones (a memory-only run)
    rows = _stored(context, lake, "conversation_batches")
    try:
        metadata = build(context.partition_key, rows)
    except TransientEmbeddingError as error:
        # throttled past the client's own retries: the step again later; what was embedded
        # is staged, so the retry pays only for the rest
        wait = 30 * 2**context.retry_number * random.uniform(0.75, 1.25)
        raise dg.RetryRequested(max_retries=3, seconds_to_wait=wait) from error
    except PermanentEmbeddingError as error:
        raise dg.Failure(description=str(error), allow_retries=False) from error
    yield dg.MaterializeResult(metadata=metadata)


def _memory_of(
    context: dg.AssetExecutionContext,
    lake: Lake,
    rows: dict[str, Any],
    embedder: EmbedderResource,
    memory: MemoryResource,
    tracker: ProgressTracker,
) -> dict[str, Any]:
    """Builds one user's memory from the conversation_batches version ``rows``, unless a newer
    upload's rows are current; its materialization's metadata."""
    user_id = tracker.user_id
    current = lake.current("conversation_batches", user_id) or {}
    inputs = {"conversation_batches": rows.get("version")}
    if current.get("upload", "") > rows.get("upload", ""):
        # a newer upload's rows are current: its own run builds the memory from them
        context.log.info("a newer import of this user replaced these rows; memory left as is")
        return {"superseded": True, "lake_inputs": dg.MetadataValue.json(inputs)}
    tracker.start(REMEMBERING)
    settings = MemorySettings(chunking=memory.chunking)
    with embedder.open() as vectors, memory.open(embedder.dimension) as store:
        built = build_memory(
            user_id,
            StoredParts(lake, rows),
            vectors,
            store,
            settings,
            on_progress=lambda f: tracker.advance(REMEMBERING, f),
        )
    tracker.complete({})
    return {
        **built.metadata(),
        "dagster/row_count": built.chunks,
        "superseded": False,
        "lake_inputs": dg.MetadataValue.json(inputs),
        # a postgresql:// URL may carry a password
        "memory_url": without_credentials(memory.url),
    }


#: Every asset of a user's import, in the order it runs.
ASSETS = [raw_export, conversation_batches, quick_pass_soulprint, memory_chunks]
