"""Tests for the synthetic ChatGPT export generator (soulprint_pipeline.testing.synthetic).

The visibility rules are re-implemented here on purpose, independently of the generator, and
checked against real fixtures whose counts are documented in SOURCES.md.
"""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from soulprint_pipeline.testing.synthetic import (
    FORMATS,
    main,
    parse_size,
    write_chatgpt_json,
    write_export,
)
from soulprint_pipeline.testing.truth import ExportTruth
from soulprint_pipeline_tests.support.exports import REAL_FIXTURES

KB = 1024
MB = 1024 * 1024
CONVERSATION_KEYS = [
    "title",
    "create_time",
    "update_time",
    "mapping",
    "moderation_results",
    "current_node",
    "plugin_ids",
    "conversation_id",
    "conversation_template_id",
    "gizmo_id",
    "gizmo_type",
    "is_archived",
    "safe_urls",
    "default_model_slug",
    "is_do_not_remember",
    "memory_scope",
    "id",
]


# --------------------------------------------------------------------------- independent count


def _active_leaf(conversation: dict[str, Any]) -> str:
    mapping = conversation["mapping"]
    current = conversation.get("current_node")
    if current is not None:
        return current
    leaves = [
        node
        for node in mapping.values()
        if not node.get("children")
        and node.get("message")
        and node["message"].get("create_time") is not None
    ]
    return max(leaves, key=lambda node: node["message"]["create_time"])["id"]


def _active_path(conversation: dict[str, Any]) -> list[dict[str, Any]]:
    mapping = conversation["mapping"]
    path = []
    node_id: str | None = _active_leaf(conversation)
    while node_id is not None:
        node = mapping[node_id]
        path.append(node)
        node_id = node.get("parent")
    return path[::-1]


def _text_of(content: dict[str, Any]) -> str:
    kind = content.get("content_type")
    if kind in ("code", "execution_output", "tether_quote"):
        return content.get("text") or ""
    if kind not in ("text", "multimodal_text"):
        return ""
    out = []
    for part in content.get("parts") or []:
        if isinstance(part, str):
            out.append(part)
        elif part.get("content_type") == "image_asset_pointer":
            out.append("[image]")
        elif part.get("content_type") == "audio_transcription":
            out.append(part.get("text", ""))
    return " ".join(out)


def _is_visible(message: dict[str, Any]) -> bool:
    role = message.get("author", {}).get("role")
    content = message.get("content") or {}
    kind = content.get("content_type")
    if message.get("metadata", {}).get("is_visually_hidden_from_conversation"):
        return False
    if role == "tool":
        allowed = {"execution_output", "multimodal_text"}  # code output, generated images
    elif role in ("user", "assistant"):
        allowed = {"text", "multimodal_text", "code", "execution_output", "tether_quote"}
    else:
        return False
    if kind not in allowed or message.get("recipient", "all") not in (None, "all"):
        return False
    return bool(_text_of(content).strip())


def count(conversations: list[dict[str, Any]]) -> Counter[str]:
    """Count what ExportTruth describes, walking plain json.load'ed data."""
    totals: Counter[str] = Counter()
    for conversation in conversations:
        totals["conversations"] += 1
        if "mapping" not in conversation:
            totals["without_mapping"] += 1
            continue
        if conversation.get("is_do_not_remember"):
            totals["do_not_remember"] += 1
            continue
        for node in _active_path(conversation):
            message = node.get("message")
            if not message:
                continue
            if message["content"].get("content_type") == "user_editable_context":
                totals["custom_instructions"] += 1
            elif message["content"].get("content_type") == "model_editable_context" or (
                message["author"]["role"] == "assistant" and message.get("recipient") == "bio"
            ):
                totals["memories"] += 1
            elif _is_visible(message):
                totals["visible_messages"] += 1
    return totals


def assert_truth(truth: ExportTruth, conversations: list[dict[str, Any]]) -> None:
    counted = count(conversations)
    for field in (
        "conversations",
        "visible_messages",
        "do_not_remember",
        "without_mapping",
        "custom_instructions",
        "memories",
    ):
        assert getattr(truth, field) == counted[field], field


@pytest.mark.parametrize(
    ("name", "visible"),
    [
        ("chatgpt-librechat-tree.json", [6]),
        ("chatgpt-mitkury-branch.json", [4]),
        ("chatgpt-librechat-modern-export.json", [4, 0, 2]),
    ],
)
def test_independent_count_agrees_with_real_fixtures(name: str, visible: list[int]) -> None:
    path = REAL_FIXTURES / name
    data = json.loads(path.read_text(encoding="utf-8"))
    assert [count([c])["visible_messages"] for c in data] == visible


# --------------------------------------------------------------------------- helpers


def _generate(target: int, seed: int = 0, **kwargs: Any) -> tuple[bytes, ExportTruth]:
    buffer = io.BytesIO()
    truth = write_chatgpt_json(buffer, target_bytes=target, seed=seed, **kwargs)
    return buffer.getvalue(), truth


def _read_export(path: Path, fmt: str) -> tuple[list[dict[str, Any]], int, list[str]]:
    """Return (conversations, uncompressed JSON bytes, zip member names in archive order)."""
    if fmt in ("json", "wrapped"):
        raw = path.read_bytes()
        data = json.loads(raw)
        return (data["conversations"] if fmt == "wrapped" else data), len(raw), []
    if fmt == "gzip":
        with gzip.open(path, "rb") as handle:
            raw = handle.read()
        return json.loads(raw), len(raw), []
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        members = sorted(n for n in names if n.rsplit("/", 1)[-1].startswith("conversations"))
        conversations: list[dict[str, Any]] = []
        size = 0
        for member in members:
            raw = archive.read(member)
            data = json.loads(raw)
            assert isinstance(data, list), member
            conversations.extend(data)
            size += len(raw)
        return conversations, size, names


# --------------------------------------------------------------------------- tests


def test_same_seed_same_bytes() -> None:
    first, truth_a = _generate(600 * KB, seed=7)
    second, truth_b = _generate(600 * KB, seed=7)
    other, _ = _generate(600 * KB, seed=8)
    assert first == second
    assert truth_a == truth_b
    assert first != other


@pytest.mark.parametrize("target", [1 * MB, 3 * MB])
@pytest.mark.parametrize("wrapped", [False, True])
def test_target_size_is_met(target: int, wrapped: bool) -> None:
    raw, truth = _generate(target, seed=3, wrapped=wrapped)
    assert truth.bytes_written == len(raw)
    assert abs(len(raw) - target) <= target * 0.10
    data = json.loads(raw)
    assert isinstance(data, dict) if wrapped else isinstance(data, list)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_truth_matches_independent_count(seed: int) -> None:
    raw, truth = _generate(2 * MB, seed=seed)
    conversations = json.loads(raw)
    assert_truth(truth, conversations)
    assert truth.visible_messages > 100
    assert truth.do_not_remember >= 1 and truth.without_mapping >= 1


def test_shapes_look_like_real_exports() -> None:
    raw, truth = _generate(6 * MB, seed=11)
    conversations = json.loads(raw)
    content_types: set[str] = set()
    part_types: set[str] = set()
    features: Counter[str] = Counter()
    for conversation in conversations:
        if "mapping" not in conversation:
            assert "current_node" not in conversation
            features["corrupt"] += 1
            continue
        assert list(conversation) == CONVERSATION_KEYS
        mapping = conversation["mapping"]
        roots = [node for node in mapping.values() if node["parent"] is None]
        assert len(roots) == 1
        root = roots[0]
        features["null root" if root["message"] is None else "user root"] += 1
        features["client-created-root"] += root["id"] == "client-created-root"
        features["not root-first"] += next(iter(mapping)) != root["id"]
        if conversation["current_node"] is None:
            features["current_node null"] += 1
        else:
            assert conversation["current_node"] in mapping
            assert not mapping[conversation["current_node"]]["children"]
        for node_id, node in mapping.items():
            assert node["id"] == node_id
            for child in node["children"]:
                assert mapping[child]["parent"] == node_id
            message = node["message"]
            if message is None:
                continue
            assert message["id"] == node_id
            assert list(message)[:4] == ["id", "author", "create_time", "update_time"]
            content_types.add(message["content"]["content_type"])
            for part in message["content"].get("parts") or []:
                if isinstance(part, dict):
                    part_types.add(part["content_type"])
            features[f"recipient {message['recipient']}"] += 1
        path = _active_path(conversation)
        visible = [n for n in path if n["message"] and _is_visible(n["message"])]
        features["0 visible"] += not visible
        for parent, child in zip(path, path[1:], strict=False):
            if len(parent["children"]) > 1:
                assert parent["children"].index(child["id"]) > 0  # active = a later branch
                role = child["message"]["author"]["role"]
                features[f"branch at {role}"] += 1
    assert content_types >= {
        "text",
        "multimodal_text",
        "code",
        "execution_output",
        "tether_browsing_display",
        "tether_quote",
        "thoughts",
        "reasoning_recap",
        "user_editable_context",
        "model_editable_context",
    }
    assert part_types >= {"image_asset_pointer", "audio_transcription", "audio_asset_pointer"}
    for feature in (
        "corrupt",
        "null root",
        "user root",
        "client-created-root",
        "not root-first",
        "current_node null",
        "recipient python",
        "recipient browser",
        "recipient bio",
        "0 visible",
        "branch at user",
        "branch at assistant",
    ):
        assert features[feature] > 0, feature
    assert_truth(truth, conversations)


def test_text_is_unicode_and_sometimes_long() -> None:
    raw, _ = _generate(4 * MB, seed=5)
    text = raw.decode("utf-8")
    for sample in ("é", "ñ", "ü", "我", "日本語", "ك", "😊"):
        assert sample in text, sample
    longest = 0
    for conversation in json.loads(raw):
        for node in conversation.get("mapping", {}).values():
            message = node["message"]
            if message and message["content"]["content_type"] == "text":
                longest = max(longest, len(message["content"]["parts"][0]))
    assert longest >= 5_000


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_is_readable(fmt: str, tmp_path: Path) -> None:
    suffix = {"gzip": ".json.gz", "json": ".json", "wrapped": ".json"}.get(fmt, ".zip")
    path = tmp_path / f"export{suffix}"
    truth = write_export(str(path), fmt=fmt, target_bytes=900 * KB, seed=4, shards=3)
    conversations, size, names = _read_export(path, fmt)
    assert len(conversations) == truth.conversations
    assert size == truth.bytes_written
    assert abs(size - 900 * KB) <= 900 * KB * 0.15
    assert_truth(truth, conversations)
    if fmt == "zip":
        assert set(names) == {"conversations.json", "chat.html", "user.json"}
    if fmt == "zip-folder":
        assert "export-2026/conversations.json" in names
        assert {"export-2026/chat.html", "export-2026/user.json"} <= set(names)
    if fmt == "zip-sharded":
        shards = [n for n in names if n.startswith("conversations-")]
        assert sorted(shards) == [f"conversations-{i:03d}.json" for i in range(3)]
        assert shards != sorted(shards)
        ids = [c["id"] for c in conversations]
        assert len(set(ids)) == len(ids)


def test_unknown_format_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_export(str(tmp_path / "x"), fmt="tar", target_bytes=1000)


def test_giant_conversation_is_at_least_the_requested_size() -> None:
    giant = 3 * MB
    raw, truth = _generate(4 * MB, seed=9, giant_conversation_bytes=giant)
    conversations = json.loads(raw)
    first = json.dumps(conversations[0], ensure_ascii=False).encode("utf-8")
    assert raw.startswith(b"[" + first)  # the serialisation is plain json.dumps
    assert giant <= len(first) <= giant * 1.2
    assert "mapping" in conversations[0] and not conversations[0]["is_do_not_remember"]
    assert_truth(truth, conversations)
    assert truth.bytes_written == len(raw)


def test_giant_conversation_goes_first_in_sharded_zip(tmp_path: Path) -> None:
    path = tmp_path / "export.zip"
    truth = write_export(
        str(path),
        fmt="zip-sharded",
        target_bytes=3 * MB,
        seed=2,
        giant_conversation_bytes=2 * MB,
        shards=2,
    )
    with zipfile.ZipFile(path) as archive:
        first = json.loads(archive.read("conversations-000.json"))[0]
    assert len(json.dumps(first, ensure_ascii=False).encode("utf-8")) >= 2 * MB
    assert truth.bytes_written >= 3 * MB


class _RecordingWriter(io.RawIOBase):
    def __init__(self) -> None:
        self.sizes: list[int] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.sizes.append(len(data))
        return len(data)


def test_output_is_streamed_in_bounded_chunks() -> None:
    writer = _RecordingWriter()
    sink: Any = writer
    truth = write_chatgpt_json(sink, target_bytes=8 * MB, seed=1, giant_conversation_bytes=6 * MB)
    assert sum(writer.sizes) == truth.bytes_written
    assert max(writer.sizes) < 3 * MB  # the 6 MB conversation is not written in one piece


def test_parse_size() -> None:
    assert parse_size("50MB") == 50 * MB
    assert parse_size("1GB") == 1024 * MB
    assert parse_size("2gb") == 2048 * MB
    assert parse_size("1.5GiB") == 1536 * MB
    assert parse_size("300k") == 300 * KB
    assert parse_size("12345") == 12345
    assert parse_size(99) == 99
    with pytest.raises(ValueError):
        parse_size("lots")


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "export.zip"
    main([str(path), "--size", "300KB", "--format", "zip", "--seed", "1"])
    printed = json.loads(capsys.readouterr().out)
    conversations, size, _ = _read_export(path, "zip")
    assert printed["conversations"] == len(conversations)
    assert printed["bytes_written"] == size
