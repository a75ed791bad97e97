"""Rows the mirror missed, brought up to what the lake holds.

An import whose ``user_profiles`` writes gave up (the database was down) still succeeds: the
lake is the truth, and the row lags. ``mirror_reconcile_sensor`` walks the users a bounded
number a tick and rewrites a lagging row from the lake's current soulprint: ``complete`` when
the memory built from the same rows was stored, else ``quick_ready``. A user with an import
queued or running is left to it, and a ``failed`` row is left alone (its message is the news).
"""

import dagster as dg

from soulprint_pipeline.defs.backfill import soulprint_columns
from soulprint_pipeline.defs.io_manager import LakeIOManager
from soulprint_pipeline.defs.jobs import import_user
from soulprint_pipeline.defs.partitions import PARTITION_TAG, users
from soulprint_pipeline.defs.resources import ProfilesResource, int_setting
from soulprint_pipeline.lake.store import Lake
from soulprint_pipeline.mirror.agreement import disagreements
from soulprint_pipeline.mirror.progress import COMPLETE, REMEMBERING, ProgressTracker
from soulprint_pipeline.mirror.store import ProfileStore, ProfileStoreError
from soulprint_pipeline.soulprint.field_evidence import sections_of

#: Users looked at a tick (``SOULPRINT_RECONCILE_USERS_PER_TICK``): a few lake reads each.
USERS_PER_TICK = int_setting("SOULPRINT_RECONCILE_USERS_PER_TICK", 200)

_IN_PROGRESS = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def _memory_stored_for(instance: dg.DagsterInstance, user_id: str, rows_version: str) -> bool:
    """Whether the user's latest memory was built from the rows version ``rows_version``."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("memory_chunks"), asset_partitions=[user_id]),
        limit=1,
        ascending=False,
    ).records
    if not records or records[0].asset_materialization is None:
        return False
    metadata = records[0].asset_materialization.metadata
    inputs = metadata.get("lake_inputs")
    superseded = metadata.get("superseded")
    return (
        inputs is not None
        and inputs.value.get("conversation_batches") == rows_version
        and not (superseded is not None and superseded.value)
    )


def reconcile_user(
    instance: dg.DagsterInstance, lake: Lake, store: ProfileStore, user_id: str
) -> bool:
    """Rewrite ``user_id``'s row from the lake if it lags; whether it was rewritten."""
    soulprint = lake.current("quick_pass_soulprint", user_id)
    if soulprint is None:
        return False
    row = store.get(user_id)
    if row is not None and row.get("import_status") == "failed":
        return False
    rows = lake.current("conversation_batches", user_id) or {}
    rows_version = soulprint.get("inputs", {}).get("conversation_batches", rows.get("version"))
    # a complete user is never taken back to quick_ready (memories built before their
    # materializations named their inputs would look unmatched)
    was_complete = row is not None and row.get("import_status") == COMPLETE.status
    memory_stored = was_complete or _memory_stored_for(instance, user_id, rows_version)
    stage = COMPLETE if memory_stored else REMEMBERING
    sections = sections_of(lake.read_json(soulprint["file"]))
    if (
        row is not None
        and not disagreements(row, sections)
        and row.get("import_status") == stage.status
    ):
        return False
    running = instance.get_runs(
        dg.RunsFilter(
            job_name=import_user.name, statuses=_IN_PROGRESS, tags={PARTITION_TAG: user_id}
        ),
        limit=1,
    )
    if running:
        return False
    totals = {
        "total_conversations": rows.get("conversations", 0),
        "total_messages": rows.get("rows", 0),
    }
    ProgressTracker(user_id, store, quiet=False).complete(
        soulprint_columns(totals, sections), stage
    )
    return True


@dg.sensor(
    name="mirror_reconcile_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Brings user_profiles rows that lag the lake (the mirror was down when an import "
        "finished) up to the lake's current soulprint: complete when its memory is stored, "
        "else quick_ready. A bounded number of users a tick; users being imported and failed "
        "rows are left alone."
    ),
)
def mirror_reconcile_sensor(
    context: dg.SensorEvaluationContext,
    profiles: ProfilesResource,
    lake: dg.ResourceParam[LakeIOManager],
) -> dg.SkipReason:
    """Look at the next ``USERS_PER_TICK`` users and rewrite the rows that lag the lake; the
    cursor moves past a user only once their row is right (or nothing can be done)."""
    instance = context.instance
    every = sorted(instance.get_dynamic_partitions(users.name))
    if not every:
        return dg.SkipReason("no users yet")
    start = int(context.cursor or 0) % len(every)
    batch = (every[start:] + every[:start])[: min(USERS_PER_TICK, len(every))]
    store, lake_store = profiles.store, lake.lake()
    rewritten = 0
    done = 0
    try:
        for user_id in batch:
            rewritten += reconcile_user(instance, lake_store, store, user_id)
            done += 1
    except ProfileStoreError as error:
        context.log.warning(f"user_profiles unreachable, the next tick tries again: {error}")
    context.update_cursor(str((start + done) % len(every)))
    return dg.SkipReason(f"{done} of {len(every)} users looked at, {rewritten} rows rewritten")
