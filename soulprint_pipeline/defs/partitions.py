"""One dynamic partition per user (the key is the user id), and every run tag the pipeline
reads or sets."""

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
