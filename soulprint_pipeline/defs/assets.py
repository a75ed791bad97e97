"""The per-user asset graph: raw export -> conversation batches -> quick-pass soulprint and
memory chunks."""

import random

import dagster as dg

from soulprint_pipeline.defs.io_manager import ExportCopy, SoulprintToSave
from soulprint_pipeline.defs.memory import EmbedderResource, MemoryResource, memory_code_version
from soulprint_pipeline.defs.model import SoulprintModel
from soulprint_pipeline.defs.partitions import IDENTITY_TAG, UPLOAD_TAG, users
from soulprint_pipeline.defs.resources import ProfilesResource, UploadsResource
from soulprint_pipeline.errors import EmptyExportError
from soulprint_pipeline.export.reader import ExportReader
from soulprint_pipeline.lake.store import StoredParts
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
from soulprint_pipeline.soulprint.sections import render_markdown, section_markdown
from soulprint_pipeline.users import validate_user_id

GROUP = "soulprint"

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


def _tracker(context: dg.AssetExecutionContext, profiles: ProfilesResource) -> ProgressTracker:
    """This step's progress: to ``user_profiles`` and, live, to the run's event log."""
    user_id = validate_user_id(context.partition_key)
    store = profiles.store
    new_upload = UPLOAD_TAG in context.run.tags

    def observe(stage: str, percent: int) -> None:
        context.log_event(
            dg.AssetObservation(
                asset_key=context.asset_key,
                partition=user_id,
                metadata={"stage": stage, "progress_percent": percent},
            )
        )

    return ProgressTracker(
        user_id, store, quiet=is_quiet(store, user_id, new_upload), listener=observe
    )


@dg.asset(
    partitions_def=users,
    group_name=GROUP,
    kinds={"file"},
    io_manager_key="lake",
)
def raw_export(
    context: dg.AssetExecutionContext, uploads: UploadsResource, profiles: ProfilesResource
) -> dg.Output:
    """A person's export exactly as uploaded, copied into the lake (sha256, size, container)."""
    tracker = _tracker(context, profiles)
    tracker.start(DOWNLOADING, processing_started_at=now(), import_error=None)
    user_id = tracker.user_id
    tagged = context.run.tags.get(UPLOAD_TAG)
    upload = uploads.upload_at(tagged, user_id) if tagged else uploads.latest_upload(user_id)
    context.log.info(f"importing {upload.url} ({upload.size:,} bytes)")
    return dg.Output(
        ExportCopy(
            upload,
            uploads.s3.storage_options(upload.url),
            on_progress=lambda done, total: tracker.advance(DOWNLOADING, done / max(total, 1)),
        ),
        metadata={"upload_identity": context.run.tags.get(IDENTITY_TAG, upload.identity)},
    )


@dg.asset(
    partitions_def=users,
    group_name=GROUP,
    kinds={"parquet"},
    io_manager_key="lake",
)
def conversation_batches(
    context: dg.AssetExecutionContext, raw_export: ExportReader, profiles: ProfilesResource
) -> dg.Output:
    """Parsed messages of one user's export, one row per visible message, in Parquet parts."""
    tracker = _tracker(context, profiles)
    tracker.start(PARSING)
    raw_export.on_progress = lambda done, total: tracker.advance(PARSING, done / max(total, 1))
    # The reader is consumed by the IO manager, part by part, as it writes the Parquet parts.
    return dg.Output(raw_export)


@dg.asset(
    partitions_def=users,
    group_name=GROUP,
    kinds={"json"},
    io_manager_key="lake",
    # the prompt's version: bumping it marks every user's soulprint stale in the UI
    code_version=f"prompt-v{quick_pass_prompt().version}",
    pool="llm",
    automation_condition=REBUILD_ON_CODE_CHANGE,
)
def quick_pass_soulprint(
    context: dg.AssetExecutionContext,
    conversation_batches: StoredParts,
    profiles: ProfilesResource,
    llm: SoulprintModel,
) -> dg.Output:
    """The person's quick-pass soulprint: five sections, also mirrored into user_profiles."""
    tracker = _tracker(context, profiles)
    manifest = conversation_batches.manifest
    totals = {
        "total_conversations": manifest.get("conversations", 0),
        "total_messages": manifest.get("rows", 0),
    }
    tracker.start(GENERATING, **totals)
    if not totals["total_messages"]:
        raise EmptyExportError(
            "The export holds conversations but no messages to learn from (all were empty, "
            "hidden or marked do-not-remember)."
        )
    try:
        generated = llm.generate(
            conversation_batches, on_progress=lambda f: tracker.advance(GENERATING, 0.9 * f)
        )
    except TransientModelError as error:
        # throttled past the client's own retries: back off (with jitter) and run the step
        # again; anything else fails at once
        wait = llm.retry_delay_seconds * 2**context.retry_number * random.uniform(0.75, 1.25)
        raise dg.RetryRequested(max_retries=llm.max_step_retries, seconds_to_wait=wait) from error
    sections = generated.sections
    columns = {
        **totals,
        "soulprint": sections,
        "soulprint_text": render_markdown(sections),
        **section_markdown(sections),
        "ai_name": sections["identity"]["ai_name"],
        "archetype": sections["identity"]["archetype"],
    }
    return dg.Output(
        # saved: the app may start with the quick pass while the memory is built
        SoulprintToSave(sections, on_saved=lambda: tracker.complete(columns, REMEMBERING)),
        metadata=generated.metadata,
    )


@dg.asset(
    partitions_def=users,
    group_name=GROUP,
    kinds={"lancedb", "embeddings"},
    # the chunker's and the embedder's identity: a change re-embeds, never re-parses
    code_version=memory_code_version(),
    pool="embeddings",
    automation_condition=REBUILD_ON_CODE_CHANGE,
    deps=[quick_pass_soulprint],
)
def memory_chunks(
    context: dg.AssetExecutionContext,
    conversation_batches: StoredParts,
    profiles: ProfilesResource,
    embedder: EmbedderResource,
    memory: MemoryResource,
) -> dg.MaterializeResult:
    """The person's memory: their conversations in chunks of whole turns, embedded for recall."""
    tracker = _tracker(context, profiles)
    tracker.start(REMEMBERING)
    settings = MemorySettings(chunking=memory.chunking)
    try:
        with embedder.open() as vectors, memory.open(embedder.dimension) as store:
            built = build_memory(
                tracker.user_id,
                conversation_batches,
                vectors,
                store,
                settings,
                on_progress=lambda f: tracker.advance(REMEMBERING, f),
            )
    except TransientEmbeddingError as error:
        # throttled past the client's own retries: the step again later; what was embedded
        # is staged, so the retry pays only for the rest
        wait = 30 * 2**context.retry_number * random.uniform(0.75, 1.25)
        raise dg.RetryRequested(max_retries=3, seconds_to_wait=wait) from error
    except PermanentEmbeddingError as error:
        raise dg.Failure(description=str(error), allow_retries=False) from error
    tracker.complete({})
    metadata = built.metadata()
    return dg.MaterializeResult(
        metadata={**metadata, "dagster/row_count": built.chunks, "memory_url": memory.url}
    )


#: Every asset of a user's import, in the order it runs.
ASSETS = [raw_export, conversation_batches, quick_pass_soulprint, memory_chunks]
