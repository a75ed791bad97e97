"""A backfill's batch of soulprints or memories: many users in one run, each user apart.

A prompt-version backfill over thousands of users costs one run (a process, a step, resource
start-up) per user when each partition is its own run; ``quick_pass_soulprint`` runs up to
``SOULPRINT_BACKFILL_BATCH`` users per run instead (``BackfillPolicy.multi_run``). Inside the
run each user is still apart: their own lake version, progress and ``user_profiles`` row, their
own materialization and check results, and a user whose soulprint fails is recorded failed
(their row, no materialization: the backfill marks that partition failed) while the others'
are saved. The model calls go out concurrently, at most the ``llm`` pool's limit at once.
``memory_chunks`` runs up to ``SOULPRINT_MEMORY_BACKFILL_BATCH`` users per run the same way,
their memories built one after the other (each build embeds concurrently already).

Dagster hands a multi-partition step one output for all its partitions and materializes every
one of them (it cannot mark one failed: dagster-io/dagster#17836), so a batch yields no output:
it saves each soulprint through the lake IO manager itself and logs each user's
materialization (with the asset's code version, so a prompt bump marks it stale as usual)
and check evaluations.
"""

import warnings
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import dagster as dg
from dagster._core.definitions.data_version import CODE_VERSION_TAG
from dagster._core.errors import DagsterAssetCheckFailedError

from soulprint_pipeline.defs.checks import soulprint_checks
from soulprint_pipeline.defs.io_manager import LakeIOManager, SoulprintToSave
from soulprint_pipeline.defs.model import SoulprintModel
from soulprint_pipeline.defs.resources import int_setting
from soulprint_pipeline.errors import EmptyExportError, message_for_person
from soulprint_pipeline.lake.store import Lake, StoredParts
from soulprint_pipeline.mirror.progress import GENERATING, REMEMBERING, ProgressTracker
from soulprint_pipeline.soulprint.activity import COLUMNS as ACTIVITY_COLUMNS
from soulprint_pipeline.soulprint.activity import PICTURE_VERSION, activity_of, render_png
from soulprint_pipeline.soulprint.generate import Generated
from soulprint_pipeline.soulprint.sections import render_markdown, section_markdown

# Known and intended, so not shown to whoever runs the pipeline (a command prints one line on
# an error, never a warning before it): BackfillPolicy on an asset is a Dagster 1.13 beta, and
# the import job, whose assets' policies differ, takes the smallest batch (one user a run).
warnings.filterwarnings(
    "ignore", message="Parameter `backfill_policy` of function `asset`", category=dg.BetaWarning
)
warnings.filterwarnings(
    "ignore",
    message="Asset job import_user materializes assets with varying BackfillPolicies",
    category=UserWarning,
)

#: Users per run of a soulprint backfill (``SOULPRINT_BACKFILL_BATCH``).
BACKFILL_BATCH = int_setting("SOULPRINT_BACKFILL_BATCH", 25)

#: Users per run of a memory backfill (``SOULPRINT_MEMORY_BACKFILL_BATCH``).
MEMORY_BACKFILL_BATCH = int_setting("SOULPRINT_MEMORY_BACKFILL_BATCH", 25)

#: The pool the soulprint step runs in: its limit bounds a batch's model calls in flight.
LLM_POOL = "llm"

#: Makes a user's progress tracker (the asset's: it writes the row and observes the step).
TrackerFactory = Callable[[str], ProgressTracker]


def soulprint_columns(totals: Mapping[str, int], sections: dict[str, Any]) -> dict[str, Any]:
    """The ``user_profiles`` columns a saved soulprint sets."""
    return {
        **totals,
        "soulprint": sections,
        "soulprint_text": render_markdown(sections),
        **section_markdown(sections),
        "ai_name": sections["identity"]["ai_name"],
        "archetype": sections["identity"]["archetype"],
    }


def start_generating(tracker: ProgressTracker, parts: StoredParts) -> dict[str, int]:
    """The row enters the soulprint stage with the export's counts; an export without a
    message to learn from stops here (:class:`EmptyExportError`)."""
    manifest = parts.manifest
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
    return totals


def to_save(
    tracker: ProgressTracker, parts: StoredParts, totals: Mapping[str, int], generated: Generated
) -> tuple[SoulprintToSave, int]:
    """What the lake keeps of a generated soulprint (the sections and the activity picture,
    the row told once saved), and the messages the picture counts."""
    columns = soulprint_columns(totals, generated.sections)
    # counts of the person's messages by time only (three columns read, never the text)
    activity = activity_of(parts.batches(columns=ACTIVITY_COLUMNS))
    soulprint = SoulprintToSave(
        generated.sections,
        rows=parts.manifest,
        on_saved=lambda still_current: tracker.complete(columns, REMEMBERING, still_current),
        picture=kept_picture(parts) or render_png(activity),
        evidence=generated.evidence,
    )
    return soulprint, activity.messages


def kept_picture(parts: StoredParts) -> bytes | None:
    """The current soulprint's activity picture when it was drawn from these very rows by
    today's drawing (a prompt-version backfill: the rows did not change), else ``None``.
    Drawing one costs about 0.4 s of CPU, most of a batch's own work per user."""
    lake, rows = parts.lake, parts.manifest
    current = lake.current("quick_pass_soulprint", rows["user_id"]) if "user_id" in rows else None
    if (
        not current
        or "picture" not in current
        or current.get("picture_version") != PICTURE_VERSION
        or current.get("inputs", {}).get("conversation_batches") != rows.get("version")
    ):
        return None
    try:
        return lake.read_bytes(current["picture"])
    except FileNotFoundError:  # swept meanwhile: drawn again
        return None


def llm_slots(instance: dg.DagsterInstance) -> int:
    """The ``llm`` pool's limit on this instance (set, or the instance's default), else 1."""
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        limit = storage.get_concurrency_info(LLM_POOL).limit
        if limit:
            return limit
    return 1


@dataclass
class _User:
    user_id: str
    tracker: ProgressTracker
    parts: StoredParts | None = None
    totals: Mapping[str, int] | None = None
    generated: "Future[Generated] | None" = None
    error: BaseException | None = None


def soulprint_batch(
    context: dg.AssetExecutionContext,
    tracker_for: TrackerFactory,
    llm: SoulprintModel,
    store: Any,
) -> Iterator[dg.Output | dg.AssetCheckEvaluation]:
    """The soulprints of every user in the run, their model calls at most the ``llm`` pool's
    limit at once; fails the step at the end, naming how many, if any user's failed."""
    io_manager: LakeIOManager = context.resources.lake
    lake = io_manager.lake()
    users = [_User(user_id, tracker_for(user_id)) for user_id in context.partition_keys]
    for user in users:
        try:
            user.parts = StoredParts(lake, lake.require("conversation_batches", user.user_id))
            user.totals = start_generating(user.tracker, user.parts)
        except Exception as error:  # this user's; the others go on
            user.error = error
    ready = [user for user in users if user.error is None]
    slots = max(1, min(llm_slots(context.instance), len(ready) or 1))
    context.log.info(f"{len(ready)} soulprints, at most {slots} model calls at once")
    # only the model calls run in the threads: the rows, the lake and Dagster's event log are
    # written here, on the step's own thread
    with ThreadPoolExecutor(max_workers=slots, thread_name_prefix="soulprint") as pool:
        for user in ready:
            user.generated = pool.submit(llm.generate, user.parts)
        for user in ready:
            try:
                yield from _save(context, io_manager, lake, store, user)
            except Exception as error:
                user.error = error
    # the check outputs Dagster expects of the step (an AssetCheckResult yields the same);
    # the results themselves are the evaluations above, one per user
    for output_name in context.assets_def.check_specs_by_output_name:
        yield dg.Output(None, output_name=output_name)
    failed = [(user.tracker, user.error) for user in users if user.error is not None]
    fail_users(context, failed, len(users), "soulprints")


def memory_batch(
    context: dg.AssetExecutionContext,
    tracker_for: TrackerFactory,
    build: Callable[[str], dict[str, Any]],
) -> None:
    """The memories of every user in the run, one after the other (``build`` makes one user's
    and returns its materialization's metadata); fails the step at the end, naming how many,
    if any user's failed."""
    failed: list[tuple[ProgressTracker, BaseException]] = []
    for user_id in context.partition_keys:
        try:
            log_materialization(context, user_id, build(user_id))
        except Exception as error:  # this user's; the others go on
            failed.append((tracker_for(user_id), error))
    fail_users(context, failed, len(context.partition_keys), "memories")


def log_materialization(
    context: dg.AssetExecutionContext, user_id: str, metadata: Mapping[str, Any]
) -> None:
    """One user's materialization in a batch's step, with the asset's code version (so a
    version bump marks it stale as usual)."""
    code_version = context.assets_def.code_versions_by_key[context.asset_key]
    context.log_event(
        dg.AssetMaterialization(
            asset_key=context.asset_key,
            partition=user_id,
            metadata=dict(metadata),
            tags={CODE_VERSION_TAG: code_version} if code_version else None,
        )
    )


def fail_users(
    context: dg.AssetExecutionContext,
    failed: list[tuple[ProgressTracker, BaseException]],
    total: int,
    what: str,
) -> None:
    """Records each failed user of a batch ``failed`` with the usual message, then fails the
    step naming them (the others were saved)."""
    for tracker, error in failed:
        message = message_for_person(error)
        context.log.error(f"{tracker.user_id}: failed in this batch: {message}")
        tracker.fail(message)
    if failed:
        raise dg.Failure(
            description=f"{len(failed)} of {total} {what} in this batch failed "
            f"({', '.join(tracker.user_id for tracker, _ in failed)}); the others were saved.",
            allow_retries=False,
        )


def _save(
    context: dg.AssetExecutionContext,
    io_manager: LakeIOManager,
    lake: Lake,
    store: Any,
    user: _User,
) -> Iterator[dg.AssetCheckEvaluation]:
    """Saves one user's soulprint and logs its materialization and check evaluations; a
    failed check fails the user as a blocking check fails a one-user run."""
    assert user.generated is not None and user.parts is not None and user.totals is not None
    generated = user.generated.result()
    soulprint, messages = to_save(user.tracker, user.parts, user.totals, generated)
    manifest, metadata = io_manager.save_soulprint(user.user_id, soulprint)
    log_materialization(
        context,
        user.user_id,
        {**generated.metadata, **metadata, "activity_messages": messages},
    )
    failed: list[str] = []
    for result in soulprint_checks(lake, manifest, store, user.tracker):
        yield dg.AssetCheckEvaluation(
            asset_key=context.asset_key,
            check_name=result.check_name or "",
            passed=result.passed,
            metadata=result.metadata,
            description=result.description,
            blocking=True,
            partition=user.user_id,
            severity=result.severity,
        )
        if not result.passed and result.severity == dg.AssetCheckSeverity.ERROR:
            failed.append(result.check_name or "")
    if failed:
        # Dagster's own error for a failed blocking check, told to the person the same way
        key = context.asset_key.to_user_string()
        raise DagsterAssetCheckFailedError(f"{key}: {','.join(failed)}")
