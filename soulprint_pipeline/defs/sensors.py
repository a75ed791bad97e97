"""Sensors: a new upload starts that user's import; the app hears when it is queued or failed."""

import json
import time
from collections import Counter
from dataclasses import dataclass

import dagster as dg

from soulprint_pipeline.defs.jobs import import_user
from soulprint_pipeline.defs.partitions import IDENTITY_TAG, PARTITION_TAG, UPLOAD_TAG, users
from soulprint_pipeline.defs.resources import ProfilesResource, UploadsResource, int_setting
from soulprint_pipeline.errors import message_for_person
from soulprint_pipeline.mirror.progress import QUEUED, ProgressTracker, record_failure
from soulprint_pipeline.uploads import Upload, is_export_name
from soulprint_pipeline.users import InvalidUserIdError, validate_user_id


@dataclass(frozen=True)
class Cursor:
    """How far the sensor has looked: the newest upload time taken, and the uploads taken at
    exactly that time (several can share a timestamp; those not yet taken are still new)."""

    watermark: float = 0.0
    at_watermark: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, text: str | None) -> "Cursor":
        if not text:
            return cls()
        data = json.loads(text)
        return cls(float(data["watermark"]), frozenset(data["at_watermark"]))

    def dump(self) -> str:
        return json.dumps({"watermark": self.watermark, "at_watermark": sorted(self.at_watermark)})

    def is_new(self, upload: Upload) -> bool:
        return upload.modified > self.watermark or (
            upload.modified == self.watermark and _key(upload) not in self.at_watermark
        )

    def advanced(self, taken: list[Upload]) -> "Cursor":
        if not taken:
            return self
        watermark = max(self.watermark, taken[-1].modified)
        same = {_key(u) for u in taken if u.modified == watermark}
        if watermark == self.watermark:
            same |= self.at_watermark
        return Cursor(watermark, frozenset(same))


def _key(upload: Upload) -> str:
    return f"{upload.user_id}/{upload.name}@{upload.identity}"


def _skip_reason(relative: str, upload: Upload, now: float, settle_seconds: float) -> str | None:
    """Why an object in the bucket is not an export to import now (None: it is)."""
    parts = relative.split("/")
    if len(parts) != 2:
        return "not at {uploads}/{user_id}/{file}"
    if not is_export_name(upload.name):
        return "not an export file name"
    if upload.size == 0:
        return "empty object"
    if now - upload.modified < settle_seconds:
        return "still being written"
    return None


def _valid_user_id(user_id: str) -> bool:
    try:
        validate_user_id(user_id)
    except InvalidUserIdError:
        return False
    return True


def last_imported_identity(instance: dg.DagsterInstance, user_id: str) -> str | None:
    """The upload identity of the user's latest ``raw_export`` materialization."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("raw_export"), asset_partitions=[user_id]),
        limit=1,
    ).records
    if not records:
        return None
    metadata = records[0].asset_materialization.metadata
    value = metadata.get("upload_identity")
    return value.value if value is not None else None


def already_imported(
    instance: dg.DagsterInstance, profiles: ProfilesResource, upload: Upload
) -> bool:
    """Whether this exact upload was imported already.

    Yes when the user's last ``raw_export`` came from the same object (its identity) and that
    import did not fail (so re-uploading after a failure imports again); and, for a user this
    Dagster instance has no history of (a first start on a bucket that was imported before),
    when their saved soulprint is newer than the upload.
    """
    row = profiles.store.get(upload.user_id) or {}
    last = last_imported_identity(instance, upload.user_id)
    if last is not None:
        return last == upload.identity and row.get("import_status") != "failed"
    updated = row.get("updated_at")
    return (
        row.get("import_status") == "complete"
        and updated is not None
        and updated.timestamp() > upload.modified
    )


@dg.sensor(
    name="upload_sensor",
    target=import_user,
    minimum_interval_seconds=int_setting("SOULPRINT_SENSOR_INTERVAL_SECONDS", 30),
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def upload_sensor(
    context: dg.SensorEvaluationContext, uploads: UploadsResource, profiles: ProfilesResource
) -> dg.SensorResult | dg.SkipReason:
    """Each new or replaced export under ``{uploads}/{user_id}/`` starts that user's import."""
    cursor = Cursor.parse(context.cursor)
    max_runs = int_setting("SOULPRINT_SENSOR_MAX_RUNS_PER_TICK", 50)
    settle = int_setting("SOULPRINT_SENSOR_SETTLE_SECONDS", 10, minimum=0)
    now = time.time()
    fresh: list[tuple[Upload, str | None]] = []
    for relative, upload in uploads.list_uploads():
        if cursor.is_new(upload):
            reason = _skip_reason(relative, upload, now, settle)
            if reason is None and not _valid_user_id(upload.user_id):
                reason = "invalid user id"
            fresh.append((upload, reason))
    fresh.sort(key=lambda item: (item[0].modified, item[0].user_id, item[0].name))
    # In time order: exports are taken (up to the cap), what is not an export is passed over
    # for good, and an upload still being written stops the tick there, so the cursor never
    # moves past it and nothing is dropped.
    taken: list[Upload] = []
    passed: list[Upload] = []
    skipped: Counter[str] = Counter()
    for upload, reason in fresh:
        if reason == "still being written" or (reason is None and len(taken) == max_runs):
            break
        passed.append(upload)
        if reason is None:
            taken.append(upload)
        else:
            skipped[reason] += 1
    for reason, count in sorted(skipped.items()):
        context.log.info(f"skipped {count} object(s): {reason}")
    requests = []
    new_users = []
    for upload in taken:
        if already_imported(context.instance, profiles, upload):
            context.log.info(f"skipping {upload.user_id}/{upload.name}: imported already")
            continue
        if not context.instance.has_dynamic_partition(users.name, upload.user_id):
            new_users.append(upload.user_id)
        requests.append(
            dg.RunRequest(
                run_key=f"{upload.user_id}:{upload.identity}",
                partition_key=upload.user_id,
                tags={UPLOAD_TAG: upload.url, IDENTITY_TAG: upload.identity},
            )
        )
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[users.build_add_request(sorted(set(new_users)))]
        if new_users
        else [],
        cursor=cursor.advanced(passed).dump(),
    )


@dg.run_status_sensor(
    name="import_queued_sensor",
    run_status=dg.DagsterRunStatus.QUEUED,
    monitored_jobs=[import_user],
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=5,
)
def import_queued_sensor(context: dg.RunStatusSensorContext, profiles: ProfilesResource) -> None:
    """Once an upload's run is really queued (Dagster drops requests whose run key it has
    seen), the person's row shows ``processing``, stage Queued, 0 %."""
    run = context.dagster_run  # read when the tick runs: its status is current
    if run.status != dg.DagsterRunStatus.QUEUED:
        return  # started or finished already: its steps own the row now
    user_id = run.tags.get(PARTITION_TAG)
    if user_id and UPLOAD_TAG in run.tags:
        ProgressTracker(user_id, profiles.store).start(QUEUED)


@dg.run_failure_sensor(
    name="import_failure_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    monitor_all_code_locations=True,
    minimum_interval_seconds=15,
)
def import_failure_sensor(context: dg.RunFailureSensorContext, profiles: ProfilesResource) -> None:
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
        message_for_person(errors[0])
        if errors
        else "The import stopped unexpectedly (its worker ended); please upload again."
    )
    record_failure(store, user_id, message)
