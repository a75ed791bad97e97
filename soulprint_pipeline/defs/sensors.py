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
    BATCH_TAG,
    IDENTITY_TAG,
    IMPORT_BATCH_VALUE,
    IMPORT_COMMAND,
    PARTITION_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    RUNNER_TAG,
    UPLOAD_TAG,
    UPLOADS_TAG,
    uploads_of_run,
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

#: New users per upload batch run at most, when ``SOULPRINT_IMPORT_BATCH`` is not set: a
#: wave of new users' uploads larger than the runs a tick may request is spread over those
#: runs, up to this many users a run; a smaller one gets a run per upload.
DEFAULT_IMPORT_BATCH = 10

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
    if uploads:
        # a batch run names its users' uploads in one tag: the batch runs created since the
        # oldest of these uploads was written (an hour's slack for the storage's clock)
        since = datetime.fromtimestamp(min(u.modified for u in uploads) - 3600, UTC)
        for record in _batch_runs(instance, created_after=since):
            for user_id, (_, identity) in uploads_of_run(record.dagster_run.tags).items():
                found.add((user_id, identity))
    return found


def _batch_runs(
    instance: dg.DagsterInstance,
    statuses: list[dg.DagsterRunStatus] | None = None,
    created_after: datetime | None = None,
) -> list[dg.RunRecord]:
    """The upload sensor's batch runs (several new users' imports a run)."""
    return list(
        instance.get_run_records(
            dg.RunsFilter(
                job_name=import_user.name,
                tags={BATCH_TAG: IMPORT_BATCH_VALUE},
                statuses=statuses or [],
                created_after=created_after,
            )
        )
    )


#: A run not finished yet (waiting in the queue or running).
_IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def users_in_batches(instance: dg.DagsterInstance) -> set[str]:
    """The users of the upload batch runs not finished yet: a new upload of one of them waits
    until their batch ends (the run queue's one-run-per-user limit reads the partition tag,
    which a batch run has not)."""
    return {
        user_id
        for record in _batch_runs(instance, statuses=_IN_FLIGHT)
        for user_id in uploads_of_run(record.dagster_run.tags)
    }


def batch_size(new_users: int, runs: int, largest: int) -> int:
    """Users per batch run for ``new_users`` new users' uploads when ``runs`` runs may be
    requested: spread over those runs (so a lone upload, or a few with the queue free, each
    get their own run at once), at most ``largest`` (``SOULPRINT_IMPORT_BATCH``) a run."""
    return max(1, min(largest, -(-new_users // max(1, runs))))


def _import_requests(
    imports: list[Upload], new_users: list[Upload], runs: int, largest: int
) -> list[dg.RunRequest]:
    """The runs of this tick: one per upload of a known user (``imports``), and the new users'
    (``new_users``, whose partitions this tick adds in user id order) in batches over
    contiguous ranges of those partitions, one run per upload where a batch would be one."""
    requests = [_one_user(upload) for upload in imports]
    size = batch_size(len(new_users), runs - len(requests), largest)
    ordered = sorted(new_users, key=lambda u: u.user_id)
    for start in range(0, len(ordered), size):
        chunk = ordered[start : start + size]
        requests.append(_one_user(chunk[0]) if len(chunk) == 1 else _batch(chunk))
    return requests


def _one_user(upload: Upload) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=f"{upload.user_id}:{upload.identity}",
        partition_key=upload.user_id,
        tags={UPLOAD_TAG: upload.url, IDENTITY_TAG: upload.identity},
    )


def _batch(chunk: list[Upload]) -> dg.RunRequest:
    """A run over the range of ``chunk``'s users (new partitions, added in this order), with
    Dagster's range tags, as a backfill's batch run is tagged; its key hashes every user's
    upload, so a request made again (a tick evaluated twice) is dropped by Dagster."""
    named = {u.user_id: [u.url, u.identity] for u in chunk}
    digest = hashlib.blake2b(json.dumps(named, sort_keys=True).encode(), digest_size=8)
    return dg.RunRequest(
        run_key=f"batch:{chunk[0].user_id}..{chunk[-1].user_id}:{digest.hexdigest()}",
        tags={
            RANGE_START_TAG: chunk[0].user_id,
            RANGE_END_TAG: chunk[-1].user_id,
            BATCH_TAG: IMPORT_BATCH_VALUE,
            UPLOADS_TAG: json.dumps(named),
        },
    )


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
        "mtime; adds the user's partition. A wave of new users larger than the runs a tick "
        "may request is imported in batch runs over ranges of their new partitions "
        "(SOULPRINT_IMPORT_BATCH users a run at most). Skips what is not an export, still "
        "being written, imported already or a link out of the uploads folder, with a count "
        "per reason."
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
    plan = _Plan(context, profiles, max_runs)
    # Late uploads first (they are the oldest), then in time order: exports are taken (up to
    # the runs this tick may request), what is not an export is passed over for good, and an
    # upload still being written stops the tick there, so the cursor never moves past it and
    # nothing is dropped. An upload left for later (no room this tick, or its user's batch run
    # not finished) is kept out of the digests, so a later tick finds it behind the watermark.
    deferred: set[int] = set()
    for upload in late:
        if plan.offer(upload) in (_FULL, _WAIT):
            deferred.add(_key_hash(upload))
    passed: list[Upload] = []
    skipped = plan.skipped
    for upload, reason in fresh:
        if reason == STILL_BEING_WRITTEN:
            break
        if reason is None:
            outcome = plan.offer(upload)
            if outcome == _FULL:
                break
            if outcome == _WAIT:
                deferred.add(_key_hash(upload))
        else:
            skipped[reason] += 1
        passed.append(upload)
    left = [reason for _, reason in fresh[len(passed) :]]
    if writing := left.count(STILL_BEING_WRITTEN):
        skipped[STILL_BEING_WRITTEN] += writing
    if waiting := left.count(None) + len(deferred) - plan.waiting:
        skipped[f"waiting for the next tick ({why})"] += waiting
    if plan.waiting:
        skipped["waiting for their user's batch run to end"] += plan.waiting
    for reason, count in sorted(skipped.items()):
        context.log.info(f"skipped {count} object(s): {reason}")

    requests = _import_requests(plan.imports, plan.new, max_runs, plan.largest)
    batches = sum(1 for r in requests if r.partition_key is None)
    if batches:
        size = batch_size(len(plan.new), max_runs - len(plan.imports), plan.largest)
        context.log.info(
            f"{len(plan.new)} new users' uploads in {batches} batch run(s) of at most {size} "
            f"users (SOULPRINT_IMPORT_BATCH={plan.largest})"
        )
    new_users = sorted({u.user_id for u in plan.new})
    # handled behind the new watermark: what was behind and the exports passed now, less the
    # uploads left for a later tick
    handled = [u for u in behind if _key_hash(u) not in deferred]
    handled += [
        u for u, reason in fresh[: len(passed)] if reason is None and _key_hash(u) not in deferred
    ]
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[users.build_add_request(new_users)] if new_users else [],
        cursor=cursor.advanced(passed, digests_of(handled)).dump(),
        skip_reason=None if requests else dg.SkipReason(_skip_message(skipped, listed)),
    )


_TAKEN, _SKIPPED, _WAIT, _FULL = "taken", "skipped", "wait", "full"


class _Plan:
    """The runs a tick requests, as uploads are offered in order: an upload of a known user is
    a run of its own; new users' uploads go in batches (``SOULPRINT_IMPORT_BATCH`` a run at
    most, counted so here); no more than ``max_runs`` runs in all."""

    def __init__(
        self, context: dg.SensorEvaluationContext, profiles: ProfilesResource, max_runs: int
    ) -> None:
        self.context = context
        self.profiles = profiles
        self.max_runs = max_runs
        self.largest = int_setting("SOULPRINT_IMPORT_BATCH", DEFAULT_IMPORT_BATCH)
        self.imports: list[Upload] = []
        self.new: list[Upload] = []
        self._new_users: set[str] = set()
        self.skipped: Counter[str] = Counter()
        self.waiting = 0
        self._busy: set[str] | None = None

    def _runs(self, imports: int, new: int) -> int:
        return imports + -(-new // self.largest)

    def offer(self, upload: Upload) -> str:
        """Takes ``upload`` into a run of this tick, or says why not."""
        instance = self.context.instance
        user_id = upload.user_id
        if self._busy is None:
            self._busy = users_in_batches(instance)
        if user_id in self._busy or (self.largest > 1 and user_id in self._new_users):
            # one import per user at a time: a user of a batch run (or maybe of this tick's)
            # is imported again once it ended
            self.waiting += 1
            return _WAIT
        is_new = not instance.has_dynamic_partition(users.name, user_id)
        imports, new = len(self.imports) + (not is_new), len(self.new) + is_new
        if self._runs(imports, new) > self.max_runs:
            return _FULL
        if already_imported(instance, self.profiles, upload):
            self.context.log.info(f"skipping an upload of {user_id}: imported already")
            self.skipped["imported already"] += 1
            return _SKIPPED
        if is_new:
            self.new.append(upload)
            self._new_users.add(user_id)
        else:
            self.imports.append(upload)
        return _TAKEN


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
    store = profiles.store
    for user_id in uploads_of_run(run.tags):  # the run's user, or each user of a batch run
        # a complete user stays complete until a new soulprint is saved
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
