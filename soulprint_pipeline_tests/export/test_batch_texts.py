"""The batch's texts encoded to UTF-8 in C, off the parser's thread (``_native.utf8_texts``)."""

from __future__ import annotations

import array
import json
from pathlib import Path

import pyarrow as pa
import pytest
from soulprint_pipeline.export._native import utf8_texts

from soulprint_pipeline.export.reader import ExportReader
from soulprint_pipeline_tests.support.exports import chatgpt_conversation

TEXTS: list[str | bytes] = [
    "",
    "plain ASCII",
    "café, naïve",  # one byte a character, not ASCII
    "a \u20ac and \u201ccurly\u201d quotes",  # two bytes a character
    "an emoji \U0001f600 widens the whole str",  # four bytes a character
    "\u00e9" * 1000 + "\U0001f600",
    b"already UTF-8 \xc3\xa9",  # a spilled text read back
]


def test_utf8_texts_matches_str_encode_with_offsets_per_text() -> None:
    data, offsets = utf8_texts(TEXTS)
    expected = [t if isinstance(t, bytes) else t.encode() for t in TEXTS]
    assert data == b"".join(expected)
    ends = array.array("i")
    ends.frombytes(offsets)
    assert ends.tolist() == [0, *[sum(map(len, expected[: k + 1])) for k in range(len(TEXTS))]]


def test_utf8_texts_writes_a_lone_surrogate_as_the_replacement_character() -> None:
    data, _ = utf8_texts(["x\ud800y"])
    assert data.decode() == "x\ufffdy"  # the column stays valid UTF-8


@pytest.mark.parametrize("texts", [("a tuple",), ["text", 3], ["text", None]])
def test_utf8_texts_refuses_anything_but_a_list_of_str_and_bytes(texts: object) -> None:
    with pytest.raises(TypeError):
        utf8_texts(texts)


def test_wide_texts_come_out_whole_and_in_order_across_many_batches(tmp_path: Path) -> None:
    texts = [f"turn {i}: {TEXTS[i % 6]}" for i in range(300)]
    conversations = [
        chatgpt_conversation(k, [("user", text) for text in texts[k * 100 : (k + 1) * 100]])
        for k in range(3)
    ]
    export = tmp_path / "conversations.json"
    export.write_text(json.dumps(conversations, ensure_ascii=False), encoding="utf-8")
    reader = ExportReader(str(export), batch_rows=7)  # dozens of batches, each encoded apart
    table = pa.Table.from_batches(list(reader.batches()))
    assert reader.stats.batches > 40
    assert table.column("text").to_pylist() == texts
    assert table.column("position").to_pylist() == [i % 100 for i in range(300)]
