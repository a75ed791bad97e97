"""The lake: every asset partition under one fsspec base URL, replaced atomically.

    {base}/{asset}/{user_id}/{version}/...   the files of one materialization
    {base}/{asset}/{user_id}/CURRENT.json    which version is current, and its manifest

A materialization writes a fresh version folder and then switches ``CURRENT.json`` in one
step (an atomic rename locally; on S3 the copy of one small object), so a reader sees the old
partition or the new one, never a half-written one; a crashed run leaves only an orphan
folder, which the next successful write of that partition deletes.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from soulprint_pipeline.errors import StorageError
from soulprint_pipeline.export.containers import storage_error
from soulprint_pipeline.users import validate_user_id

CURRENT = "CURRENT.json"
COPY_CHUNK_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Version:
    """One materialization's folder, being written."""

    asset: str
    user_id: str
    name: str
    url: str  # fsspec URL of the folder


class Lake:
    """Versioned partitions of the pipeline's assets under ``base_url``."""

    def __init__(self, base_url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.storage_options = storage_options or {}
        self.fs, self._root = fsspec.core.url_to_fs(self.base_url, **self.storage_options)
        self._protocol = self.base_url.split("://")[0] if "://" in self.base_url else None

    def _url(self, path: str) -> str:
        """An fsspec URL for a path of this filesystem, usable by other readers."""
        if self._protocol and not path.startswith(f"{self._protocol}://"):
            return f"{self._protocol}://{path}"
        return path

    def _partition_path(self, asset: str, user_id: str) -> str:
        return posixpath.join(self._root, asset, validate_user_id(user_id))

    def new_version(self, asset: str, user_id: str) -> Version:
        """A fresh, empty folder for the next materialization of this partition."""
        name = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        path = posixpath.join(self._partition_path(asset, user_id), name)
        self.fs.makedirs(path, exist_ok=True)
        return Version(asset, user_id, name, self._url(path))

    def commit(self, version: Version, manifest: dict[str, Any]) -> dict[str, Any]:
        """Make ``version`` the current one and delete the versions before it."""
        partition = self._partition_path(version.asset, version.user_id)
        manifest = {**manifest, "version": version.name, "folder": version.url}
        temporary = posixpath.join(partition, f".{CURRENT}.{uuid.uuid4().hex[:8]}")
        with self.fs.open(temporary, "w") as handle:
            handle.write(json.dumps(manifest, indent=2, sort_keys=True))
        self.fs.mv(temporary, posixpath.join(partition, CURRENT))
        for entry in self.fs.ls(partition, detail=False):
            name = posixpath.basename(entry.rstrip("/"))
            if name != version.name and name != CURRENT and not name.startswith("."):
                self.fs.rm(entry, recursive=True)
        return manifest

    def current(self, asset: str, user_id: str) -> dict[str, Any] | None:
        """The manifest of the current version of this partition, or ``None``."""
        path = posixpath.join(self._partition_path(asset, user_id), CURRENT)
        try:
            with self.fs.open(path, "r") as handle:
                return json.load(handle)
        except FileNotFoundError:
            return None

    def require(self, asset: str, user_id: str) -> dict[str, Any]:
        """The current manifest; a clear error if the partition was never materialized."""
        manifest = self.current(asset, user_id)
        if manifest is None:
            raise StorageError(f"No {asset} is stored yet for user {user_id}.")
        return manifest

    def copy_in(
        self,
        version: Version,
        source_url: str,
        *,
        storage_options: dict[str, Any] | None = None,
        file_name: str = "export",
        on_progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, Any]:
        """Copy the object at ``source_url`` into ``version`` in chunks, with sha256 and size."""
        target = posixpath.join(version.url, file_name)
        digest = hashlib.sha256()
        copied = 0
        try:
            source = fsspec.open(source_url, "rb", **(storage_options or {}))
            with source as reader, self.fs.open(target, "wb") as writer:
                total = source.fs.size(source.path)
                while chunk := reader.read(COPY_CHUNK_BYTES):
                    digest.update(chunk)
                    writer.write(chunk)
                    copied += len(chunk)
                    if on_progress is not None:
                        on_progress(copied, total)
        except Exception as error:  # botocore's errors are not OSErrors
            raise storage_error(posixpath.basename(source_url), error) from None
        return {"file": file_name, "url": target, "bytes": copied, "sha256": digest.hexdigest()}

    def write_parts(self, version: Version, batches: Iterator[pa.RecordBatch], **writer: Any):
        """Write ``batches`` as Parquet parts into ``version``; returns the PartWriter used."""
        from soulprint_pipeline.lake.parquet_parts import PartWriter

        with PartWriter(version.url, storage_options=self.storage_options, **writer) as parts:
            parts.write_all(batches)
        return parts

    def write_json(self, version: Version, name: str, payload: Any) -> str:
        """Write one JSON document into ``version``; returns its URL."""
        target = posixpath.join(version.url, name)
        with self.fs.open(target, "w") as handle:
            json.dump(payload, handle, indent=2, sort_keys=True, ensure_ascii=False)
        return target

    def write_bytes(self, version: Version, name: str, payload: bytes) -> str:
        """Write one small file (a picture) into ``version``; returns its URL."""
        target = posixpath.join(version.url, name)
        with self.fs.open(target, "wb") as handle:
            handle.write(payload)
        return target

    def read_bytes(self, url: str) -> bytes:
        """Read back a small file this lake wrote."""
        with self.fs.open(url, "rb") as handle:
            return handle.read()

    def read_json(self, url: str) -> Any:
        """Read back a JSON document this lake wrote."""
        with self.fs.open(url, "r") as handle:
            return json.load(handle)


class StoredParts:
    """A lazy reader of one partition's Parquet parts: nothing is read until iterated."""

    def __init__(self, lake: Lake, manifest: dict[str, Any]) -> None:
        self.lake = lake
        self.manifest = manifest
        self.paths: list[str] = list(manifest.get("parts", []))

    def __len__(self) -> int:
        return int(self.manifest.get("rows", 0))

    def batches(self, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
        """The rows, part by part, as record batches (optionally only ``columns``)."""
        for path in self.paths:
            yield from self.batches_of(path, columns)

    def batches_of(self, path: str, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
        """The rows of one part, a row group (one batch as the reader cut it) at a time."""
        with self.lake.fs.open(path, "rb") as handle:
            part = pq.ParquetFile(handle)
            # not iter_batches(): it fills each batch to 64k rows across row groups, which would
            # hold a whole part in memory; and not pyarrow.dataset's scanner: on a 200 MB
            # export's parts it peaked 32 MB higher with no read-ahead (125 MB with its
            # defaults), for no gain in speed
            for index in range(part.num_row_groups):
                group = part.read_row_group(index, columns=columns, use_threads=False)
                yield from group.to_batches()

    def dataframes(self, columns: list[str] | None = None) -> Iterator[Any]:
        """The rows, part by part, as pandas DataFrames."""
        for batch in self.batches(columns):
            yield batch.to_pandas()
