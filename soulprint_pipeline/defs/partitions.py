"""One dynamic partition per user (the key is the user id), and every run tag the pipeline
reads or sets."""

import json
from collections.abc import Mapping

import dagster as dg

users = dg.DynamicPartitionsDefinition(name="users")

#: Run tag naming the upload a run imports (set by the upload sensor and the import command).
UPLOAD_TAG = "soulprint/upload"

#: Run tag with the upload's object identity (ETag, or size and mtime) when the sensor knows it.
IDENTITY_TAG = "soulprint/upload_identity"

#: Dagster's own tag with the partition key of a run: the user id.
PARTITION_TAG = "dagster/partition"

#: Run tag of the runs the import command executes in its own process (no daemon watches them).
RUNNER_TAG = "soulprint/runner"
IMPORT_COMMAND = "import-command"

#: Dagster's tags on a run of a range of partitions (a backfill's batch run: BackfillPolicy
#: .multi_run), which carries no PARTITION_TAG.
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"

#: Run tag of the upload sensor's batch runs (several new users' imports in one run), whose
#: value is IMPORT_BATCH_VALUE: how the sensor finds them in the run history.
BATCH_TAG = "soulprint/batch"
IMPORT_BATCH_VALUE = "import"

#: Run tag of a batch run naming each user's upload: JSON ``{user_id: [url, identity]}`` (a
#: batch run has no UPLOAD_TAG or IDENTITY_TAG, which name one upload).
UPLOADS_TAG = "soulprint/uploads"

#: The import's last asset: a batch import saved a user when it materialized this one.
LAST_IMPORT_ASSET = "memory_chunks"


def uploads_of_run(tags: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Each user's upload (URL, identity) that a run imports: a batch run's UPLOADS_TAG, or a
    one-user run's UPLOAD_TAG and IDENTITY_TAG; empty for a run of no upload (a re-run)."""
    if UPLOADS_TAG in tags:
        uploads = json.loads(tags[UPLOADS_TAG])
        return {user_id: (url, identity) for user_id, (url, identity) in uploads.items()}
    if tags.get(PARTITION_TAG) and UPLOAD_TAG in tags:
        return {tags[PARTITION_TAG]: (tags[UPLOAD_TAG], tags.get(IDENTITY_TAG, ""))}
    return {}


def users_of_run(instance: dg.DagsterInstance, tags: Mapping[str, str]) -> list[str]:
    """The users a run works on: its partition, or every user of a batch run's range (the
    ``users`` partitions from its first to its last, in their order); empty for a run of no
    user's partition."""
    if tags.get(PARTITION_TAG):
        return [tags[PARTITION_TAG]]
    first, last = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
    if not first or not last:
        return []
    keys = list(instance.get_dynamic_partitions(users.name))
    if first not in keys or last not in keys:
        return []
    return keys[keys.index(first) : keys.index(last) + 1]


def saved_in_run(instance: dg.DagsterInstance, run: dg.DagsterRun) -> set[str]:
    """The users a batch run saved: each user with a materialization stored in the run (a
    backfill's batch saves and materializes each user on their own), or, for an upload batch,
    of the import's last asset (the assets before it are recorded for the whole batch)."""
    records = instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    last = dg.AssetKey(LAST_IMPORT_ASSET) if run.tags.get(BATCH_TAG) == IMPORT_BATCH_VALUE else None
    return {
        materialization.partition
        for record in records
        if (materialization := record.event_log_entry.asset_materialization) is not None
        and materialization.partition
        and (last is None or materialization.asset_key == last)
    }


def users_to_tell(instance: dg.DagsterInstance, run: dg.DagsterRun) -> list[str]:
    """The users whose row a failed ``run`` must end ``failed`` (if it still says they are
    being worked on): a run's one user, or a batch run's users but those it saved."""
    found = users_of_run(instance, run.tags)
    if PARTITION_TAG in run.tags or not found:
        return found
    saved = saved_in_run(instance, run)
    return [user_id for user_id in found if user_id not in saved]
