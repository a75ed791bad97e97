"""The import job and what happens when an import fails."""

import dagster as dg

from soulprint_pipeline.defs.assets import (
    conversation_batches,
    memory_chunks,
    quick_pass_soulprint,
    raw_export,
)
from soulprint_pipeline.defs.partitions import PARTITION_TAG
from soulprint_pipeline.errors import message_for_person
from soulprint_pipeline.mirror.progress import record_failure


@dg.failure_hook(required_resource_keys={"profiles"})
def mark_import_failed(context: dg.HookContext) -> None:
    """Tell the app, in words fit for the person, why their import failed."""
    run = context.instance.get_run_by_id(context.run_id)
    user_id = run.tags.get(PARTITION_TAG) if run else None
    if not user_id or context.op_exception is None:
        return
    message = message_for_person(context.op_exception)
    if record_failure(context.resources.profiles.store, user_id, message):
        context.log.info(f"user_profiles: {user_id} marked failed")


import_user = dg.define_asset_job(
    "import_user",
    selection=[raw_export, conversation_batches, quick_pass_soulprint, memory_chunks],
    description="Import one user's export: copy, parse, soulprint, memory.",
    hooks={mark_import_failed},
)
