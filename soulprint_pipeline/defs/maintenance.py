"""Keeping the memory store fast: its index and compaction, apart from any user's import.

Training LanceDB's vector index holds the vectors in memory (about 0.5 GB for 70,000 of 1024
values): inside a user's memory step it would make whichever user crossed the threshold pay
for everyone's chunks, so it runs here, once a night.
"""

import dagster as dg

from soulprint_pipeline.defs.memory import EmbedderResource, MemoryResource


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
