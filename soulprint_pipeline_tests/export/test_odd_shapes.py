"""Exports of any shape: the reader gives rows or an ExportError, never a crash.

Real exports carry every kind of damage and drift: fields missing, nulls, numbers where strings
were, lists where objects were, integers too large for a float, times no calendar holds. Each
example here is a random export built from the fields the linearizers read, filled with
arbitrary JSON; the same rows must come out of the fast read and of the lean re-read that huge
conversations take.
"""

from __future__ import annotations

import json
from itertools import count
from typing import Any
from unittest import mock

import fsspec
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from soulprint_pipeline.export._native import common_case

from soulprint_pipeline.errors import ExportError
from soulprint_pipeline.export import jsonstream
from soulprint_pipeline.export.containers import ReadLimits
from soulprint_pipeline.export.dialects import chatgpt
from soulprint_pipeline.export.reader import ExportReader
from soulprint_pipeline.export.rows import ROLES, SCHEMA

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([1e300, -1e300, 1e20, 2**70, -(2**70), 0.5, 1_700_000_000.25]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _or_any(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(strategy, _json)


def _object(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """An object holding any subset of ``fields``, each well-formed or arbitrary JSON."""
    return st.fixed_dictionaries({}, optional={k: _or_any(v) for k, v in fields.items()})


_ids = st.sampled_from(["a", "b", "c", "d"])
_content = _object(
    content_type=st.sampled_from(
        ["text", "multimodal_text", "code", "execution_output", "tether_quote", "thoughts"]
        + ["user_editable_context", "model_editable_context", "something_new"]
    ),
    parts=st.lists(
        st.one_of(
            st.text(max_size=10),
            _object(content_type=st.sampled_from(["image_asset_pointer", "audio_transcription"])),
        ),
        max_size=3,
    ),
    text=st.text(max_size=10),
    language=st.text(max_size=5),
    user_profile=st.text(max_size=10),
    user_instructions=st.text(max_size=10),
    model_set_context=st.text(max_size=10),
)
_message = _object(
    id=_ids,
    author=_object(role=st.sampled_from(["user", "assistant", "system", "tool"])),
    content=_content,
    create_time=st.floats(0, 2e9),
    recipient=st.sampled_from(["all", "bio", "python"]),
    metadata=_object(
        is_visually_hidden_from_conversation=st.booleans(),
        is_user_system_message=st.booleans(),
        model_slug=st.text(max_size=6),
    ),
)
_node = _object(
    id=_ids, message=_message, parent=_ids, children=st.lists(_or_any(_ids), max_size=3)
)
_chatgpt = _object(
    title=st.text(max_size=10),
    create_time=st.floats(0, 2e9),
    current_node=_ids,
    conversation_id=st.text(max_size=6),
    is_do_not_remember=st.booleans(),
    mapping=st.dictionaries(_ids, _or_any(_node), max_size=4),
)
_claude_message = _object(
    uuid=_ids,
    sender=st.sampled_from(["human", "assistant"]),
    text=st.text(max_size=10),
    content=st.lists(_object(type=st.just("text"), text=st.text(max_size=10)), max_size=2),
    created_at=st.sampled_from(["2024-05-01T10:00:00Z", "2024-05-01", "not a time", "99999-01-01"]),
    parent_message_uuid=_ids,
    files=st.lists(_object(file_kind=st.just("image")), max_size=2),
)
_claude = st.builds(
    lambda conversation, messages: {**conversation, "chat_messages": messages},
    _object(uuid=st.text(max_size=6), name=st.text(max_size=10), current_leaf_message_uuid=_ids),
    _or_any(st.lists(_or_any(_claude_message), max_size=4)),
)
_items = st.lists(st.one_of(_chatgpt, _claude, _json), min_size=1, max_size=4)
_exports = st.one_of(_items, st.builds(lambda items: {"conversations": items}, _items), _chatgpt)

_names = count()
_VISIBLE = {"author": {"role": "user"}, "content": {"content_type": "text", "parts": ["hi"]}}


def _padded(export: Any) -> Any:
    """``export`` with 70 KB nobody reads up front: the reader decides to read leanly between
    reads of 64 KB, so a smaller export would never take the lean path."""
    padding = "p" * 70_000
    if isinstance(export, list):
        return [{"title": "padding", "padding": padding}, *export]
    if isinstance(export, dict) and isinstance(export.get("conversations"), list):
        return {**export, "conversations": _padded(export["conversations"])}
    if isinstance(export, dict):
        return {"padding": padding, **export}
    return export


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI never meets a new one by chance
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(_exports)
# damage met by this test before, kept as fixed examples
@example([{"chat_messages": [{"sender": [], "text": "hi"}]}])
@example([{"chat_messages": [{"sender": "human", "text": "", "files": 3}]}])
@example([{"chat_messages": [{"sender": "human", "text": "", "files": [{"file_kind": []}]}]}])
@example([{"chat_messages": [{"sender": "human", "text": "hi", "created_at": 1e300}]}])
@example([{"mapping": {"a": {"id": "a", "children": True}}}])
@example([{"mapping": {"a": {"id": "a", "parent": ["b"], "children": [["c"]]}}}])
@example([{"create_time": 1e300, "mapping": {"a": {"message": _VISIBLE}}}])
@example([{"mapping": {"a": {"message": _VISIBLE | {"create_time": -1e300}}}}])
@example([{"mapping": {"a": {"message": _VISIBLE | {"content": {"content_type": ["x"]}}}}}])
@example([{"mapping": {"a": {"message": _VISIBLE | {"content": {"content_type": {"x": 1}}}}}}])
@example([{"mapping": {"a": {"message": _VISIBLE | {"content": {"parts": 5}}}}}])
@example(
    [{"mapping": {"a": {"message": _VISIBLE | {"content": {"parts": [{"content_type": []}]}}}}}]
)
def test_any_shape_gives_rows_or_an_export_error(export: Any) -> None:
    url = f"memory://odd-shapes/{next(_names)}.json"
    memory = fsspec.filesystem("memory")
    memory.pipe(url, json.dumps(_padded(export)).encode())
    try:
        fastly = ExportReader(url)
        try:
            fast = pa.Table.from_batches(list(fastly.batches()), schema=SCHEMA)
        except ExportError:
            return
        leanly = ExportReader(url, limits=ReadLimits(lean_after_bytes=64))
        lean = pa.Table.from_batches(list(leanly.batches()), schema=SCHEMA)
        assert fast.equals(lean)
        assert leanly.stats.as_dict() == fastly.stats.as_dict()
        assert set(fast.column("role").to_pylist()) <= set(ROLES)
        assert all(text and not text.isspace() for text in fast.column("text").to_pylist())
        conversations = list(ExportReader(url).conversations())
        assert sum(len(c.messages) for c in conversations) == fast.num_rows
    finally:
        memory.rm(url)


def test_the_padding_sends_the_reader_down_the_lean_path(monkeypatch: pytest.MonkeyPatch) -> None:
    lean_reads: list[bool] = []
    items = jsonstream._items

    def spied(stream: Any, document: str, lean: bool, *args: Any) -> Any:
        lean_reads.append(lean)
        return items(stream, document, lean, *args)

    monkeypatch.setattr(jsonstream, "_items", spied)
    url = "memory://odd-shapes/padded.json"
    fsspec.filesystem("memory").pipe(url, json.dumps(_padded([{"mapping": {}}])).encode())
    list(ExportReader(url, limits=ReadLimits(lean_after_bytes=64)).batches())
    assert lean_reads == [False, True]


def _classified_in_python(message: Any) -> Any:
    with mock.patch.object(chatgpt, "common_case", lambda _message: None):
        return chatgpt.classify(message)


@settings(
    max_examples=3000,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.one_of(_message, _json))
def test_the_c_shortcuts_answer_as_the_python_rules_do(message: Any) -> None:
    """``common_case`` (C) answers for a message only as ``chatgpt.classify``'s rules would."""
    shortcut = common_case(message)
    if shortcut is not None:
        assert shortcut == _classified_in_python(message)
        assert type(shortcut) is type(_classified_in_python(message))


_SYSTEM_PROMPT = {
    "author": {"role": "system"},
    "content": {"content_type": "text", "parts": [""]},
    "metadata": {"is_visually_hidden_from_conversation": True},
}
_TOOL_CALL = {
    "author": {"role": "assistant"},
    "content": {"content_type": "code", "text": "print(1)"},
    "recipient": "python",
    "metadata": {"is_visually_hidden_from_conversation": False},
}


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (_SYSTEM_PROMPT, "message:hidden"),
        (_TOOL_CALL, "message:not_for_the_person"),
        (_VISIBLE | {"content": {"content_type": "thoughts", "thoughts": []}}, "message:thoughts"),
    ],
)
def test_the_common_skips_are_decided_in_c(message: dict[str, Any], reason: str) -> None:
    assert common_case(message) == reason == _classified_in_python(message)


def test_what_the_c_shortcuts_leave_to_python() -> None:
    assert common_case(_TOOL_CALL | {"recipient": "bio"}) is None  # a saved memory
    assert common_case(_SYSTEM_PROMPT | {"metadata": {}}) is None  # system: is_user_system_message
    assert (
        common_case(_SYSTEM_PROMPT | {"metadata": {"is_visually_hidden_from_conversation": 1}})
        is None
    )
