"""The uploads bucket: which objects are exports, and each one's identity.

``{uploads}/{user_id}/{file}`` on any fsspec URL (a folder, ``s3://``, Supabase Storage through
S3). The watcher does not care where the files live: :class:`Bucket` lists what is there, with
an identity that changes when an object is replaced; the Dagster resource and the sensor are
built on it.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fsspec

from soulprint_pipeline.errors import StorageError
from soulprint_pipeline.export.containers import storage_error
from soulprint_pipeline.users import validate_user_id


@dataclass(frozen=True)
class Upload:
    """One object in the uploads bucket: ``{uploads}/{user_id}/{name}``."""

    url: str
    user_id: str
    name: str
    size: int
    modified: float  # seconds since the epoch
    identity: str  # ETag or size+mtime: changes when the object is replaced
    #: A link (in a local folder) whose target is outside the uploads folder: never read.
    escapes_root: bool = False


#: What an export's file name ends with (a bucket also holds .DS_Store, notes, partial files).
EXPORT_SUFFIXES = (".zip", ".json", ".gz")


def is_export_name(name: str) -> bool:
    """Whether a file name can be an export (the content decides, later, if it is one)."""
    return not name.startswith(".") and name.lower().endswith(EXPORT_SUFFIXES)


def _upload(url: str, user_id: str, info: dict[str, Any], escapes_root: bool = False) -> Upload:
    modified = _modified(info)
    size = int(info.get("size") or 0)
    etag = str(info.get("ETag") or "").strip('"')
    # an ETag is the content's hash on S3: with the time, the same bytes uploaded again are a
    # new object (a person retrying after a failed import)
    return Upload(
        url=url,
        user_id=user_id,
        name=posixpath.basename(url.rstrip("/")),
        size=size,
        modified=modified,
        identity=f"{etag or size}-{modified:.6f}",
        escapes_root=escapes_root,
    )


def _is_local(fs: Any) -> bool:
    return "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def escapes_folder(path: str, real_folder: str) -> bool:
    """Whether local ``path``, links resolved, lies outside ``real_folder`` (itself resolved).

    A link inside the uploads folder to a file elsewhere (``/etc/passwd``, another person's
    folder outside the bucket) must never be read as someone's export.
    """
    return not _within(os.path.realpath(path), real_folder)


class OutsideUploadsError(StorageError):
    """A local upload is a link to a file outside the uploads folder."""

    reason = "outside_uploads"


def outside_error(name: str) -> OutsideUploadsError:
    """The user-safe error for an upload that links outside the folder (its name only)."""
    return OutsideUploadsError(
        f"The upload {name} is a link to a file outside the uploads folder; it was not read."
    )


def _modified(info: dict[str, Any]) -> float:
    value = info.get("mtime") or info.get("LastModified") or info.get("last_modified") or 0
    return value.timestamp() if hasattr(value, "timestamp") else float(value)


class Bucket:
    """The objects under one fsspec URL, read with ``storage_options``."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.url = url
        self.storage_options = storage_options or {}

    def _fs(self) -> tuple[Any, str]:
        return fsspec.core.url_to_fs(self.url, **self.storage_options)

    def list_uploads(self) -> Iterator[tuple[str, Upload]]:
        """Every object in the bucket, as (path relative to the bucket URL, upload)."""
        fs, root = self._fs()
        root = root.rstrip("/")
        try:
            found = fs.find(root, detail=True)
        except FileNotFoundError:
            return
        # fsspec's find does not descend into linked folders, so only a linked file can point
        # out of the folder: resolving those alone keeps a 100,000-file tick cheap
        real_root = os.path.realpath(root) if _is_local(fs) else ""
        for path, info in found.items():
            relative = path[len(root) :].lstrip("/")
            user_id = relative.split("/", 1)[0] if "/" in relative else ""
            escapes = bool(real_root and info.get("islink") and escapes_folder(path, real_root))
            yield relative, _upload(_as_url(self.url, path), user_id, info, escapes)

    def uploads_of(self, user_id: str) -> list[Upload]:
        """Every upload under ``{uploads}/{user_id}/``, oldest first."""
        fs, root = self._fs()
        folder = posixpath.join(root, validate_user_id(user_id))
        try:
            entries = fs.ls(folder, detail=True)
        except FileNotFoundError:
            return []
        real_root = os.path.realpath(root) if _is_local(fs) else ""
        uploads = [
            _upload(_as_url(self.url, entry["name"]), user_id, entry)
            for entry in entries
            if is_export_name(posixpath.basename(entry["name"]))
            and entry.get("size")
            and (
                entry.get("type") == "file"
                # a link is an upload only when it names a file inside the folder
                or (
                    real_root
                    and entry.get("islink")
                    and not escapes_folder(entry["name"], real_root)
                    and os.path.isfile(entry["name"])
                )
            )
        ]
        return sorted(uploads, key=lambda upload: (upload.modified, upload.name))

    def latest_upload(self, user_id: str) -> Upload:
        """The newest upload of ``user_id``; a clear error if there is none."""
        uploads = self.uploads_of(user_id)
        if not uploads:
            raise StorageError(f"No export has been uploaded for user {user_id}.")
        return uploads[-1]


def upload_at(
    url: str,
    user_id: str,
    storage_options: dict[str, Any] | None = None,
    root: str | None = None,
) -> Upload:
    """The upload at ``url`` (any fsspec URL, e.g. from a run tag).

    When ``url`` is a local path inside the uploads folder ``root``, it must still be inside
    once links are resolved: :class:`OutsideUploadsError` otherwise. A path outside ``root``
    is a file an operator named (``soulprint-pipeline import FILE``) and is read where it is.
    """
    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    if root is not None and _is_local(fs):
        folder = os.path.abspath(fsspec.core.url_to_fs(root)[1])
        if _within(os.path.abspath(path), folder) and escapes_folder(
            path, os.path.realpath(folder)
        ):
            raise outside_error(posixpath.basename(path))
    try:
        info = fs.info(path)
    except Exception as error:  # botocore's errors are not OSErrors
        raise storage_error(posixpath.basename(path), error) from None
    return _upload(url, user_id, info)


def _as_url(base_url: str, path: str) -> str:
    if "://" in base_url:
        protocol = base_url.split("://", 1)[0]
        return path if path.startswith(f"{protocol}://") else f"{protocol}://{path}"
    return path
