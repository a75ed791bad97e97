"""Opening an export from any fsspec URL as a stream of JSON documents.

An export arrives as a bare JSON file, a gzip of one, or a ZIP holding ``conversations.json``
(at the root, in a folder, or sharded as ``conversations-000.json`` ...). The container is told
by its magic bytes, never by the file name. Nothing is extracted: ZIP members and gzip streams
are decompressed as they are read, with caps that stop a decompression bomb early.
"""

from __future__ import annotations

import gzip
import posixpath
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import BinaryIO

import fsspec

from soulprint_pipeline.errors import (
    ExportError,
    NotAnExportError,
    StorageError,
    TruncatedExportError,
    UnsafeArchiveError,
)

MiB = 1024 * 1024
GiB = 1024 * MiB


@dataclass(frozen=True)
class ReadLimits:
    """Caps that keep a hostile or broken upload from exhausting memory, disk or time."""

    #: Largest total uncompressed size of the JSON inside a ZIP or gzip.
    max_uncompressed_bytes: int = 32 * GiB
    #: Largest ratio of uncompressed to compressed bytes (JSON exports compress about 5-10x).
    max_compression_ratio: float = 200.0
    #: Largest single conversation node (ChatGPT) or message (Claude) the parser will buffer.
    #: yajl buffers a whole token before it yields it, in time quadratic in its length.
    max_node_bytes: int = 16 * MiB
    #: A conversation whose JSON outgrows this is parsed again in lean mode (see jsonstream):
    #: the fast path holds about five times a conversation's JSON size in memory.
    lean_after_bytes: int = 8 * MiB
    #: Deepest nesting of arrays and objects: exports nest under 30 levels, and ijson's cost per
    #: value grows with the depth (a file of nested ``[`` would cost time and memory quadratic
    #: in its size).
    max_depth: int = 128
    #: Longest path of keys to a value (ijson builds it as a string for every key): exports'
    #: are under 200 bytes; long keys would make every key below them cost that much again.
    max_key_path_bytes: int = 1024
    #: A conversation that opens more objects and arrays than this goes to the lean re-read too
    #: (tiny containers cost 30-60 times their JSON size as Python objects).
    lean_after_containers: int = 250_000
    #: Most objects and arrays in one conversation node (ChatGPT) or message (Claude).
    max_node_containers: int = 100_000
    #: Most nodes (ChatGPT) or messages (Claude) in one conversation read leanly: each costs
    #: about 300 bytes however small its JSON, and real conversations hold a few thousand.
    max_conversation_nodes: int = 200_000


class CountingFile:
    """A read-only file wrapper that counts the bytes read through it (for progress)."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.bytes_read += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True


class _BoundedDecompressedStream:
    """Counts decompressed bytes and enforces the size and ratio caps while streaming."""

    _RATIO_GRACE_BYTES = 16 * MiB  # small files legitimately have odd ratios

    def __init__(self, inner: BinaryIO, compressed: CountingFile, limits: ReadLimits) -> None:
        self._inner = inner
        self._compressed = compressed
        self._limits = limits
        self.bytes_out = 0

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._inner.read(size)
        except (NotImplementedError, RuntimeError) as error:  # Deflate64, encryption
            raise NotAnExportError(
                "The ZIP uses compression or encryption that cannot be read "
                f"({type(error).__name__}); please re-create it as a standard ZIP."
            ) from None
        except (EOFError, zlib.error, gzip.BadGzipFile, zipfile.BadZipFile) as error:
            raise TruncatedExportError(
                f"The compressed export is damaged or cut short after "
                f"{self._compressed.bytes_read:,} bytes ({type(error).__name__})."
            ) from None
        self.bytes_out += len(data)
        if self.bytes_out > self._limits.max_uncompressed_bytes:
            raise UnsafeArchiveError(
                f"The export expands to more than {self._limits.max_uncompressed_bytes:,} bytes "
                "when decompressed, over the limit for one import."
            )
        if (
            self.bytes_out > self._RATIO_GRACE_BYTES
            and self.bytes_out > self._limits.max_compression_ratio * self._compressed.bytes_read
        ):
            raise UnsafeArchiveError(
                "The export decompresses at a ratio over "
                f"{self._limits.max_compression_ratio:.0f}:1, which real exports never do "
                "(a decompression bomb?)."
            )
        return data


_SHARD = re.compile(r"(?:^|/)conversations-(\d+)\.json$")
_SINGLE = re.compile(r"(?:^|/)conversations\.json$")


def conversation_members(names: list[str]) -> list[str]:
    """The members of an export ZIP that hold conversations, in reading order.

    ``conversations.json`` (the shallowest one, at the root or in a folder) or, for the sharded
    form, every ``conversations-NNN.json`` ordered by its number.
    """
    for name in names:
        normalized = posixpath.normpath(name)
        if name.startswith(("/", "\\")) or normalized.startswith("..") or ":" in name.split("/")[0]:
            raise UnsafeArchiveError(
                "The ZIP holds a file whose path points outside the archive, "
                "which a real export never does."
            )
    shards = sorted((int(match.group(1)), name) for name in names if (match := _SHARD.search(name)))
    if shards:
        return [name for _, name in shards]
    singles = sorted((name.count("/"), name) for name in names if _SINGLE.search(name))
    return [singles[0][1]] if singles else []


def describe_content(head: bytes) -> str:
    """A short, content-free description of what a non-export file looks like."""
    stripped = head.lstrip()
    lowered = stripped[:64].lower()
    if not stripped:
        return "an empty file"
    if lowered.startswith((b"<!doctype html", b"<html")):
        return "an HTML page"
    if stripped.startswith(b"<"):
        return "an XML or HTML document"
    if head.startswith(b"%PDF"):
        return "a PDF document"
    if head.startswith(b"\x89PNG"):
        return "a PNG image"
    if head.startswith(b"\xff\xd8\xff"):
        return "a JPEG image"
    if head.startswith((b"Rar!", b"7z\xbc\xaf")):
        return "a RAR or 7z archive (only ZIP and gzip are supported)"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "binary data"
    return "plain text, not JSON"


@dataclass
class OpenedExport:
    """An export opened for streaming: its container and the JSON documents inside it."""

    url: str
    container: str  # "json" | "gzip" | "zip"
    members: list[str]  # the JSON documents, in reading order
    total_bytes: int  # size of the stored object (compressed, for a ZIP or gzip)
    raw: CountingFile
    limits: ReadLimits
    _zip: zipfile.ZipFile | None = None
    _progress: int = 0
    _json_bytes: dict[str, int] = field(default_factory=dict)

    @property
    def bytes_read(self) -> int:
        """Stored (compressed) bytes consumed so far: progress is this over ``total_bytes``.

        Never moves backwards, also when a document is read a second time.
        """
        self._progress = max(self._progress, min(self.raw.bytes_read, self.total_bytes))
        return self._progress

    @property
    def json_bytes(self) -> int:
        """JSON bytes streamed out of the documents so far (decompressed for a ZIP or gzip).

        A document read a second time (the lean re-read) counts once.
        """
        return sum(self._json_bytes.values())

    def documents(self) -> Iterator[tuple[str, Callable[[], AbstractContextManager[BinaryIO]]]]:
        """Each JSON document's name and an opener that streams it from its start."""
        for name in self.members:
            yield name, partial(self._open_document, name)

    @contextmanager
    def _open_document(self, name: str) -> Iterator[BinaryIO]:
        if self.container == "json":
            self.raw.seek(0)
            self.raw.bytes_read = 0
            try:
                yield self.raw  # type: ignore[misc]
            finally:
                self._count_json(name, self.raw.bytes_read)
        elif self.container == "gzip":
            self.raw.seek(0)
            self.raw.bytes_read = 0
            with gzip.GzipFile(fileobj=self.raw, mode="rb") as stream:  # type: ignore[arg-type]
                bounded = _BoundedDecompressedStream(stream, self.raw, self.limits)
                try:
                    yield bounded  # type: ignore[misc]
                finally:
                    self._count_json(name, bounded.bytes_out)
        else:
            assert self._zip is not None
            with self._zip.open(name) as stream:
                bounded = _BoundedDecompressedStream(stream, self.raw, self.limits)
                try:
                    yield bounded  # type: ignore[misc]
                finally:
                    self._count_json(name, bounded.bytes_out)

    def _count_json(self, name: str, streamed: int) -> None:
        self._json_bytes[name] = max(self._json_bytes.get(name, 0), streamed)


def _check_zip_budget(archive: zipfile.ZipFile, members: list[str], limits: ReadLimits) -> None:
    infos = [archive.getinfo(name) for name in members]
    declared = sum(info.file_size for info in infos)
    compressed = sum(info.compress_size for info in infos)
    if declared > limits.max_uncompressed_bytes:
        raise UnsafeArchiveError(
            f"The ZIP declares {declared:,} bytes of conversations, over the limit of "
            f"{limits.max_uncompressed_bytes:,} for one import."
        )
    if compressed and declared > 1 * MiB and declared / compressed > limits.max_compression_ratio:
        raise UnsafeArchiveError(
            f"The ZIP's conversations expand {declared / compressed:,.0f}:1, over the limit of "
            f"{limits.max_compression_ratio:.0f}:1 (a decompression bomb?)."
        )


def storage_error(url: str, error: BaseException) -> StorageError:
    """A user-safe StorageError for a failed storage call (its kind and HTTP status)."""
    if isinstance(error, StorageError):
        return error
    status = getattr(error, "response", {}) or {}
    code = ""
    if isinstance(status, dict):
        meta = status.get("ResponseMetadata", {})
        code = str(meta.get("HTTPStatusCode", "")) if isinstance(meta, dict) else ""
    if isinstance(error, FileNotFoundError):
        detail = "no such object"
    elif isinstance(error, PermissionError):
        detail = "access denied"
    else:
        detail = type(error).__name__
    if code:
        detail += f", HTTP {code}"
    # the object's name only: the bucket and folders are the service's, not the person's
    name = posixpath.basename(url.rstrip("/")) or url
    return StorageError(f"Could not read {name} from storage ({detail}).")


@contextmanager
def open_export(
    url: str, limits: ReadLimits | None = None, storage_options: dict | None = None
) -> Iterator[OpenedExport]:
    """Open the export at ``url`` (any fsspec URL) and detect its container by magic bytes."""
    limits = limits or ReadLimits()
    with ExitStack() as stack:
        try:
            opened = fsspec.open(url, "rb", **(storage_options or {}))
            raw_file = stack.enter_context(opened)
            total = opened.fs.size(opened.path)
        except ExportError:
            raise
        except Exception as error:  # botocore and friends do not subclass OSError
            raise storage_error(url, error) from None
        raw = CountingFile(raw_file)
        head = raw.read(8)
        raw.seek(0)
        raw.bytes_read = 0
        name = posixpath.basename(url.rstrip("/")) or "export"
        if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
            try:
                archive = stack.enter_context(zipfile.ZipFile(raw))  # type: ignore[arg-type]
            except zipfile.BadZipFile:
                raise TruncatedExportError(
                    "The ZIP file is damaged or cut short (its directory is missing)."
                ) from None
            members = conversation_members(archive.namelist())
            if not members:
                raise NotAnExportError(
                    "The ZIP holds no conversations.json: is it a ChatGPT or Claude data export?"
                )
            _check_zip_budget(archive, members, limits)
            raw.bytes_read = 0
            yield OpenedExport(url, "zip", members, total, raw, limits, archive)
        elif head.startswith(b"\x1f\x8b"):
            yield OpenedExport(url, "gzip", [name.removesuffix(".gz")], total, raw, limits)
        else:
            yield OpenedExport(url, "json", [name], total, raw, limits)
