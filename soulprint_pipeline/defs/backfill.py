"""Steps of many users in one run, each user apart: a backfill's batch of soulprints or
memories, and the upload sensor's batch of new users' imports.

A prompt-version backfill over thousands of users costs one run (a process, a step, resource
start-up) per user when each partition is its own run; ``quick_pass_soulprint`` runs up to
``SOULPRINT_BACKFILL_BATCH`` users per run instead (``BackfillPolicy.multi_run``). Inside the
run each user is still apart: their own lake version, progress and ``user_profiles`` row, their
own materialization and check results, and a user whose soulprint fails is recorded failed
(their row, no materialization: the backfill marks that partition failed) while the others'
are saved. The model calls go out concurrently, at most the ``llm`` pool's limit at once.
``memory_chunks`` runs up to ``SOULPRINT_MEMORY_BACKFILL_BATCH`` users per run the same way,
their memories built one after the other (each build embeds concurrently already).

The upload sensor's batch runs (``SOULPRINT_IMPORT_BATCH`` new users a run, defs/sensors.py)
run the whole import over a range of users the same way: ``raw_export`` copies and
``conversation_batches`` parses each user's export one after the other (one export in memory
at a time), then the soulprints and memories as above. A user who fails in a step is recorded
failed there and left out of the steps after; the others go on.

Dagster hands a multi-partition step one output for all its partitions and materializes every
one of them (it cannot mark one failed: dagster-io/dagster#17836). So the run's last step
yields no output: it saves each user itself and logs each user's materialization (with the
asset's code version, so a prompt bump marks it stale as usual), and fails at the end naming
the users it did not save. A step with a step of the run after it must yield its output, or
Dagster skips the steps after for every user: its users are stored by the step itself, and
the output, stored by no one, carries each user's metadata (a failed user's says
``failed`` and has no lake version, so the steps after leave them out).
"""

import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import dagster as dg
from dagster._core.definitions.data_version import CODE_VERSION_TAG
from dagster._core.errors import DagsterAssetCheckFailedError

from soulprint_pipeline.defs.checks import rows_checks, soulprint_checks
from soulprint_pipeline.defs.io_manager import (
    LAKE_VERSION,
    ExportCopy,
    LakeIOManager,
    SoulprintToSave,
    read_downstream_in_run,
)
from soulprint_pipeline.defs.model import SoulprintModel
from soulprint_pipeline.defs.resources import int_setting
from soulprint_pipeline.errors import EmptyExportError, message_for_person
from soulprint_pipeline.export.reader import ExportReader
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


def is_batch(context: dg.AssetExecutionContext) -> bool:
    """Whether the step works on several users: a run tagged with a range of users (even a
    range of one: a backfill's batch of 1), which Dagster's one-partition outputs and checks
    do not take."""
    return len(context.partition_keys) > 1 or not context.has_partition_key


def stored_in_run(
    context: dg.AssetExecutionContext, lake: Lake, asset: str
) -> dict[str, dict[str, Any] | None]:
    """Each user's version of ``asset``, a step before this one in the run, that this run
    stored (``None`` for a user it failed: told already, left out of the steps after)."""
    key = dg.AssetKey(asset)
    records = context.instance.get_records_for_run(
        context.run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    stored: dict[str, dict[str, Any] | None] = dict.fromkeys(context.partition_keys)
    for record in records:
        materialization = record.event_log_entry.asset_materialization
        if (
            materialization is not None
            and materialization.asset_key == key
            and materialization.partition in stored
            and LAKE_VERSION in materialization.metadata
        ):
            name = str(materialization.metadata[LAKE_VERSION].value)
            stored[materialization.partition] = lake.staged(asset, materialization.partition, name)
    return stored


class Batch:
    """One step's users: who was saved (with their materialization's metadata) and who
    failed; :meth:`finish` records it the way the step's place in the run allows."""

    def __init__(self, context: dg.AssetExecutionContext, what: str) -> None:
        self.context = context
        self.what = what
        layer = context.job_def.asset_layer
        #: whether a step of this run comes after this one (see the module's docstring)
        self.continues = any(
            child in layer.selected_asset_keys for child in layer.get(context.asset_key).child_keys
        )
        #: whether an asset of this run makes this step's lake versions current
        self.read_downstream = read_downstream_in_run(layer, context.asset_key)
        self.saved: dict[str, Mapping[str, Any]] = {}
        self.failed: dict[str, str] = {}

    def save(self, user_id: str, metadata: Mapping[str, Any]) -> None:
        """``user_id`` is saved: materialized now by the run's last step, else with the
        step's output."""
        if not self.continues:
            log_materialization(self.context, user_id, metadata)
        self.saved[user_id] = metadata

    def fail(self, tracker: ProgressTracker, error: BaseException) -> None:
        """``tracker``'s user failed in this step: their row ``failed`` with the usual
        message (never the person's text), the others go on."""
        message = message_for_person(error)
        self.context.log.error(f"{tracker.user_id}: failed in this batch: {message}")
        tracker.fail(message)
        self.failed[tracker.user_id] = message

    def finish(self) -> Iterator[dg.Output]:
        """The step's output with each user's metadata when steps follow, else the step
        fails naming the users it did not save (failed here or in a step before)."""
        context = self.context
        users = context.partition_keys
        if self.continues:
            for user_id in users:
                metadata = self.saved.get(user_id) or {
                    "failed": self.failed.get(user_id, "in a step before, in this run")
                }
                context.add_asset_metadata(dict(metadata), partition_key=user_id)
            yield dg.Output(None)
            return
        missed = [user_id for user_id in users if user_id not in self.saved]
        if missed:
            raise dg.Failure(
                description=f"{len(missed)} of {len(users)} {self.what} in this batch failed "
                f"({', '.join(missed)}); the others were saved.",
                allow_retries=False,
            )


def export_batch(
    context: dg.AssetExecutionContext,
    tracker_for: TrackerFactory,
    copy_of: Callable[[ProgressTracker], tuple[ExportCopy, dict[str, Any]]],
) -> Iterator[dg.Output]:
    """``raw_export`` for every user of the run, one export copied after the other
    (``copy_of`` starts a user's copy: what to copy and the metadata it adds)."""
    io_manager: LakeIOManager = context.resources.lake
    batch = Batch(context, "exports")
    for user_id in context.partition_keys:
        tracker = tracker_for(user_id)
        try:
            copy, extra = copy_of(tracker)
            _, metadata = io_manager.store_copy(user_id, copy, batch.read_downstream)
            batch.save(user_id, {**metadata, **extra})
        except Exception as error:  # this user's; the others go on
            batch.fail(tracker, error)
    yield from batch.finish()


def parse_batch(
    context: dg.AssetExecutionContext,
    tracker_for: TrackerFactory,
    parse: Callable[[ProgressTracker, ExportReader], None],
) -> Iterator[dg.Output | dg.AssetCheckEvaluation]:
    """``conversation_batches`` for every user of the run whose export is in the lake, one
    export parsed after the other (never two in memory); ``parse`` starts a user's parse."""
    io_manager: LakeIOManager = context.resources.lake
    lake = io_manager.lake()
    batch = Batch(context, "parses")
    for user_id, export in _inputs(context, lake, "raw_export").items():
        tracker = tracker_for(user_id)
        try:
            if isinstance(export, BaseException):
                raise export
            reader = io_manager.export_reader(export)
            parse(tracker, reader)
            staged, metadata = io_manager.store_parts(user_id, reader, batch.read_downstream)
            checks = rows_checks(StoredParts(lake, staged), reader.stats)
            yield from _checked(context, user_id, checks)
            batch.save(user_id, metadata)
        except Exception as error:
            batch.fail(tracker, error)
    yield from _check_outputs(context)
    yield from batch.finish()


@dataclass
class _User:
    user_id: str
    tracker: ProgressTracker
    parts: StoredParts | None = None
    totals: Mapping[str, int] | None = None
    generated: "Future[Generated] | None" = None


def soulprint_batch(
    context: dg.AssetExecutionContext,
    tracker_for: TrackerFactory,
    llm: SoulprintModel,
    store: Any,
) -> Iterator[dg.Output | dg.AssetCheckEvaluation]:
    """The soulprints of every user in the run, their model calls at most the ``llm`` pool's
    limit at once; a user who failed is left out of the steps after, or, in the run's last
    step, named when the step fails at the end."""
    io_manager: LakeIOManager = context.resources.lake
    lake = io_manager.lake()
    batch = Batch(context, "soulprints")
    users: list[_User] = []
    for user_id, rows in _inputs(context, lake, "conversation_batches").items():
        user = _User(user_id, tracker_for(user_id))
        try:
            if isinstance(rows, BaseException):
                raise rows
            user.parts = StoredParts(lake, rows)
            user.totals = start_generating(user.tracker, user.parts)
            users.append(user)
        except Exception as error:  # this user's; the others go on
            batch.fail(user.tracker, error)
    slots = max(1, min(llm_slots(context.instance), len(users) or 1))
    context.log.info(f"{len(users)} soulprints, at most {slots} model calls at once")
    # only the model calls run in the threads: the rows, the lake and Dagster's event log are
    # written here, on the step's own thread
    with ThreadPoolExecutor(max_workers=slots, thread_name_prefix="soulprint") as pool:
        for user in users:
            user.generated = pool.submit(llm.generate, user.parts)
        for user in users:
            try:
                yield from _save(context, io_manager, lake, store, user, batch)
            except Exception as error:
                batch.fail(user.tracker, error)
    yield from _check_outputs(context)
    yield from batch.finish()


def memory_batch(
    context: dg.AssetExecutionContext,
    tracker_for: TrackerFactory,
    build: Callable[[str, dict[str, Any]], dict[str, Any]],
) -> Iterator[dg.Output]:
    """The memories of every user in the run, one after the other (``build`` makes one user's
    from their rows and returns its materialization's metadata); a user who failed is named
    when the step fails at the end."""
    lake = context.resources.lake.lake()
    batch = Batch(context, "memories")
    soulprints = (
        stored_in_run(context, lake, "quick_pass_soulprint")
        if _in_run(context, "quick_pass_soulprint")
        else {}
    )
    for user_id, rows in _inputs(context, lake, "conversation_batches").items():
        if user_id in soulprints and soulprints[user_id] is None:
            continue  # their soulprint failed in this run, and they were told
        try:
            if isinstance(rows, BaseException):
                raise rows
            batch.save(user_id, build(user_id, rows))
        except Exception as error:  # this user's; the others go on
            batch.fail(tracker_for(user_id), error)
    yield from batch.finish()


def _in_run(context: dg.AssetExecutionContext, asset: str) -> bool:
    return dg.AssetKey(asset) in context.job_def.asset_layer.selected_asset_keys


def _inputs(
    context: dg.AssetExecutionContext, lake: Lake, asset: str
) -> dict[str, dict[str, Any] | BaseException]:
    """The users whose ``asset`` this step reads (see :func:`stored_in_run`), with that
    version, or the error of reading it (this user's: the others go on); those who failed in
    a step before are left out."""
    if _in_run(context, asset):
        return {u: m for u, m in stored_in_run(context, lake, asset).items() if m is not None}
    found: dict[str, dict[str, Any] | BaseException] = {}
    for user_id in context.partition_keys:
        try:
            found[user_id] = lake.require(asset, user_id)
        except Exception as error:
            found[user_id] = error
    return found


def _check_outputs(context: dg.AssetExecutionContext) -> Iterator[dg.Output]:
    """The check outputs Dagster expects of the step (an AssetCheckResult yields the same);
    the results themselves are the evaluations logged per user."""
    for output_name in context.assets_def.check_specs_by_output_name:
        yield dg.Output(None, output_name=output_name)


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


def _checked(
    context: dg.AssetExecutionContext, user_id: str, results: Iterable[dg.AssetCheckResult]
) -> Iterator[dg.AssetCheckEvaluation]:
    """One user's check results as evaluations of their partition; a failed blocking check
    fails the user as it fails a one-user run (Dagster's own error, told the same way)."""
    failed: list[str] = []
    for result in results:
        yield dg.AssetCheckEvaluation(
            asset_key=context.asset_key,
            check_name=result.check_name or "",
            passed=result.passed,
            metadata=result.metadata,
            description=result.description,
            blocking=True,
            partition=user_id,
            severity=result.severity,
        )
        if not result.passed and result.severity == dg.AssetCheckSeverity.ERROR:
            failed.append(result.check_name or "")
    if failed:
        key = context.asset_key.to_user_string()
        raise DagsterAssetCheckFailedError(f"{key}: {','.join(failed)}")


def _save(
    context: dg.AssetExecutionContext,
    io_manager: LakeIOManager,
    lake: Lake,
    store: Any,
    user: _User,
    batch: Batch,
) -> Iterator[dg.AssetCheckEvaluation]:
    """Saves one user's soulprint, then its check evaluations."""
    assert user.generated is not None and user.parts is not None and user.totals is not None
    generated = user.generated.result()
    soulprint, messages = to_save(user.tracker, user.parts, user.totals, generated)
    manifest, metadata = io_manager.save_soulprint(user.user_id, soulprint)
    metadata = {**generated.metadata, **metadata, "activity_messages": messages}
    if not batch.continues:
        log_materialization(context, user.user_id, metadata)
    checks = soulprint_checks(lake, manifest, store, user.tracker)
    yield from _checked(context, user.user_id, checks)
    batch.saved[user.user_id] = metadata
