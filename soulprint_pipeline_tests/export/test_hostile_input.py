"""Small files built to make the parser build far more than their size are refused, at the byte.

ijson builds a path string per key and per array ("item.mapping.<id>.message..."), so nesting and
long keys cost it time and memory quadratic in their size, and tiny containers cost 30-60 times
their JSON as Python objects. Each shape here is a few hundred KB to a few MB; the structure
guard refuses it with a StructureLimitError naming the byte, long before it could cost what a
normal export of its size does not (``make bench`` measures the peak RSS of these shapes).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import ijson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from soulprint_pipeline.export._native import StructureGuard

from soulprint_pipeline.errors import StructureLimitError
from soulprint_pipeline.export.containers import ReadLimits
from soulprint_pipeline.export.reader import ExportReader
from soulprint_pipeline_tests.support.cli import CONSOLE_SCRIPT
from soulprint_pipeline_tests.support.exports import chatgpt_conversation, zip_bytes


def _read(path: Path, **limits: int) -> ExportReader:
    reader = ExportReader(str(path), limits=ReadLimits(**limits))
    for _ in reader.batches():
        pass
    return reader


def _refused(path: Path, *words: str, **limits: int) -> StructureLimitError:
    with pytest.raises(StructureLimitError) as raised:
        _read(path, **limits)
    for word in words:
        assert word in str(raised.value), str(raised.value)
    return raised.value


def test_200_000_nested_arrays_are_refused_at_the_129th(tmp_path: Path) -> None:
    (path := tmp_path / "deep.json").write_bytes(b"[" * 200_000)
    error = _refused(path, "deeper than 128 levels", "at byte 128 of deep.json")
    assert error.offset == 128


def test_nested_objects_inside_a_conversation_are_refused(tmp_path: Path) -> None:
    conversation = chatgpt_conversation(0, [("user", "hello"), ("assistant", "hi")])
    text = json.dumps([conversation])
    head = text.index('"metadata": {}') + len('"metadata": ')
    deep = text[:head] + '{"a": ' * 50_000 + "1" + "}" * 50_000 + text[head + 2 :]
    (path := tmp_path / "nested.json").write_text(deep)
    error = _refused(path, "deeper than 128 levels")
    assert head < error.offset < head + 6 * 130


def test_a_long_key_path_is_refused_before_its_keys_are_parsed(tmp_path: Path) -> None:
    # one 1 MB key, then 170,000 keys below it: each would cost ijson a 1 MB path string
    data = b'[{"' + b"k" * 1_000_000 + b'": {' + b'"a": 1, ' * 170_000 + b'"b": 1}}]'
    (path := tmp_path / "keys.json").write_bytes(data)
    error = _refused(path, "path of keys longer than 1,024 bytes")
    # the path "item.<key>" passes 1,024 bytes at the key's 1,019th byte, which starts at byte 3
    assert error.offset == 3 + 1018


def test_nesting_and_keys_as_real_exports_have_them_pass(tmp_path: Path) -> None:
    conversation = chatgpt_conversation(0, [("user", "hello"), ("assistant", "hi")])
    # 60 levels of metadata with 100-byte keys: deeper and longer than any real export's
    nested: dict = {}
    for level in range(60):
        nested = {f"k{level:03d}" + "x" * 10: nested}
    conversation["mapping"]["c0-m0"]["message"]["metadata"] = nested
    (path := tmp_path / "ok.json").write_text(json.dumps([conversation]))
    assert _read(path).stats.messages == 2


def test_a_message_of_tiny_containers_is_refused_in_the_lean_read(tmp_path: Path) -> None:
    # 3 MB of {} in one message's parts: the fast path hands it to the lean read, which refuses
    # a node of more than 100,000 containers
    conversation = chatgpt_conversation(0, [("user", "hello"), ("assistant", "hi")])
    text = json.dumps([conversation])
    parts = text.index('"parts": [') + len('"parts": [')
    hostile = text[:parts] + "{}, " * 400_000 + text[parts:]
    (path := tmp_path / "tiny.json").write_text(hostile)
    _refused(path, "more than 100,000 objects and arrays")


def test_a_conversation_of_many_tiny_nodes_goes_lean_and_still_reads(tmp_path: Path) -> None:
    # 150,000 childless nodes beside a real branch (300,000 containers): past the fast path's
    # container bound, the lean read compacts them and the branch's rows come out the same
    conversation = chatgpt_conversation(0, [("user", "hello"), ("assistant", "hi")])
    for index in range(150_000):
        conversation["mapping"][f"x{index}"] = {"children": []}
    (path := tmp_path / "nodes.json").write_text(json.dumps([conversation]))
    reader = ExportReader(str(path))
    rows = [row for batch in reader.batches() for row in batch.to_pylist()]
    assert [row["text"] for row in rows] == ["hello", "hi"]


def test_a_conversation_of_too_many_nodes_is_refused(tmp_path: Path) -> None:
    # each node costs the lean read about 300 bytes, however small its JSON: 4 MB of empty
    # nodes would otherwise grow memory by 70 MB, and 300 MB of them by gigabytes
    conversation = chatgpt_conversation(0, [("user", "hello"), ("assistant", "hi")])
    for index in range(260_000):
        conversation["mapping"][f"x{index}"] = {}
    (path := tmp_path / "nodes.json").write_text(json.dumps([conversation]))
    _refused(path, "one conversation holds more than 200,000 messages")


def test_a_claude_conversation_of_too_many_messages_is_refused(tmp_path: Path) -> None:
    messages = [{"sender": "human", "text": "a short line of text"}] * 260_000
    (path := tmp_path / "claude.json").write_text(json.dumps([{"chat_messages": messages}]))
    _refused(path, "one conversation holds more than 200,000 messages")


def test_the_console_script_refuses_a_deep_zip_with_one_line(tmp_path: Path) -> None:
    (path := tmp_path / "export.zip").write_bytes(zip_bytes({"conversations.json": b"[" * 300_000}))
    result = subprocess.run(
        [str(CONSOLE_SCRIPT), "parse", str(path), "--out", str(tmp_path / "parts")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "soulprint-pipeline: The export nests its data deeper than 128 levels (at byte 128 of "
        "conversations.json); a ChatGPT or Claude export nests fewer than 30."
    ]


# keys as JSON writes them unescaped (the guard counts a key's raw bytes, escapes included)
_keys = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126, exclude_characters='"\\'),
    max_size=12,
)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),  # texts with quotes, escapes, [{
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=40,
)


def _containers(value: Any) -> int:
    if isinstance(value, list):
        return 1 + sum(map(_containers, value))
    if isinstance(value, dict):
        return 1 + sum(map(_containers, value.values()))
    return 0


@settings(max_examples=300, derandomize=True, deadline=None)
@given(value=_json, ascii_only=st.booleans(), cuts=st.lists(st.integers(0, 10_000), max_size=8))
def test_the_guard_tracks_what_ijson_builds_across_any_block_boundaries(
    value: Any, ascii_only: bool, cuts: list[int]
) -> None:
    data = json.dumps([value], ensure_ascii=ascii_only).encode()
    longest_prefix = max(len(prefix) for prefix, _, _ in ijson.parse(data))
    # the guard counts an array's ".item" when it opens, one level before ijson's first item
    # needs it, and a top-level ".item" as 5 bytes where ijson's prefix has 4
    for max_path, refused in ((longest_prefix + 6, False), (longest_prefix - 1, True)):
        if max_path < 1:
            continue
        guard = StructureGuard(max_depth=4000, max_path=max_path)
        bounds = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
        blocks = [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
        statuses = [guard.scan(block) for block in blocks]
        # on the guard's own thread, block by block, as the reader runs it: the same answers
        threaded = StructureGuard(max_depth=4000, max_path=max_path)
        for block, status in zip(blocks, statuses, strict=True):
            threaded.scan_async(block)
            assert threaded.wait() == (status, threaded.containers)
            if status:
                break
        if refused:
            assert 2 in statuses
        else:
            assert set(statuses) <= {0}
            assert guard.depth == 0 and guard.offset == len(data)
            assert guard.containers == _containers([value])
