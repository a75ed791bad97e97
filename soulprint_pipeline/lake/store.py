"""The lake: every asset partition under one fsspec base URL, replaced atomically.

    {base}/{asset}/{user_id}/{version}/...            the files of one materialization
    {base}/{asset}/{user_id}/{version}/MANIFEST.json  what they are, and the input versions
    {base}/{asset}/{user_id}/current/{upload}.json    the version current for that upload

A materialization writes a fresh version folder, then its ``MANIFEST.json`` (the version is
complete: :meth:`Lake.stage`), and is made current by writing one small pointer object (an
atomic rename locally; one PUT on S3: :meth:`Lake.promote`), so a reader sees the old
partition or the new one, never a half-written one.

Several writers of one partition may run at once (two imports of one user started by
different means), so:

* nothing deletes a version a writer may still be writing or reading: versions that are not
  current are deleted only once older than ``keep_seconds`` (``SOULPRINT_LAKE_KEEP_SECONDS``,
  6 hours by default), by the next promotion of that partition or by :meth:`Lake.sweep`;
* each manifest names the upstream versions it was computed from (``inputs``) and the raw
  export version at the root of that chain (``upload``: version names start with their UTC
  time, so they sort by age);
* the current version is the pointer of the newest upload, whatever order the writers'
  pointers land in (there is no read-modify-write to race): once both have promoted their
  chains, every asset's current version is the newer upload's, so the current versions of a
  user's assets, followed through their ``inputs``, are one upload's. A pointer of one upload
  is replaced by the next promotion for that upload (a re-parse, a soulprint re-run).

A lake written before pointers existed has one ``CURRENT.json`` per partition instead, which
is read until the first promotion.
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

LEGACY_CURRENT = "CURRENT.json"
POINTERS = "current"
MANIFEST = "MANIFEST.json"
COPY_CHUNK_BYTES = 8 * 1024 * 1024
#: How long a version that is not current is kept (a writer may still be writing or reading
#: it): longer than any import takes.
DEFAULT_KEEP_SECONDS = 6 * 3600
_VERSION_TIME = "%Y%m%dT%H%M%S"


@dataclass(frozen=True)
class Swept:
    """What a clean-up deleted: versions that were not current, and their bytes."""

    versions: int = 0
    bytes: int = 0

    def __add__(self, other: Swept) -> Swept:
        return Swept(self.versions + other.versions, self.bytes + other.bytes)


@dataclass(frozen=True)
class Version:
    """One materialization's folder, being written."""

    asset: str
    user_id: str
    name: str
    url: str  # fsspec URL of the folder


class Lake:
    """Versioned partitions of the pipeline's assets under ``base_url``."""

    def __init__(
        self,
        base_url: str,
        storage_options: dict[str, Any] | None = None,
        *,
        keep_seconds: int = DEFAULT_KEEP_SECONDS,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.storage_options = storage_options or {}
        self.keep_seconds = keep_seconds
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
        # to the microsecond, so one writer's versions sort in the order it made them (an
        # older name of whole seconds sorts before any of its second)
        now = datetime.now(UTC)
        name = f"{now.strftime(_VERSION_TIME)}{now.microsecond:06d}-{uuid.uuid4().hex[:8]}"
        path = posixpath.join(self._partition_path(asset, user_id), name)
        self.fs.makedirs(path, exist_ok=True)
        return Version(asset, user_id, name, self._url(path))

    def stage(
        self,
        version: Version,
        manifest: dict[str, Any],
        inputs: dict[str, dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Record ``version`` as complete (its ``MANIFEST.json``), not yet current.

        ``inputs`` are the manifests of the upstream versions it was computed from; the
        manifest keeps their version names and the upload at the root of their chain (a
        version without inputs is a root: its own upload).
        """
        inputs = inputs or {}
        uploads = {entry.get("upload", "") for entry in inputs.values()}
        if len(uploads) > 1:
            raise StorageError(
                f"{version.asset} of {version.user_id} would combine two uploads' versions."
            )
        manifest = {
            **manifest,
            "asset": version.asset,
            "user_id": version.user_id,
            "version": version.name,
            "folder": version.url,
            "inputs": {asset: entry["version"] for asset, entry in sorted(inputs.items())},
            "upload": uploads.pop() if uploads else version.name,
        }
        self._write_atomically(posixpath.join(self._path_of(version.url), MANIFEST), manifest)
        return manifest

    def promote(self, manifest: dict[str, Any]) -> bool:
        """Make the staged version of ``manifest`` current, unless a newer upload's version is
        current (then this returns ``False``); then delete what is past its keeping time."""
        partition = self._partition_path(manifest["asset"], manifest["user_id"])
        pointers = self._pointers(partition)
        if pointers and pointers[-1] > manifest["upload"]:
            return False
        path = posixpath.join(partition, POINTERS, f"{manifest['upload']}.json")
        self._write_atomically(path, manifest)
        self._prune(partition)
        return True

    def promote_chain(self, manifest: dict[str, Any]) -> bool:
        """Make the staged version of ``manifest`` current, with the upstream versions it was
        computed from first; ``False`` when a newer upload's version is current already."""
        for asset, name in manifest.get("inputs", {}).items():
            upstream = self.staged(asset, manifest["user_id"], name)
            if upstream is None:
                # a version stored before versions had manifests: fine while it is current
                current = self.current(asset, manifest["user_id"]) or {}
                if current.get("version") == name:
                    continue
                raise StorageError(f"The {asset} version {name} is gone.")
            if not self.promote_chain(upstream):
                return False
        return self.promote(manifest)

    def commit(
        self,
        version: Version,
        manifest: dict[str, Any],
        inputs: dict[str, dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Stage ``version`` and make it current (see :meth:`stage`, :meth:`promote`)."""
        staged = self.stage(version, manifest, inputs)
        self.promote(staged)
        return staged

    def staged(self, asset: str, user_id: str, name: str) -> dict[str, Any] | None:
        """The manifest of version ``name`` of this partition, or ``None`` if it is not complete
        (or was deleted)."""
        return self._read(posixpath.join(self._partition_path(asset, user_id), name, MANIFEST))

    def sweep(self, now: datetime | None = None) -> Swept:
        """Delete every version, of every partition, that is not current and is older than
        ``keep_seconds``; how many were deleted, and their bytes."""
        swept = Swept()
        for asset in self._folders(self._root):
            for partition in self._folders(asset):
                swept += self._prune(partition, now)
        return swept

    def _prune(self, partition: str, now: datetime | None = None) -> Swept:
        pointers = self._pointers(partition)
        current = self._current_of(partition) or {}
        for name in pointers[:-1]:  # older uploads' pointers: never current again
            self._remove(posixpath.join(partition, POINTERS, f"{name}.json"))
        cutoff = (now or datetime.now(UTC)).timestamp() - self.keep_seconds
        swept = Swept()
        for entry in self._folders(partition):
            name = posixpath.basename(entry)
            if name == current.get("version"):
                continue
            try:
                seconds = name.split("-")[0][:15]
                written = datetime.strptime(seconds, _VERSION_TIME).replace(tzinfo=UTC)
            except ValueError:
                continue  # not a version folder
            if written.timestamp() < cutoff:
                size = self._size(entry)
                if self._remove(entry):
                    swept += Swept(1, size)
        return swept

    def _size(self, path: str) -> int:
        try:
            return int(self.fs.du(path, total=True))
        except FileNotFoundError:
            return 0

    def _remove(self, path: str) -> bool:
        """Delete ``path``; ``False`` when another writer's prune got there first."""
        try:
            self.fs.rm(path, recursive=True)
        except FileNotFoundError:
            return False
        return True

    def _pointers(self, partition: str) -> list[str]:
        """The uploads with a pointer in ``partition``, oldest first."""
        try:
            # refresh: another writer may have added a pointer since this process listed
            entries = self.fs.ls(posixpath.join(partition, POINTERS), detail=False, refresh=True)
        except FileNotFoundError:
            return []
        names = (posixpath.basename(entry.rstrip("/")) for entry in entries)
        return sorted(name[: -len(".json")] for name in names if name.endswith(".json"))

    def _current_of(self, partition: str) -> dict[str, Any] | None:
        for _ in range(3):  # a pointer listed may be pruned before it is read: list again
            pointers = self._pointers(partition)
            if not pointers:
                return self._read(posixpath.join(partition, LEGACY_CURRENT))
            manifest = self._read(posixpath.join(partition, POINTERS, f"{pointers[-1]}.json"))
            if manifest is not None:
                return manifest
        return None

    def _folders(self, path: str) -> list[str]:
        try:
            entries = self.fs.ls(path, detail=True, refresh=True)
        except FileNotFoundError:
            return []
        return [
            entry["name"].rstrip("/")
            for entry in entries
            if entry["type"] == "directory"
            and not posixpath.basename(entry["name"].rstrip("/")).startswith(".")
        ]

    def _write_atomically(self, path: str, payload: dict[str, Any]) -> None:
        data = json.dumps(payload, indent=2, sort_keys=True).encode()
        if self._protocol not in (None, "file", "local"):
            # an object store's PUT replaces the object whole; a temporary file and a move
            # (a copy and a delete there) can meet another writer's stale listing of the folder
            self.fs.pipe_file(path, data)
            return
        folder = posixpath.dirname(path)
        self.fs.makedirs(folder, exist_ok=True)
        temporary = posixpath.join(folder, f".{posixpath.basename(path)}.{uuid.uuid4().hex[:8]}")
        with self.fs.open(temporary, "wb") as handle:
            handle.write(data)
        self.fs.mv(temporary, path)

    def _read(self, path: str) -> dict[str, Any] | None:
        # one GET: an open() file on S3 checks its ETag on every read, and a pointer may be
        # replaced between two reads
        try:
            return json.loads(self.fs.cat_file(path))
        except FileNotFoundError:
            return None

    def _path_of(self, url: str) -> str:
        return url.split("://", 1)[1] if self._protocol and "://" in url else url

    def current(self, asset: str, user_id: str) -> dict[str, Any] | None:
        """The manifest of the current version of this partition, or ``None``."""
        return self._current_of(self._partition_path(asset, user_id))

    def is_current(self, manifest: dict[str, Any]) -> bool:
        """Whether the version ``manifest`` describes is its partition's current one."""
        current = self.current(manifest["asset"], manifest["user_id"]) or {}
        return current.get("version") == manifest["version"]

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
