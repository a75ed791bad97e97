"""Nightly upkeep, apart from any user's import: the memory store's index and compaction, and
the lake's replaced versions.

Training LanceDB's vector index holds the vectors in memory (about 0.5 GB for 70,000 of 1024
values): inside a user's memory step it would make whichever user crossed the threshold pay
for everyone's chunks, so it runs here, once a night.

A lake version that is no longer current is kept ``SOULPRINT_LAKE_KEEP_SECONDS`` (another
writer may still read it) and deleted by the next write of its partition; a user who never
uploads again would keep theirs for good, so the sweep deletes every expired one each night.
"""

import dagster as dg

from soulprint_pipeline.defs.io_manager import LakeIOManager
from soulprint_pipeline.defs.memory import EmbedderResource, MemoryResource
from soulprint_pipeline.defs.metadata import sized


@dg.op(description="Index, compact and clean up the memory store.")
def optimize_memory_store(
    context: dg.OpExecutionContext, embedder: EmbedderResource, memory: MemoryResource
) -> None:
    with memory.open(embedder.dimension) as store:
        store.optimize()
    context.log.info(f"memory store at {memory.url} optimized")


@dg.job(description="Index, compact and clean up the memory store (LanceDB; Postgres needs none).")
def memory_maintenance() -> None:
    optimize_memory_store()


memory_maintenance_schedule = dg.ScheduleDefinition(
    job=memory_maintenance,
    cron_schedule="30 3 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every night at 03:30 UTC: the memory store's index and compaction.",
)


@dg.op(
    description=(
        "Delete the lake's versions that are not current and older than "
        "SOULPRINT_LAKE_KEEP_SECONDS, in every partition."
    )
)
def sweep_lake(context: dg.OpExecutionContext, lake: dg.ResourceParam[LakeIOManager]) -> dg.Output:
    swept = lake.lake().sweep()
    context.log.info(f"{swept.versions} replaced lake versions deleted ({swept.bytes:,} bytes)")
    return dg.Output(
        None,
        metadata={
            "versions_removed": swept.versions,
            **sized("bytes_freed", swept.bytes),
            "keep_seconds": lake.keep_seconds,
        },
    )


@dg.job(description="Delete the lake's replaced versions past their keeping time.")
def lake_maintenance() -> None:
    sweep_lake()


lake_maintenance_schedule = dg.ScheduleDefinition(
    job=lake_maintenance,
    cron_schedule="0 3 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=(
        "Every night at 03:00 UTC: the lake's versions replaced more than "
        "SOULPRINT_LAKE_KEEP_SECONDS ago are deleted."
    ),
)
