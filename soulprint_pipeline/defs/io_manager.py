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

Every write goes to a fresh version folder and is switched in atomically (see lake.py).
"""

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from soulprint_pipeline.defs.metadata import image_markdown, sized
from soulprint_pipeline.defs.resources import S3Settings
from soulprint_pipeline.export.containers import MiB, open_export
from soulprint_pipeline.export.reader import ExportReader
from soulprint_pipeline.export.rows import DICTIONARY_COLUMNS
from soulprint_pipeline.lake.store import Lake, StoredParts
from soulprint_pipeline.uploads import Upload

#: The activity picture's file name in the soulprint's version folder.
ACTIVITY_PNG = "activity.png"

#: Called with (bytes done, bytes in all).
Progress = Callable[[int, int], None]


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
    on_saved: Callable[[], None] = field(default=lambda: None)
    #: The person's activity as a PNG (counts only), kept beside the soulprint.
    picture: bytes | None = None


class LakeIOManager(dg.ConfigurableIOManager):
    """Every asset partition under ``url`` (``SOULPRINT_LAKE_URL``), versioned, streamed."""

    url: str
    s3: S3Settings
    #: Processes parsing a sharded export's documents side by side (SOULPRINT_PARSE_WORKERS);
    #: each costs about one parser's memory (~170 MB), so 1 unless memory allows.
    parse_workers: int = 1

    def lake(self) -> Lake:
        """The lake this IO manager writes to."""
        return Lake(self.url, self.s3.storage_options(self.url))

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        lake = self.lake()
        asset = context.asset_key.to_user_string()
        version = lake.new_version(asset, context.partition_key)
        if isinstance(obj, ExportCopy):
            metadata = self._copy_export(lake, version, obj)
        elif isinstance(obj, SoulprintToSave):
            context.add_output_metadata(self._save_soulprint(lake, version, obj))
            return
        elif isinstance(obj, Iterable):
            metadata = self._write_parts(lake, version, obj)
        else:
            raise TypeError(f"The lake cannot store a {type(obj).__name__} for {asset}.")
        context.add_output_metadata(metadata)

    def save_soulprint(self, user_id: str, soulprint: SoulprintToSave) -> dict[str, Any]:
        """Saves one user's soulprint as ``handle_output`` does, for a step of several users
        (a backfill's batch, defs/backfill.py), to which Dagster gives one output for all."""
        lake = self.lake()
        version = lake.new_version("quick_pass_soulprint", user_id)
        return self._save_soulprint(lake, version, soulprint)

    def _save_soulprint(
        self, lake: Lake, version: Any, soulprint: SoulprintToSave
    ) -> dict[str, Any]:
        manifest: dict[str, Any] = {
            "kind": "json",
            "file": lake.write_json(version, "soulprint.json", soulprint.sections),
        }
        metadata: dict[str, Any] = {"path": dg.MetadataValue.path(version.url)}
        if soulprint.picture is not None:
            picture = lake.write_bytes(version, ACTIVITY_PNG, soulprint.picture)
            manifest["picture"] = picture
            metadata.update(
                activity=dg.MetadataValue.md(image_markdown(soulprint.picture, picture)),
                activity_path=dg.MetadataValue.path(picture),
                **sized("activity_png_bytes", len(soulprint.picture)),
            )
        lake.commit(version, manifest)
        soulprint.on_saved()
        return metadata

    def _copy_export(self, lake: Lake, version: Any, copy: ExportCopy) -> dict[str, Any]:
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
        lake.commit(
            version,
            {"kind": "export", **copied, "container": container, "source": copy.upload.url},
        )
        # counts, sizes, hashes and formats only: the upload's URL and the names inside a ZIP
        # are the person's (a file or folder name they chose), and the version folder is ours
        return {
            "path": dg.MetadataValue.path(version.url),
            **sized("bytes", copied["bytes"]),
            "sha256": copied["sha256"],
            "container": container,
            "documents": len(documents),
            "copy_mb_per_s": round(copied["bytes"] / MiB / seconds, 1) if seconds else 0.0,
        }

    def _write_parts(self, lake: Lake, version: Any, batches: Iterable[Any]) -> dict[str, Any]:
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
        if isinstance(batches, ExportReader):
            # the bytes the rows were parsed from: a re-parse of the same upload is the same
            # input to the steps after (the memory resumes its staged chunks across it)
            source = lake.current("raw_export", version.user_id) or {}
            if source.get("url") == batches.settings.url:
                manifest["source_sha256"] = metadata["source_sha256"] = source["sha256"]
        lake.commit(version, manifest)
        return metadata

    def load_input(self, context: dg.InputContext) -> Any:
        lake = self.lake()
        asset = context.asset_key.to_user_string()
        manifest = lake.require(asset, context.asset_partition_key)
        if manifest["kind"] == "export":
            return ExportReader(
                manifest["url"],
                storage_options=lake.storage_options or None,
                workers=self.parse_workers,
            )
        if manifest["kind"] == "parquet":
            return StoredParts(lake, manifest)
        return lake.read_json(manifest["file"])


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
