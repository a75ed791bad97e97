"""The lake IO manager: owns every path, streams every byte through fsspec and ijson.

What each asset hands over and gets back:

=====================  ==============================  ====================================
asset                  output (handled here)           input (to the next asset)
=====================  ==============================  ====================================
raw_export             :class:`ExportCopy`: copied     an ``ExportReader`` on the lake copy
                       in chunks, with sha256          (nothing read until iterated)
conversation_batches   an iterable of record batches   :class:`~soulprint_pipeline.lake.store.
                       (the reader): Parquet parts,    StoredParts`, a lazy reader of parts
                       written as it is consumed
quick_pass_soulprint   :class:`SoulprintToSave`:       the sections (a small JSON file)
                       the sections, and the activity
                       picture beside them
=====================  ==============================  ====================================

Every write goes to a fresh version folder, staged with a manifest naming the upstream
versions it was computed from, and switched in atomically (see lake/store.py). A run reads the
upstream versions it wrote itself (found through its own materializations' ``lake_version``),
never whatever another writer made current meanwhile; and a version is made current, with
the chain it was computed from, by the last lake asset of that chain the run materializes
(an import's soulprint), so a run that dies midway leaves the previous chain current.
"""

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from soulprint_pipeline.defs.metadata import image_markdown, sized
from soulprint_pipeline.defs.resources import S3Settings
from soulprint_pipeline.errors import StorageError
from soulprint_pipeline.export.containers import MiB, open_export
from soulprint_pipeline.export.reader import ExportReader
from soulprint_pipeline.export.rows import DICTIONARY_COLUMNS
from soulprint_pipeline.lake.store import DEFAULT_KEEP_SECONDS, Lake, StoredParts, Version
from soulprint_pipeline.soulprint.activity import PICTURE_VERSION
from soulprint_pipeline.soulprint.field_evidence import sections_of, stored_soulprint
from soulprint_pipeline.uploads import Upload

#: The activity picture's file name in the soulprint's version folder.
ACTIVITY_PNG = "activity.png"

#: Called with (bytes done, bytes in all).
Progress = Callable[[int, int], None]

#: The resource key of the lake IO manager.
LAKE = "lake"

#: The materialization metadata naming the lake version an output was stored in.
LAKE_VERSION = "lake_version"


class LakeExport(ExportReader):
    """A reader of the lake copy of an upload, knowing which version of it it reads."""

    def __init__(self, manifest: dict[str, Any], **settings: Any) -> None:
        super().__init__(manifest["url"], **settings)
        self.manifest = manifest


@dataclass
class ExportCopy:
    """An upload to copy into the lake, as ``raw_export``'s output."""

    upload: Upload
    storage_options: dict[str, Any]
    on_progress: Progress | None = None


@dataclass
class SoulprintToSave:
    """The soulprint sections, as ``quick_pass_soulprint``'s output; ``on_saved`` runs once
    they are in the lake (that is when the app may be told the import is complete)."""

    sections: dict[str, Any]
    #: The manifest of the conversation_batches version the soulprint was computed from.
    rows: dict[str, Any]
    #: Told whether this soulprint is still the lake's current one when asked (another run of
    #: the user may replace it at any time).
    on_saved: Callable[[Callable[[], bool]], None] = field(default=lambda still_current: None)
    #: The person's activity as a PNG (counts only), kept beside the soulprint.
    picture: bytes | None = None
    #: The quotes behind the filled fields: in the soulprint's JSON, and nowhere else.
    evidence: dict[str, list[str]] = field(default_factory=dict)


class LakeIOManager(dg.ConfigurableIOManager):
    """Every asset partition under ``url`` (``SOULPRINT_LAKE_URL``), versioned, streamed."""

    url: str
    s3: S3Settings
    #: Processes parsing a sharded export's documents side by side (SOULPRINT_PARSE_WORKERS);
    #: each costs about one parser's memory (~170 MB), so 1 unless memory allows.
    parse_workers: int = 1
    #: How long versions that are not current are kept (SOULPRINT_LAKE_KEEP_SECONDS): a
    #: concurrent writer may still be writing or reading them.
    keep_seconds: int = DEFAULT_KEEP_SECONDS

    def lake(self) -> Lake:
        """The lake this IO manager writes to."""
        return Lake(self.url, self.s3.storage_options(self.url), keep_seconds=self.keep_seconds)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            # a step of several users (an upload batch, a backfill's batch: defs/backfill.py)
            # stored each user's version itself; its one output only lets the steps after run
            return
        lake = self.lake()
        asset = context.asset_key.to_user_string()
        version = lake.new_version(asset, context.partition_key)
        if isinstance(obj, ExportCopy):
            manifest, metadata = self._copy_export(lake, version, obj)
            inputs: dict[str, dict[str, Any]] = {}
        elif isinstance(obj, SoulprintToSave):
            manifest, metadata = self._save_soulprint(lake, version, obj)
            inputs = {"conversation_batches": obj.rows}
        elif isinstance(obj, Iterable):
            manifest, metadata = self._write_parts(lake, version, obj)
            inputs = {"raw_export": obj.manifest} if isinstance(obj, LakeExport) else {}
        else:
            raise TypeError(f"The lake cannot store a {type(obj).__name__} for {asset}.")
        layer = context.step_context.job_def.asset_layer
        read_downstream = read_downstream_in_run(layer, context.asset_key)
        _, metadata = _store(lake, version, manifest, metadata, inputs, obj, read_downstream)
        context.add_output_metadata(metadata)

    def store_copy(
        self, user_id: str, copy: ExportCopy, read_downstream: bool
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Copies one user's upload into the lake as ``handle_output`` does, for a step of
        several users (an upload batch, defs/backfill.py): the staged manifest and the
        materialization's metadata."""
        lake = self.lake()
        version = lake.new_version("raw_export", user_id)
        manifest, metadata = self._copy_export(lake, version, copy)
        return _store(lake, version, manifest, metadata, {}, copy, read_downstream)

    def store_parts(
        self, user_id: str, reader: "LakeExport", read_downstream: bool
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Writes one user's parsed rows as ``handle_output`` does, for a step of several
        users: the staged manifest and the materialization's metadata."""
        lake = self.lake()
        version = lake.new_version("conversation_batches", user_id)
        manifest, metadata = self._write_parts(lake, version, reader)
        inputs = {"raw_export": reader.manifest}
        return _store(lake, version, manifest, metadata, inputs, reader, read_downstream)

    def export_reader(self, manifest: dict[str, Any]) -> "LakeExport":
        """A reader of the raw export version ``manifest`` (nothing read until iterated)."""
        lake = self.lake()
        return LakeExport(
            manifest, storage_options=lake.storage_options or None, workers=self.parse_workers
        )

    def save_soulprint(
        self, user_id: str, soulprint: SoulprintToSave
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Saves one user's soulprint as ``handle_output`` does, for a step of several users
        (a backfill's batch, defs/backfill.py), to which Dagster gives one output for all:
        the staged manifest and the materialization's metadata."""
        lake = self.lake()
        version = lake.new_version("quick_pass_soulprint", user_id)
        manifest, metadata = self._save_soulprint(lake, version, soulprint)
        inputs = {"conversation_batches": soulprint.rows}
        return _store(lake, version, manifest, metadata, inputs, soulprint, False)

    def _save_soulprint(
        self, lake: Lake, version: Version, soulprint: SoulprintToSave
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        manifest: dict[str, Any] = {
            "kind": "json",
            "file": lake.write_json(
                version, "soulprint.json", stored_soulprint(soulprint.sections, soulprint.evidence)
            ),
        }
        metadata: dict[str, Any] = {"path": dg.MetadataValue.path(version.url)}
        if soulprint.picture is not None:
            picture = lake.write_bytes(version, ACTIVITY_PNG, soulprint.picture)
            manifest.update(picture=picture, picture_version=PICTURE_VERSION)
            metadata.update(
                activity=dg.MetadataValue.md(image_markdown(soulprint.picture, picture)),
                activity_path=dg.MetadataValue.path(picture),
                **sized("activity_png_bytes", len(soulprint.picture)),
            )
        return manifest, metadata

    def _copy_export(
        self, lake: Lake, version: Version, copy: ExportCopy
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        started = time.perf_counter()
        copied = lake.copy_in(
            version,
            copy.upload.url,
            storage_options=copy.storage_options,
            file_name=copy.upload.name,
            on_progress=copy.on_progress,
        )
        seconds = time.perf_counter() - started
        with open_export(copied["url"], storage_options=lake.storage_options) as export:
            container, documents = export.container, export.members
        manifest = {"kind": "export", **copied, "container": container, "source": copy.upload.url}
        # counts, sizes, hashes and formats only: the upload's URL and the names inside a ZIP
        # are the person's (a file or folder name they chose), and the version folder is ours
        return manifest, {
            "path": dg.MetadataValue.path(version.url),
            **sized("bytes", copied["bytes"]),
            "sha256": copied["sha256"],
            "container": container,
            "documents": len(documents),
            "copy_mb_per_s": round(copied["bytes"] / MiB / seconds, 1) if seconds else 0.0,
        }

    def _write_parts(
        self, lake: Lake, version: Version, batches: Iterable[Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        started = time.perf_counter()
        parts = lake.write_parts(version, iter(batches), dictionary_columns=DICTIONARY_COLUMNS)
        seconds = time.perf_counter() - started
        stats = getattr(batches, "stats", None)
        manifest: dict[str, Any] = {
            "kind": "parquet",
            "parts": parts.paths,
            "parquet_bytes": parts.bytes_written,
        }
        metadata: dict[str, Any] = {
            "path": dg.MetadataValue.path(version.url),
            "parts": len(parts.paths),
            **sized("parquet_bytes", parts.bytes_written),
            "seconds": round(seconds, 2),
        }
        if stats is not None:
            manifest.update(rows=stats.rows, conversations=stats.conversations)
            metadata.update(_stats_metadata(stats, seconds))
        if isinstance(batches, LakeExport):
            # the bytes the rows were parsed from: a re-parse of the same upload is the same
            # input to the steps after (the memory resumes its staged chunks across it)
            manifest["source_sha256"] = metadata["source_sha256"] = batches.manifest["sha256"]
        return manifest, metadata

    def load_input(self, context: dg.InputContext) -> Any:
        if context.has_asset_partitions and len(context.asset_partition_keys) != 1:
            # a step of several users reads each user's version itself (defs/backfill.py)
            return None
        lake = self.lake()
        asset = context.asset_key.to_user_string()
        step = context.step_context
        manifest = run_manifest(
            lake, step.instance, step.dagster_run, asset, context.asset_partition_key
        )
        if manifest["kind"] == "export":
            return self.export_reader(manifest)
        if manifest["kind"] == "parquet":
            return StoredParts(lake, manifest)
        return sections_of(lake.read_json(manifest["file"]))


def run_manifest(
    lake: Lake, instance: dg.DagsterInstance, run: dg.DagsterRun, asset: str, user_id: str
) -> dict[str, Any]:
    """The manifest of the version of ``asset`` for ``user_id`` that ``run`` (or the run it
    re-executes) stored, else the current one: a run never mixes its own versions with those
    another writer made current meanwhile."""
    key = dg.AssetKey.from_user_string(asset)
    run_id: str | None = run.run_id
    while run_id is not None:
        records = instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        ).records
        for record in reversed(records):
            materialization = record.event_log_entry.asset_materialization
            if (
                materialization is not None
                and materialization.asset_key == key
                and materialization.partition == user_id
                and LAKE_VERSION in materialization.metadata
            ):
                name = materialization.metadata[LAKE_VERSION].value
                manifest = lake.staged(asset, user_id, str(name))
                if manifest is None:
                    raise StorageError(f"The {asset} version this run stored is gone.")
                return manifest
        parent = instance.get_run_by_id(run_id)
        run_id = parent.parent_run_id if parent is not None else None
    return lake.require(asset, user_id)


def _store(
    lake: Lake,
    version: Version,
    manifest: dict[str, Any],
    metadata: dict[str, Any],
    inputs: dict[str, dict[str, Any]],
    obj: Any,
    read_downstream: bool,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Stages a written version with the inputs it came from and, unless an asset of the run
    downstream makes it current with its own, makes its chain current (telling the app of a
    saved soulprint); the staged manifest and the materialization's metadata."""
    staged = lake.stage(version, manifest, inputs)
    metadata[LAKE_VERSION] = version.name
    metadata["lake_inputs"] = dg.MetadataValue.json(staged["inputs"])
    if not read_downstream:
        metadata["superseded"] = not lake.promote_chain(staged)
        if isinstance(obj, SoulprintToSave) and not metadata["superseded"]:
            obj.on_saved(lambda: lake.is_current(staged))
    return staged, metadata


def read_downstream_in_run(layer: Any, asset_key: dg.AssetKey) -> bool:
    """Whether an asset of this run (its job's asset ``layer``) stores into the lake what it
    computes from ``asset_key``: then that asset makes this version current with its own, at
    the end of the chain."""
    selected = layer.selected_asset_keys
    return any(
        child in selected and layer.get(child).io_manager_key == LAKE
        for child in layer.get(asset_key).child_keys
    )


def _per_second(count: int, seconds: float) -> float:
    return round(count / MiB / seconds, 1) if seconds else 0.0


def _stats_metadata(stats: Any, seconds: float) -> dict[str, Any]:
    """What a data engineer reads about a parse: counts and speeds, never the person's text."""
    skipped = dict(sorted(stats.skipped.items()))
    table = "| reason | count |\n|---|---|\n" + "\n".join(
        f"| {reason} | {count} |" for reason, count in skipped.items()
    )
    metadata: dict[str, Any] = {
        "format": stats.format,
        "container": stats.container,
        "backend": stats.backend,
        "conversations": stats.conversations,
        "conversations_with_messages": stats.conversations_with_messages,
        "messages": stats.messages,
        "rows": stats.rows,
        "dagster/row_count": stats.rows,
        "custom_instructions": stats.custom_instructions,
        "memories": stats.memories,
        "rows_by_role": dg.MetadataValue.json(dict(stats.roles)),
        **sized("export_bytes", stats.total_bytes),  # as stored: compressed in a ZIP or gzip
        **sized("json_bytes", stats.json_bytes),  # what the parser read, decompressed
        # both speeds: a ZIP's stored bytes are a fifth to a tenth of the JSON parsed
        "stored_mb_per_s": _per_second(stats.total_bytes, seconds),
        "json_mb_per_s": _per_second(stats.json_bytes, seconds),
        "skipped": dg.MetadataValue.md(table if skipped else "nothing skipped"),
    }
    if stats.first_message_at is not None:
        metadata["first_message_at"] = dg.MetadataValue.timestamp(stats.first_message_at)
        metadata["last_message_at"] = dg.MetadataValue.timestamp(stats.last_message_at)
    return metadata
