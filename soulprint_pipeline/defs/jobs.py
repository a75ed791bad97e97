"""The import job and what happens when an import fails."""

import dagster as dg
from dagster_shared.error import SerializableErrorInfo

from soulprint_pipeline.defs.assets import conversation_batches, quick_pass_soulprint, raw_export
from soulprint_pipeline.progress import record_failure, user_safe_message

PARTITION_TAG = "dagster/partition"


@dg.failure_hook(required_resource_keys={"profiles"})
def mark_import_failed(context: dg.HookContext) -> None:
    """Tell the app, in words fit for the person, why their import failed."""
    run = context.instance.get_run_by_id(context.run_id)
    user_id = run.tags.get(PARTITION_TAG) if run else None
    if not user_id or context.op_exception is None:
        return
    message = user_safe_message(context.op_exception)
    if record_failure(context.resources.profiles.store, user_id, message):
        context.log.info(f"user_profiles: {user_id} marked failed")


import_user = dg.define_asset_job(
    "import_user",
    selection=[raw_export, conversation_batches, quick_pass_soulprint],
    description="Import one user's export: copy, parse, soulprint.",
    hooks={mark_import_failed},
)


@dg.run_failure_sensor(
    name="import_failure_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    monitor_all_code_locations=True,
    minimum_interval_seconds=15,
)
def import_failure_sensor(context: dg.RunFailureSensorContext, profiles) -> None:
    """A failed run whose steps could not say why (its worker died, it was launched from the UI
    without the job's hook) still ends as ``failed`` in the app."""
    user_id = context.dagster_run.tags.get(PARTITION_TAG)
    if not user_id:
        return
    store = profiles.store
    row = store.get(user_id) or {}
    if row.get("import_status") != "processing":
        return  # already told (by the hook), or a quiet re-run of a complete user
    errors = [
        event.step_failure_data.error
        for event in context.get_step_failure_events()
        if event.step_failure_data and event.step_failure_data.error
    ]
    message = (
        _message_from_error(errors[0])
        if errors
        else "The import stopped unexpectedly (its worker ended); please upload again."
    )
    record_failure(store, user_id, message)


def _message_from_error(error: SerializableErrorInfo) -> str:
    # Only our own error types are known to carry user-safe messages.
    while error.cause is not None and error.cls_name.startswith("Dagster"):
        error = error.cause
    if error.cls_name in _SAFE_ERRORS:
        return error.message.split(": ", 1)[-1].strip()
    return f"The import failed unexpectedly ({error.cls_name}); the team has been told."


_SAFE_ERRORS = {
    "ExportError",
    "NotAnExportError",
    "EmptyExportError",
    "InvalidJSONError",
    "TruncatedExportError",
    "EncodingError",
    "OversizedValueError",
    "UnsafeArchiveError",
    "StorageError",
    "InvalidUserIdError",
}
