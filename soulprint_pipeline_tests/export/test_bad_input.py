"""Every class of bad input ends in one ExportError subclass whose message is fit to show."""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from pathlib import Path

import pytest

from soulprint_pipeline.errors import (
    EmptyExportError,
    EncodingError,
    ExportError,
    InvalidJSONError,
    NotAnExportError,
    OversizedValueError,
    StorageError,
    TruncatedExportError,
    UnsafeArchiveError,
)
from soulprint_pipeline.export.containers import MiB, ReadLimits
from soulprint_pipeline.export.jsonstream import _BLOCK_BYTES
from soulprint_pipeline.export.reader import ExportReader

SECRET = "my-secret-diary-words"


def _conversation(i: int, text: str = SECRET) -> dict:
    return {
        "title": f"t{i}",
        "mapping": {
            "root": {"id": "root", "message": None, "parent": None, "children": ["m"]},
            "m": {
                "id": "m",
                "parent": "root",
                "children": [],
                "message": {
                    "id": "m",
                    "author": {"role": "user"},
                    "content": {"content_type": "text", "parts": [text]},
                    "recipient": "all",
                },
            },
        },
        "current_node": "m",
        "id": f"c{i}",
    }


def _export_bytes(count: int = 3, text: str = SECRET) -> bytes:
    return json.dumps([_conversation(i, text) for i in range(count)]).encode()


def _read(path: Path, **limits: int | float) -> ExportReader:
    reader = ExportReader(str(path), limits=ReadLimits(**limits))
    for _ in reader.batches():
        pass
    return reader


def _expect(path: Path, error: type[ExportError], *fragments: str, **limits) -> ExportError:
    with pytest.raises(error) as raised:
        _read(path, **limits)
    message = str(raised.value)
    assert SECRET not in message and "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return raised.value


def test_invalid_json_names_the_byte_range(tmp_path: Path) -> None:
    good = _export_bytes(2000)
    fault = good.index(b'"current_node"', 100_000)
    bad = good[:fault] + b"tru" + good[fault + 3 :]
    (path := tmp_path / "bad.json").write_bytes(bad)
    error = _expect(path, InvalidJSONError, "not valid JSON", "bad.json, between bytes")
    assert isinstance(error, InvalidJSONError) and not isinstance(error, TruncatedExportError)
    # the fault is within one block fed to the parser of the offset the error names
    assert fault <= error.offset <= fault + _BLOCK_BYTES


def test_truncated_export(tmp_path: Path) -> None:
    (path := tmp_path / "cut.json").write_bytes(_export_bytes()[:-40])
    _expect(path, TruncatedExportError, "cut short")


def test_truncated_zip(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("conversations.json", _export_bytes(500))
    (path := tmp_path / "cut.zip").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    _expect(path, TruncatedExportError, "ZIP")


def test_trailing_garbage(tmp_path: Path) -> None:
    (path := tmp_path / "x.json").write_bytes(_export_bytes() + b" ]]")
    _expect(path, InvalidJSONError, "trailing data")


@pytest.mark.parametrize(
    ("content", "found"),
    [
        (b"<!DOCTYPE html><html><body>Sign in</body></html>", "an HTML page"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3", "a PDF document"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "a PNG image"),
        (b"name,email\nann,a@example.com\n", "plain text"),
        (b"[1, 2, 3]", "a JSON list of numbers"),
        (b'["a", "b"]', "a JSON list of strings"),
        (b'{"settings": {"theme": "dark"}}', "a JSON object"),
        (b'"just a string"', "plain text"),
    ],
)
def test_not_an_export_says_what_was_found(tmp_path: Path, content: bytes, found: str) -> None:
    (path := tmp_path / "upload.json").write_bytes(content)
    _expect(path, NotAnExportError, "not a ChatGPT or Claude export", found)


@pytest.mark.parametrize("content", [b"", b"  \n ", b"[]", b'{"conversations": []}'])
def test_empty_export(tmp_path: Path, content: bytes) -> None:
    (path := tmp_path / "conversations.json").write_bytes(content)
    _expect(path, EmptyExportError, "empty" if content.strip() == b"" else "no conversations")


def test_zip_without_conversations(tmp_path: Path) -> None:
    with zipfile.ZipFile(path := tmp_path / "photos.zip", "w") as archive:
        archive.writestr("user.json", "{}")
        archive.writestr("chat.html", "<html></html>")
    _expect(path, NotAnExportError, "no conversations.json")


def test_zip_bomb_is_refused_by_ratio_before_decompressing(tmp_path: Path) -> None:
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("conversations.json", b"[" + b" " * (200 * MiB) + b"]")
    assert path.stat().st_size < 1 * MiB
    _expect(path, UnsafeArchiveError, "decompression bomb")


def test_zip_over_the_size_cap_is_refused(tmp_path: Path) -> None:
    with zipfile.ZipFile(path := tmp_path / "big.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("conversations.json", _export_bytes(20_000))
    _expect(path, UnsafeArchiveError, "over the limit", max_uncompressed_bytes=1 * MiB)


def test_gzip_bomb_is_stopped_while_streaming(tmp_path: Path) -> None:
    with gzip.open(path := tmp_path / "bomb.json.gz", "wb") as stream:
        stream.write(b"[" + b" " * (200 * MiB) + b"]")
    reader = ExportReader(str(path))
    with pytest.raises(UnsafeArchiveError, match="decompression bomb"):
        for _ in reader.batches():
            pass


@pytest.mark.parametrize("member", ["../conversations.json", "/etc/conversations.json"])
def test_member_path_escaping_the_archive(tmp_path: Path, member: str) -> None:
    with zipfile.ZipFile(path := tmp_path / "evil.zip", "w") as archive:
        archive.writestr(member, _export_bytes())
    _expect(path, UnsafeArchiveError, "outside the archive")


def test_invalid_utf8(tmp_path: Path) -> None:
    data = _export_bytes(50).replace(SECRET.encode(), b"caf\xe9 " + SECRET.encode(), 1)
    (path := tmp_path / "latin1.json").write_bytes(data)
    _expect(path, EncodingError, "not valid UTF-8", "latin1.json")


def test_a_300_mb_string_is_rejected_in_bounded_time_and_memory(tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    with path.open("wb") as out:
        out.write(b'[{"title": "t", "mapping": {"n": {"message": {"content": {"parts": ["')
        chunk = b"x" * MiB
        for _ in range(300):
            out.write(chunk)
        out.write(b'"]}}}}}]')
    reader = ExportReader(str(path))
    with pytest.raises(OversizedValueError, match="larger than 16 MB") as raised:
        for _ in reader.batches():
            pass
    assert SECRET not in str(raised.value)
    # it stopped soon after the bound, far from reading the whole 300 MB
    assert reader.stats.bytes_read < 20 * MiB


def test_bound_is_per_node_not_per_conversation(tmp_path: Path) -> None:
    # 40 nodes of 1 MB each: a 40 MB conversation, every node well under a 4 MB bound
    big = {"title": "long chat", "mapping": {}, "current_node": "n39", "id": "big"}
    parent = None
    for i in range(40):
        big["mapping"][f"n{i}"] = {
            "id": f"n{i}",
            "parent": parent,
            "children": [f"n{i + 1}"] if i < 39 else [],
            "message": {
                "id": f"n{i}",
                "author": {"role": "user" if i % 2 == 0 else "assistant"},
                "content": {"content_type": "text", "parts": ["y" * MiB]},
            },
        }
        parent = f"n{i}"
    (path := tmp_path / "long.json").write_text(json.dumps([big]))
    reader = _read(path, max_node_bytes=4 * MiB)
    assert reader.stats.messages == 40


def test_missing_object_is_a_storage_error(tmp_path: Path) -> None:
    _expect(tmp_path / "nope.zip", StorageError, "no such object", "nope.zip")


def test_parent_cycles_and_missing_parents_are_survived(tmp_path: Path) -> None:
    conversation = _conversation(0, "first words")
    mapping = conversation["mapping"]
    # a cycle above the active branch: root's parent is m, m's parent is root
    mapping["root"]["parent"] = "m"
    # and an orphan branch whose parent is missing, never on the active path
    mapping["orphan"] = {"id": "orphan", "parent": "gone", "children": [], "message": None}
    (path := tmp_path / "cycle.json").write_text(json.dumps([conversation]))
    reader = _read(path)
    assert reader.stats.messages == 1  # the message once, not once per lap of the cycle


def test_numbers_where_ids_should_be_strings_do_not_break_the_import(tmp_path: Path) -> None:
    conversation = _conversation(0, "hello there")
    conversation["id"] = 12345
    conversation["mapping"]["m"]["message"]["id"] = 678
    (path := tmp_path / "ids.json").write_text(json.dumps([conversation]))
    reader = ExportReader(str(path))
    [row] = [r for batch in reader.batches() for r in batch.to_pylist()]
    assert row["conversation_id"] == "12345" and row["message_id"] == "678"
