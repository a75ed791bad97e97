"""Sensors: a new upload starts that user's import; the app hears when it is queued or failed."""

import base64
import hashlib
import json
import os
import time
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg

from soulprint_pipeline.defs.jobs import import_user
from soulprint_pipeline.defs.partitions import (
    IDENTITY_TAG,
    IMPORT_COMMAND,
    PARTITION_TAG,
    RUNNER_TAG,
    UPLOAD_TAG,
    users,
    users_of_run,
    users_to_tell,
)
from soulprint_pipeline.defs.resources import ProfilesResource, UploadsResource, int_setting
from soulprint_pipeline.errors import message_for_person
from soulprint_pipeline.mirror.progress import QUEUED, ProgressTracker, is_quiet, record_failure
from soulprint_pipeline.uploads import Upload, is_export_name
from soulprint_pipeline.users import InvalidUserIdError, validate_user_id

#: Users are spread over this many buckets; the cursor keeps one digest per bucket.
BUCKETS = 64
_MASK = (1 << 64) - 1


def _hash_key(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


def _key_hash(upload: Upload) -> int:
    """A stable 64-bit hash of an upload's place and identity (the cursor never holds names)."""
    return _hash_key(f"{upload.user_id}/{upload.name}@{upload.identity}")


def _bucket(user_id: str) -> int:
    return zlib.crc32(user_id.encode()) % BUCKETS


def digests_of(uploads: Iterable[Upload]) -> tuple[int, ...]:
    """Per bucket, the sum of the uploads' hashes: equal sums, same uploads (in practice)."""
    sums = [0] * BUCKETS
    for upload in uploads:
        bucket = _bucket(upload.user_id)
        sums[bucket] = (sums[bucket] + _key_hash(upload)) & _MASK
    return tuple(sums)


@dataclass(frozen=True)
class Cursor:
    """How far the sensor has looked, in a constant size whatever the bucket holds.

    ``watermark`` is the newest upload time passed, ``at_watermark`` the hashes of the uploads
    passed at exactly that time (several can share a timestamp; those not yet passed are still
    new). An upload at or before the watermark can still be new: moved into place with its old
    mtime, or an S3 multipart upload, whose ``LastModified`` is when it started. So ``behind``
    holds, per bucket of users, a digest of the exports behind the watermark that are handled
    (requested, or seen to be imported already): a bucket whose digest no longer matches the
    listing has an upload the sensor has not handled, and only that bucket is checked against
    the run history. ``None`` (a cursor written before digests existed): every bucket once.
    """

    watermark: float = 0.0
    at_watermark: frozenset[int] = frozenset()
    behind: tuple[int, ...] | None = None

    @classmethod
    def parse(cls, text: str | None) -> "Cursor":
        """The cursor of a tick (an empty one when there is none)."""
        if not text:
            return cls(behind=digests_of(()))
        data = json.loads(text)
        at = frozenset(
            # earlier cursors kept the keys themselves ("user/name@identity")
            _hash_key(item) if "/" in item else int(item, 16)
            for item in data.get("at_watermark", [])
        )
        behind = None
        if "behind" in data:
            raw = base64.b64decode(data["behind"])
            behind = tuple(int.from_bytes(raw[i : i + 8], "big") for i in range(0, len(raw), 8))
            if len(behind) != BUCKETS:
                behind = None
        return cls(float(data["watermark"]), at, behind)

    def dump(self) -> str:
        """The cursor as stored by Dagster (about 800 characters)."""
        behind = b"".join(d.to_bytes(8, "big") for d in self.behind or digests_of(()))
        return json.dumps(
            {
                "watermark": self.watermark,
                "at_watermark": sorted(f"{h:016x}" for h in self.at_watermark),
                "behind": base64.b64encode(behind).decode(),
            }
        )

    def is_new(self, upload: Upload) -> bool:
        """Whether ``upload`` is after the watermark (to be taken in time order)."""
        return upload.modified > self.watermark or (
            upload.modified == self.watermark and _key_hash(upload) not in self.at_watermark
        )

    def advanced(self, passed: list[Upload], behind: tuple[int, ...]) -> "Cursor":
        """The cursor past the uploads ``passed`` (in time order), with new digests."""
        if not passed:
            return Cursor(self.watermark, self.at_watermark, behind)
        watermark = max(self.watermark, passed[-1].modified)
        same = {_key_hash(u) for u in passed if u.modified == watermark}
        if watermark == self.watermark:
            same |= self.at_watermark
        return Cursor(watermark, frozenset(same), behind)


STILL_BEING_WRITTEN = "still being written"


def _skip_reason(relative: str, upload: Upload, now: float, settle_seconds: float) -> str | None:
    """Why an object in the bucket is not an export to import now (None: it is)."""
    parts = relative.split("/")
    if len(parts) != 2:
        return "not at {uploads}/{user_id}/{file}"
    if not is_export_name(upload.name):
        return "not an export file name"
    if upload.escapes_root:
        return "a link to a file outside the uploads folder"
    if upload.size == 0:
        return "empty object"
    if now - upload.modified < settle_seconds:
        return STILL_BEING_WRITTEN
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


#: Runs requested a tick when neither SOULPRINT_SENSOR_MAX_RUNS_PER_TICK nor a run queue
#: limit says otherwise.
DEFAULT_MAX_RUNS_PER_TICK = 50

#: Identities looked up in the run history per query (well under SQLite's variable limit).
_LOOKUP_CHUNK = 500


def runs_per_tick(instance: dg.DagsterInstance) -> tuple[int, str]:
    """How many runs this tick may request, and why (a line for the tick's log).

    ``SOULPRINT_SENSOR_MAX_RUNS_PER_TICK`` when set. Otherwise the instance's run queue sets
    it: enough import runs to keep ``max_concurrent_runs`` of them waiting, so the backlog
    drains exactly as fast as the queue starts runs, and the queue never holds more than one
    round of waiting runs (a launch-day backlog stays in the bucket, not in the run table).
    """
    if os.getenv("SOULPRINT_SENSOR_MAX_RUNS_PER_TICK", "").strip():
        cap = int_setting("SOULPRINT_SENSOR_MAX_RUNS_PER_TICK", DEFAULT_MAX_RUNS_PER_TICK)
        return cap, f"SOULPRINT_SENSOR_MAX_RUNS_PER_TICK={cap}"
    queue = instance.get_concurrency_config().run_queue_config
    if queue is None or queue.max_concurrent_runs < 1:
        return DEFAULT_MAX_RUNS_PER_TICK, "no run queue limit: the default"
    waiting = instance.get_runs_count(
        dg.RunsFilter(
            job_name=import_user.name,
            statuses=[dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED],
        )
    )
    cap = max(0, queue.max_concurrent_runs - waiting)
    return cap, f"run queue: max_concurrent_runs={queue.max_concurrent_runs}, {waiting} waiting"


def requested_before(instance: dg.DagsterInstance, uploads: list[Upload]) -> set[tuple[str, str]]:
    """The (user id, identity) pairs among ``uploads`` that an import run was requested for.

    The run history is the durable record (each run carries its upload's identity tag), so
    the cursor need not remember every object; asked only for the buckets that changed.
    """
    found: set[tuple[str, str]] = set()
    identities = sorted({upload.identity for upload in uploads})
    for start in range(0, len(identities), _LOOKUP_CHUNK):
        records = instance.get_run_records(
            dg.RunsFilter(
                job_name=import_user.name,
                tags={IDENTITY_TAG: identities[start : start + _LOOKUP_CHUNK]},
            )
        )
        for record in records:
            tags = record.dagster_run.tags
            found.add((tags.get(PARTITION_TAG, ""), tags.get(IDENTITY_TAG, "")))
    return found


def _skip_message(skipped: Counter[str], listed: int) -> str:
    if not skipped:
        return f"No new upload among {listed:,} objects."
    counts = ", ".join(f"{count:,} {reason}" for reason, count in sorted(skipped.items()))
    return f"No run requested ({listed:,} objects): {counts}."


@dg.sensor(
    name="upload_sensor",
    target=import_user,
    minimum_interval_seconds=int_setting("SOULPRINT_SENSOR_INTERVAL_SECONDS", 30),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Lists the uploads bucket ({uploads}/{user_id}/{file}) and starts the import_user run "
        "of each export it has not imported yet (by ETag, or size and mtime), whatever its "
        "mtime; adds the user's partition. Skips what is not an export, still being written, "
        "imported already or a link out of the uploads folder, with a count per reason."
    ),
)
def upload_sensor(
    context: dg.SensorEvaluationContext, uploads: UploadsResource, profiles: ProfilesResource
) -> dg.SensorResult:
    """Each new or replaced export under ``{uploads}/{user_id}/`` starts that user's import."""
    cursor = Cursor.parse(context.cursor)
    settle = int_setting("SOULPRINT_SENSOR_SETTLE_SECONDS", 10, minimum=0)
    now = time.time()
    valid_users: dict[str, bool] = {}
    fresh: list[tuple[Upload, str | None]] = []
    behind: list[Upload] = []
    listed = 0
    for relative, upload in uploads.list_uploads():
        listed += 1
        reason = _skip_reason(relative, upload, now, settle)
        if reason is None:
            valid = valid_users.get(upload.user_id)
            if valid is None:
                valid = valid_users[upload.user_id] = _valid_user_id(upload.user_id)
            if not valid:
                reason = "invalid user id"
        if cursor.is_new(upload):
            fresh.append((upload, reason))
        elif reason is None:
            behind.append(upload)
    fresh.sort(key=lambda item: (item[0].modified, item[0].user_id, item[0].name))

    # Behind the watermark, only a bucket whose digest changed can hold an upload not handled:
    # those uploads are looked up in the run history; the rest of the bucket costs nothing.
    digests = digests_of(behind)
    changed = {b for b in range(BUCKETS) if cursor.behind is None or cursor.behind[b] != digests[b]}
    late: list[Upload] = []
    if changed:
        suspects = [u for u in behind if _bucket(u.user_id) in changed]
        done = requested_before(context.instance, suspects)
        late = [u for u in suspects if (u.user_id, u.identity) not in done]
        late.sort(key=lambda u: (u.modified, u.user_id, u.name))
        if late:
            context.log.info(f"{len(late)} upload(s) arrived behind the watermark")

    max_runs, why = runs_per_tick(context.instance)
    # Late uploads first (they are the oldest), then in time order: exports are taken (up to
    # the cap), what is not an export is passed over for good, and an upload still being
    # written stops the tick there, so the cursor never moves past it and nothing is dropped.
    taken = late[:max_runs]
    deferred = {_key_hash(u) for u in late[max_runs:]}
    passed: list[Upload] = []
    skipped: Counter[str] = Counter()
    for upload, reason in fresh:
        if reason == STILL_BEING_WRITTEN or (reason is None and len(taken) >= max_runs):
            break
        passed.append(upload)
        if reason is None:
            taken.append(upload)
        else:
            skipped[reason] += 1
    left = [reason for _, reason in fresh[len(passed) :]]
    if writing := left.count(STILL_BEING_WRITTEN):
        skipped[STILL_BEING_WRITTEN] += writing
    if waiting := left.count(None) + len(deferred):
        skipped[f"waiting for the next tick ({why})"] += waiting
    for reason, count in sorted(skipped.items()):
        context.log.info(f"skipped {count} object(s): {reason}")

    requests = []
    new_users = []
    for upload in taken:
        if already_imported(context.instance, profiles, upload):
            context.log.info(f"skipping an upload of {upload.user_id}: imported already")
            skipped["imported already"] += 1
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
    # handled behind the new watermark: what was behind (less the late uploads left for the
    # next tick) and the exports passed now
    handled = [u for u in behind if not deferred or _key_hash(u) not in deferred]
    handled += [u for u, reason in fresh[: len(passed)] if reason is None]
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[users.build_add_request(sorted(set(new_users)))]
        if new_users
        else [],
        cursor=cursor.advanced(passed, digests_of(handled)).dump(),
        skip_reason=None if requests else dg.SkipReason(_skip_message(skipped, listed)),
    )


@dg.run_status_sensor(
    name="import_queued_sensor",
    run_status=dg.DagsterRunStatus.QUEUED,
    monitored_jobs=[import_user],
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=5,
    description=(
        "When an import_user run started by an upload is queued, sets the person's "
        "user_profiles row to processing, stage Queued, 0 %."
    ),
)
def import_queued_sensor(context: dg.RunStatusSensorContext, profiles: ProfilesResource) -> None:
    """Once an upload's run is really queued (Dagster drops requests whose run key it has
    seen), the person's row shows ``processing``, stage Queued, 0 %."""
    run = context.dagster_run  # read when the tick runs: its status is current
    if run.status != dg.DagsterRunStatus.QUEUED:
        return  # started or finished already: its steps own the row now
    user_id = run.tags.get(PARTITION_TAG)
    if user_id and UPLOAD_TAG in run.tags:
        store = profiles.store  # a complete user stays complete until a new soulprint is saved
        ProgressTracker(user_id, store, quiet=is_quiet(store, user_id)).start(QUEUED)


#: What the person is told when their run's worker ended with no error of its own.
WORKER_ENDED = "The import stopped unexpectedly (its worker ended); please upload again."


@dg.run_failure_sensor(
    name="import_failure_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    monitor_all_code_locations=True,
    minimum_interval_seconds=15,
    description=(
        "When a run of a user's partition fails and the row still says processing or "
        "quick_ready, or was never written (its worker died, it ran without the job's hook, the "
        "mirror was down), ends the row failed with a message fit for the person; for a "
        "backfill's batch run, each user of its range it had not saved. A tick that cannot "
        "reach the mirror fails and is tried again."
    ),
)
def import_failure_sensor(context: dg.RunFailureSensorContext, profiles: ProfilesResource) -> None:
    """A failed run whose steps could not say why (its worker died, it was launched from the UI
    without the job's hook) still ends as ``failed`` in the app: for a backfill's batch run,
    every user of its range that it had not saved."""
    user_ids = users_to_tell(context.instance, context.dagster_run)
    if not user_ids:
        return
    errors = [
        event.step_failure_data.error
        for event in context.get_step_failure_events()
        if event.step_failure_data and event.step_failure_data.error
    ]
    message = message_for_person(errors[0]) if errors else WORKER_ENDED
    store = profiles.store
    for user_id in user_ids:
        row = store.get(user_id)
        # a row still working (or never written: the mirror was down all along) is told; one
        # that is failed was told by the hook or the batch, one that is complete keeps its
        # soulprint
        if row is None or row.get("import_status") in ("processing", "quick_ready"):
            record_failure(store, user_id, message)


#: The message Dagster's own run worker logs when it starts, with its pid in the metadata.
_WORKER_STARTED = "Started process for run"


@dg.sensor(
    name="dead_run_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Fails a run of users' partitions (an import, a re-run, a backfill's batch run) whose "
        "worker process is gone (killed, out of memory) within a tick, so "
        "import_failure_sensor tells the app, instead of the run saying STARTED until "
        "run monitoring's max runtime. For the default run launcher, whose workers run on this "
        "machine; other launchers check their own workers through run monitoring."
    ),
)
def dead_run_sensor(
    context: dg.SensorEvaluationContext, profiles: ProfilesResource
) -> dg.SkipReason:
    """Fail STARTED runs of users' partitions whose worker process no longer exists, and fail
    again the rows of a recently failed run that a dying step wrote back to ``processing``."""
    instance = context.instance
    restored = _restore_failed_rows(instance, profiles)
    if type(instance.run_launcher).__name__ != "DefaultRunLauncher":
        return dg.SkipReason(
            f"{restored} rows of failed runs restored to failed; this instance's run launcher "
            "reports its own workers' health"
        )
    # every run of users' partitions: imports, re-runs from the UI, a backfill's batch runs
    started = [
        run
        for run in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
        if users_of_run(instance, run.tags)
    ]
    failed = 0
    for run in started:
        if run.tags.get(RUNNER_TAG) == IMPORT_COMMAND:
            continue  # runs in the import command's own process: its next import fails them
        pid = _worker_pid(instance, run.run_id)
        if pid is None or _is_running(pid):
            continue
        instance.report_run_failed(run, f"its worker process (pid {pid}) is gone")
        context.log.info(f"run {run.run_id}: worker {pid} is gone, run marked failed")
        failed += 1
    return dg.SkipReason(
        f"{len(started)} runs of users started, {failed} with a dead worker failed; "
        f"{restored} rows of failed runs restored to failed"
    )


#: How long after a run failed its row is still watched: a dying run's step processes are
#: ended by Dagster within seconds, and one may write its progress after the failure was told.
_WATCH_FAILED_SECONDS = 600


def _restore_failed_rows(instance: dg.DagsterInstance, profiles: ProfilesResource) -> int:
    """Rows that say ``processing`` or ``quick_ready`` although the latest run of their user
    (an import, a re-run, a batch run over a range of users) failed in the last minutes: a
    step of the dead run wrote its progress after ``import_failure_sensor`` had told the
    app. Failed again, with the message they hold; users a batch run saved are left alone."""
    ended = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
    recent = instance.get_run_records(
        dg.RunsFilter(
            statuses=list(ended),
            updated_after=datetime.now(UTC) - timedelta(seconds=_WATCH_FAILED_SECONDS),
        )
    )
    told = {
        record.dagster_run.run_id: users_to_tell(instance, record.dagster_run) for record in recent
    }
    told = {run_id: user_ids for run_id, user_ids in told.items() if user_ids}
    if not told:
        return 0
    # each user's latest run, among those created since the oldest of these failed runs
    since = min(r.create_timestamp for r in recent if r.dagster_run.run_id in told)
    latest: dict[str, dg.RunRecord] = {}
    for record in [*recent, *instance.get_run_records(dg.RunsFilter(created_after=since))]:
        for user_id in users_of_run(instance, record.dagster_run.tags):
            known = latest.get(user_id)
            if known is None or record.create_timestamp > known.create_timestamp:
                latest[user_id] = record
    restored = 0
    for run_id, user_ids in told.items():
        for user_id in user_ids:
            if latest[user_id].dagster_run.run_id != run_id:
                continue  # a newer run owns the row
            row = profiles.store.get(user_id)
            if row is not None and row.get("import_status") in ("processing", "quick_ready"):
                record_failure(profiles.store, user_id, row.get("import_error") or WORKER_ENDED)
                restored += 1
    return restored


def _worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        if (record.dagster_event.message or "").startswith(_WORKER_STARTED):
            pid = record.dagster_event.engine_event_data.metadata.get("pid")
            return int(pid.value) if pid is not None else None
    return None


def _is_running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (a killed worker its parent, the code
    server, has not reaped yet still answers a signal)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:  # no /proc (not Linux): the signal's answer is all there is
        return True
