"""Seeded, streaming generator of realistic ChatGPT data exports.

Used by tests (small files whose exact content is known through the
:class:`~soulprint_pipeline.testing.truth.ExportTruth` it returns) and by benchmarks (exports of
up to 2 GB, optionally with one giant conversation). The shapes follow real
``conversations.json`` files: ``mapping`` trees with a null root, hidden system nodes, custom
instructions, tool calls (python, browser, DALL-E, memory), reasoning models, voice and image
messages, regenerations and user edits, shuffled mapping order, ``current_node`` null,
``is_do_not_remember`` chats and the odd corrupted conversation without a mapping. The text and
data it writes are invented; they live in :mod:`soulprint_pipeline.testing.pools`.

Memory stays constant whatever the total size: the export is written conversation by
conversation, and each mapping node is serialised on its own. Only the skeleton of the current
conversation is held in memory; the text of long pasted documents is materialised just while
its node is being written, so even a giant conversation costs little more than its node dicts.

Command line::

    python -m soulprint_pipeline.testing.synthetic OUT --size 50MB --format zip [--giant 100MB]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import sys
import time
import zipfile
from dataclasses import asdict
from typing import Any, BinaryIO

from soulprint_pipeline.testing import pools
from soulprint_pipeline.testing.truth import ExportTruth, classify_message

__all__ = [
    "FORMATS",
    "main",
    "parse_size",
    "write_chatgpt_json",
    "write_export",
]

FORMATS = ("json", "wrapped", "gzip", "zip", "zip-folder", "zip-sharded")

# --------------------------------------------------------------------------- generator

_ENCODE = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode
_NODE_OVERHEAD = 700  # rough serialised size of a node without its text, for budgeting
_NODE_WRAPPER_MIN = 100  # '"<id>": {"id": "<id>", "message": ..., "parent": ..., "children": []}'
_FLUSH_BYTES = 1 << 20


class _Sink:
    """Buffers encoded JSON and writes it to ``out`` in chunks of about 1 MB."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.bytes = 0
        self._pending: list[bytes] = []
        self._pending_size = 0

    def write(self, text: str) -> None:
        data = text.encode("utf-8")
        self.bytes += len(data)
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size >= _FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self.out.write(b"".join(self._pending))
            self._pending = []
            self._pending_size = 0


class _Node:
    __slots__ = ("id", "message", "parent", "children", "lazy")

    def __init__(self, node_id: str, message: dict[str, Any] | None, parent: str | None) -> None:
        self.id = node_id
        self.message = message
        self.parent = parent
        self.children: list[str] = []
        # (prefix, corpus offset, length): parts[0] of a long text, filled in at write time
        self.lazy: tuple[str, int, int] | None = None


class _Conversation:
    """Skeleton of one conversation being built (all random choices are made here)."""

    def __init__(
        self,
        gen: _Generator,
        start: float,
        model: str,
        branchy: bool,
        current_null: bool,
        giant: bool,
        budget: int,
    ) -> None:
        self.gen = gen
        self.rng = gen.rng
        self.nodes: dict[str, _Node] = {}
        self.clock = start
        self.model = model
        self.reasoning = model in pools.REASONING_MODELS
        self.modern = model.startswith("gpt-5")
        self.branchy = branchy
        self.current_null = current_null
        self.giant = giant
        self.budget = budget
        self.estimate = 0  # estimated serialised bytes (budgeting)
        self.lower_bound = 0  # guaranteed minimum serialised bytes (giant conversations)
        self.safe_urls: list[str] = []

    # -- primitives ------------------------------------------------------------------------

    def tick(self, low: float, high: float) -> float:
        self.clock += low + (high - low) * self.rng.random()
        return round(self.clock, 6)

    def uid(self, prefix: str = "") -> str:
        h = f"{self.rng.getrandbits(128):032x}"
        if prefix:
            h = prefix + h[len(prefix) :]
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def add(
        self,
        parent: str | None,
        message: dict[str, Any] | None,
        node_id: str | None = None,
        text_chars: int = 0,
    ) -> _Node:
        node_id = node_id or (message["id"] if message else self.uid())
        node = _Node(node_id, message, parent)
        self.nodes[node_id] = node
        if parent is not None:
            self.nodes[parent].children.append(node_id)
        self.estimate += _NODE_OVERHEAD + text_chars + (text_chars >> 3)
        if self.giant:  # exact message size (a lazy text part is still null or "" here)
            self.lower_bound += _NODE_WRAPPER_MIN
            if message is not None:
                self.lower_bound += len(_ENCODE(message).encode("utf-8"))
        return node

    def offset(self, n: int) -> int:
        """A random sentence start in the corpus with at least ``n`` characters after it."""
        pool = self.gen.pool
        offset = pool.starts[self.rng.randrange(len(pool.starts))]
        return offset if offset + n <= pool.size else pool.starts[0]

    def slice(self, n: int) -> str:
        offset = self.offset(n)
        return self.gen.pool.corpus[offset : offset + n]

    def lazy_slice(self) -> tuple[int, int]:
        """Pick a 5-50 KB pasted document; returns (corpus offset, length)."""
        n = self.rng.randint(5_000, 50_000)
        return self.offset(n), n

    def message(
        self,
        role: str,
        content: dict[str, Any],
        metadata: dict[str, Any],
        *,
        t: float | None,
        name: str | None = None,
        recipient: str = "all",
        end_turn: bool | None = None,
        weight: float = 1.0,
        channel: str | None = None,
        status: str = "finished_successfully",
        mid: str | None = None,
    ) -> dict[str, Any]:
        return {
            "id": mid or self.uid("aaa2" if role == "user" else ""),
            "author": {"role": role, "name": name, "metadata": {}},
            "create_time": t,
            "update_time": None,
            "content": content,
            "status": status,
            "end_turn": end_turn,
            "weight": weight,
            "metadata": metadata,
            "recipient": recipient,
            "channel": channel,
        }

    def user_meta(self) -> dict[str, Any]:
        return {
            "request_id": f"{self.rng.getrandbits(64):016x}-IAD",
            "message_source": None,
            "timestamp_": "absolute",
            "message_type": None,
        }

    def assistant_meta(self, parent: str, finish: str = "stop") -> dict[str, Any]:
        return {
            "finish_details": {"type": finish, "stop_tokens": [200002]}
            if finish == "stop"
            else {"type": finish},
            "is_complete": finish == "stop",
            "citations": [],
            "content_references": [],
            "message_type": None,
            "model_slug": self.model,
            "default_model_slug": self.model,
            "parent_id": parent,
            "timestamp_": "absolute",
        }

    def image_part(self) -> dict[str, Any]:
        rng = self.rng
        scheme = "file-service://file-" if rng.random() < 0.6 else "sediment://file_"
        return {
            "content_type": "image_asset_pointer",
            "asset_pointer": scheme + f"{rng.getrandbits(96):024x}",
            "size_bytes": rng.randint(40_000, 4_000_000),
            "width": rng.choice((768, 1024, 1536, 2048)),
            "height": rng.choice((768, 1024, 1365, 1536)),
            "fovea": None,
            "metadata": {
                "dalle": None,
                "gizmo": None,
                "generation": None,
                "container_pixel_height": None,
                "container_pixel_width": None,
                "emu_omit_glimpse_image": None,
                "emu_patches_override": None,
                "sanitized": True,
                "asset_pointer_link": None,
                "watermarked_asset_pointer": None,
            },
        }

    def audio_parts(self, text: str, direction: str) -> list[Any]:
        rng = self.rng
        return [
            {
                "content_type": "audio_transcription",
                "text": text,
                "direction": direction,
                "decoding_id": None,
            },
            {
                "content_type": "audio_asset_pointer",
                "expiry_datetime": None,
                "asset_pointer": f"sediment://file_{rng.getrandbits(96):024x}",
                "size_bytes": rng.randint(20_000, 900_000),
                "format": "wav",
                "metadata": {
                    "start_timestamp": None,
                    "end_timestamp": None,
                    "pretokenized_vq": None,
                    "interruptions": None,
                    "original_audio_source": None,
                    "transcription": None,
                    "word_transcription": None,
                    "start": 0.0,
                    "end": round(rng.uniform(1.0, 30.0), 2),
                },
            },
        ]

    def user_length(self) -> int:
        if self.rng.random() < 0.04:
            return self.rng.randint(400, 2_000)
        return max(20, min(400, int(self.rng.lognormvariate(4.4, 0.8))))

    def assistant_length(self) -> int:
        return max(40, min(4_000, int(self.rng.lognormvariate(6.5, 0.7))))

    # -- fixed nodes -----------------------------------------------------------------------

    def system_node(self, parent: str) -> str:
        message = self.message(
            "system",
            {"content_type": "text", "parts": [""]},
            {"is_visually_hidden_from_conversation": True},
            t=None,
            end_turn=True,
            weight=0.0,
        )
        return self.add(parent, message).id

    def custom_instructions(self, parent: str) -> str:
        rng = self.rng
        about = " ".join(rng.sample(pools.FACTS, 3)).replace("User ", "I ")
        respond = rng.choice(
            ["Be concise.", "Use metric units.", "Réponds en français.", "No emojis please."]
        )
        return self.instructions_node(
            parent,
            "The user provided the following information about themselves. " + about,
            "The user provided the additional info about how they would like you to respond: "
            + respond,
            about_user="",
            text_chars=300,
        )

    def instructions_node(
        self, parent: str, profile: str, instructions: str, *, about_user: str, text_chars: int
    ) -> str:
        """A custom-instructions node (``user_editable_context``) under ``parent``; its id."""
        content = {
            "content_type": "user_editable_context",
            "user_profile": profile,
            "user_instructions": instructions,
        }
        metadata = {
            "is_visually_hidden_from_conversation": True,
            "user_context_message_data": {
                "about_user_message": about_user,
                "about_model_message": "",
            },
            "is_user_system_message": True,
        }
        message = self.message("user", content, metadata, t=None, weight=1.0)
        return self.add(parent, message, text_chars=text_chars).id

    def model_context(self, parent: str) -> str:
        facts = self.rng.sample(pools.FACTS, 3)
        return self.context_node(
            parent, [f"{i}. [2025-0{i}-1{i}]. {f}" for i, f in enumerate(facts, 1)]
        )

    def context_node(self, parent: str, memories: list[str]) -> str:
        """A memory snapshot node (``model_editable_context``, one numbered memory a line)
        under ``parent``; its id."""
        content = {
            "content_type": "model_editable_context",
            "model_set_context": "\n".join(memories),
            "repository": None,
            "repo_summary": None,
            "structured_context": None,
        }
        message = self.message(
            "assistant",
            content,
            {"is_visually_hidden_from_conversation": True},
            t=self.tick(0.1, 0.5),
        )
        return self.add(parent, message, text_chars=150).id

    # -- user messages ---------------------------------------------------------------------

    def user(self, parent: str | None, paste: bool = False) -> str:
        rng = self.rng
        t = self.tick(20.0, 1800.0) if rng.random() < 0.9 else self.tick(3600.0, 86400.0 * 3)
        metadata = self.user_meta()
        if paste:
            offset, n = self.lazy_slice()
            prefix = rng.choice(pools.PASTE_OPENERS)
            message = self.message("user", {"content_type": "text", "parts": [None]}, metadata, t=t)
            node = self.add(parent, message, text_chars=n + len(prefix))
            node.lazy = (prefix, offset, n)
            pool = self.gen.pool
            if self.giant:  # the document replaces a 4-byte null by a >= 2+len(utf8) string
                document = prefix + pool.corpus[offset : offset + n]
                self.lower_bound += len(document.encode("utf-8")) - 2
            return node.id
        roll = rng.random()
        if roll < 0.06:  # image upload, usually with a question, sometimes alone
            parts: list[Any] = [self.image_part()]
            if rng.random() < 0.7:
                parts.append(self.slice(self.user_length()))
            metadata["attachments"] = [
                {
                    "id": parts[0]["asset_pointer"].split("//")[1],
                    "size": parts[0]["size_bytes"],
                    "name": "IMG_2041.jpeg",
                    "mime_type": "image/jpeg",
                }
            ]
            content = {"content_type": "multimodal_text", "parts": parts}
        elif roll < 0.09:  # voice message
            metadata["voice_mode_message"] = True
            content = {
                "content_type": "multimodal_text",
                "parts": self.audio_parts(self.slice(self.user_length()), "in"),
            }
        else:
            text = rng.choice(pools.USER_OPENERS) + self.slice(self.user_length())
            content = {"content_type": "text", "parts": [text]}
        message = self.message("user", content, metadata, t=t)
        return self.add(parent, message, text_chars=250).id

    # -- assistant responses ---------------------------------------------------------------

    def answer(
        self,
        parent: str,
        *,
        status: str = "finished_successfully",
        finish: str = "stop",
        citations: bool = False,
    ) -> str:
        """A plain assistant text answer (the usual final message of a turn)."""
        rng = self.rng
        n = self.assistant_length()
        if self.giant and not citations and rng.random() < 0.05:
            offset, n = self.lazy_slice()
        else:
            offset = -1
        text = "" if offset >= 0 else self.slice(n)
        metadata = self.assistant_meta(parent, finish)
        if citations and self.safe_urls:
            text += " 【3†source】"
            metadata["citations"] = [
                {
                    "start_ix": len(text) - 10,
                    "end_ix": len(text),
                    "citation_format_type": "tether_og",
                    "metadata": {
                        "type": "webpage",
                        "url": self.safe_urls[-1],
                        "text": "",
                        "pub_date": None,
                    },
                }
            ]
        message = self.message(
            "assistant",
            {"content_type": "text", "parts": [text]},
            metadata,
            t=self.tick(2.0, 40.0),
            end_turn=finish == "stop",
            status=status,
            channel="final" if self.modern else None,
        )
        node = self.add(parent, message, text_chars=n)
        if offset >= 0:
            message["content"]["parts"] = [None]
            node.lazy = ("", offset, n)
            # the document replaces a 2-byte "" by a string of at least 2+len(utf8) bytes
            self.lower_bound += len(self.gen.pool.corpus[offset : offset + n].encode("utf-8"))
        return node.id

    def response(self, parent: str) -> str:
        """The assistant side of a turn: tool calls, reasoning... then usually a text answer."""
        rng = self.rng
        tip = parent
        if self.reasoning and rng.random() < 0.6:
            thoughts = {
                "content_type": "thoughts",
                "thoughts": [
                    {
                        "summary": rng.choice(pools.THOUGHT_SUMMARIES),
                        "content": self.slice(rng.randint(80, 600)),
                        "chunks": [],
                        "finished": True,
                    }
                    for _ in range(rng.randint(1, 3))
                ],
                "source_analysis_msg_id": self.uid(),
            }
            metadata = self.assistant_meta(tip)
            metadata["reasoning_status"] = "is_reasoning"
            tip = self.add(
                tip,
                self.message(
                    "assistant",
                    thoughts,
                    metadata,
                    t=self.tick(1.0, 4.0),
                    end_turn=False,
                    channel="analysis" if self.modern else None,
                ),
                text_chars=800,
            ).id
            metadata = self.assistant_meta(tip)
            metadata["reasoning_status"] = "reasoning_ended"
            recap = {"content_type": "reasoning_recap", "content": rng.choice(pools.RECAPS)}
            tip = self.add(
                tip,
                self.message("assistant", recap, metadata, t=self.tick(1.0, 60.0), end_turn=False),
            ).id
        roll = rng.random()
        if roll < 0.06:
            return self.python_tool(tip)
        if roll < 0.10:
            return self.browse(tip)
        if roll < 0.14:
            return self.memory_write(tip)
        if roll < 0.16:
            return self.visible_code(tip)
        if roll < 0.17:
            return self.dalle(tip)
        if roll < 0.19:
            return self.voice_answer(tip)
        if roll < 0.21:  # an empty assistant message before the real answer (not visible)
            message = self.message(
                "assistant",
                {"content_type": "text", "parts": [""]},
                self.assistant_meta(tip),
                t=self.tick(0.5, 2.0),
                end_turn=False,
            )
            tip = self.add(tip, message).id
        return self.answer(tip)

    def python_tool(self, parent: str) -> str:
        rng = self.rng
        code, output = rng.choice(pools.CODE_SNIPPETS)
        if rng.random() < 0.05:
            output = ""  # an execution with no output: not visible
        message = self.message(
            "assistant",
            {
                "content_type": "code",
                "language": "python",
                "response_format_name": None,
                "text": code,
            },
            self.assistant_meta(parent),
            t=self.tick(2.0, 20.0),
            recipient="python",
            end_turn=False,
            channel="commentary" if self.modern else None,
        )
        code_id = self.add(parent, message, text_chars=len(code)).id
        t = self.tick(0.5, 10.0)
        tool_meta = {
            "is_complete": True,
            "aggregate_result": {
                "status": "success",
                "run_id": self.uid(),
                "start_time": t,
                "update_time": t,
                "code": code,
                "end_time": t,
                "final_expression_output": output,
                "in_kernel_exception": None,
                "system_exception": None,
                "messages": [],
                "jupyter_messages": [],
                "timeout_triggered": None,
            },
            "model_slug": self.model,
            "parent_id": code_id,
            "timestamp_": "absolute",
        }
        message = self.message(
            "tool",
            {"content_type": "execution_output", "text": output},
            tool_meta,
            t=t,
            name="python",
        )
        tool_id = self.add(code_id, message, text_chars=len(code) + 2 * len(output)).id
        return self.answer(tool_id)

    def browse(self, parent: str) -> str:
        rng = self.rng
        query = self.slice(rng.randint(20, 60)).replace('"', "'")
        message = self.message(
            "assistant",
            {
                "content_type": "code",
                "language": "unknown",
                "response_format_name": None,
                "text": f'search("{query}")',
            },
            self.assistant_meta(parent),
            t=self.tick(2.0, 10.0),
            recipient="browser",
            end_turn=False,
        )
        tip = self.add(parent, message, text_chars=60).id
        sites = rng.sample(pools.SITES, 3)
        result = "\n".join(
            f"# 【{i}†{title}†{domain}】\n{self.slice(rng.randint(100, 300))}"
            for i, (_, domain, title) in enumerate(sites)
        )
        display = {
            "content_type": "tether_browsing_display",
            "result": result,
            "summary": None,
            "assets": None,
            "tether_id": None,
        }
        metadata = {
            "_cite_metadata": {"citation_format": {"name": "tether_og"}, "metadata_list": []},
            "command": "search",
            "args": [query],
            "status": "finished",
            "is_complete": True,
            "timestamp_": "absolute",
        }
        message = self.message("tool", display, metadata, t=self.tick(0.5, 5.0), name="browser")
        tip = self.add(tip, message, text_chars=len(result)).id
        picks = rng.sample(range(3), rng.randint(1, 2))
        message = self.message(
            "assistant",
            {
                "content_type": "code",
                "language": "unknown",
                "response_format_name": None,
                "text": f"mclick({sorted(picks)})",
            },
            self.assistant_meta(tip),
            t=self.tick(1.0, 5.0),
            recipient="browser",
            end_turn=False,
        )
        tip = self.add(tip, message, text_chars=20).id
        for pick in picks:
            url, domain, title = sites[pick]
            text = self.slice(rng.randint(300, 3_000))
            quote = {
                "content_type": "tether_quote",
                "url": url,
                "domain": domain,
                "text": text,
                "title": title,
                "tether_id": None,
            }
            message = self.message(
                "tool",
                quote,
                {"command": "mclick", "status": "finished", "is_complete": True},
                t=self.tick(0.5, 5.0),
                name="browser",
            )
            tip = self.add(tip, message, text_chars=len(text)).id
            if url not in self.safe_urls:
                self.safe_urls.append(url)
        return self.answer(tip, citations=True)

    def memory_write(self, parent: str) -> str:
        fact = self.rng.choice(pools.FACTS)
        message = self.message(
            "assistant",
            {"content_type": "text", "parts": [fact]},
            self.assistant_meta(parent),
            t=self.tick(2.0, 10.0),
            recipient="bio",
            end_turn=False,
        )
        tip = self.add(parent, message, text_chars=len(fact)).id
        message = self.message(
            "tool",
            {"content_type": "text", "parts": ["Model set context updated."]},
            {"is_complete": True, "timestamp_": "absolute"},
            t=self.tick(0.1, 1.0),
            name="bio",
        )
        tip = self.add(tip, message, text_chars=30).id
        return self.answer(tip)

    def visible_code(self, parent: str) -> str:
        language, code = self.rng.choice(pools.VISIBLE_CODE)
        message = self.message(
            "assistant",
            {
                "content_type": "code",
                "language": language,
                "response_format_name": None,
                "text": code,
            },
            self.assistant_meta(parent),
            t=self.tick(2.0, 20.0),
            end_turn=True,
        )
        return self.add(parent, message, text_chars=len(code)).id

    def dalle(self, parent: str) -> str:
        prompt = self.slice(self.rng.randint(60, 200)).replace('"', "'")
        message = self.message(
            "assistant",
            {
                "content_type": "text",
                "parts": [json.dumps({"prompt": prompt, "size": "1024x1024"}, ensure_ascii=False)],
            },
            self.assistant_meta(parent),
            t=self.tick(2.0, 10.0),
            recipient="dalle.text2im",
            end_turn=False,
        )
        tip = self.add(parent, message, text_chars=len(prompt)).id
        image = self.image_part()
        image["asset_pointer"] = f"sediment://file_{self.rng.getrandbits(96):024x}"
        image["metadata"]["dalle"] = {
            "gen_id": f"{self.rng.getrandbits(64):016x}",
            "prompt": prompt,
            "seed": self.rng.getrandbits(31),
            "parent_gen_id": None,
            "edit_op": None,
            "serialization_title": "DALL-E generation metadata",
        }
        message = self.message(
            "tool",
            {"content_type": "multimodal_text", "parts": [image]},
            {"is_complete": True},
            t=self.tick(5.0, 30.0),
            name="dalle.text2im",
        )
        tip = self.add(tip, message, text_chars=len(prompt)).id
        return self.answer(tip)

    def voice_answer(self, parent: str) -> str:
        text = self.slice(self.assistant_length() // 2 + 20)
        metadata = self.assistant_meta(parent)
        metadata["voice_mode_message"] = True
        message = self.message(
            "assistant",
            {"content_type": "multimodal_text", "parts": self.audio_parts(text, "out")},
            metadata,
            t=self.tick(1.0, 5.0),
            end_turn=True,
        )
        return self.add(parent, message, text_chars=len(text) + 400).id

    # -- turns and branches ----------------------------------------------------------------

    def abandoned_answer(self, parent: str) -> None:
        """An answer the user regenerated away from (sometimes continued, sometimes cut off)."""
        rng = self.rng
        if rng.random() < 0.2:
            self.answer(parent, status="in_progress", finish="interrupted")
            return
        tip = self.answer(parent)
        if rng.random() < 0.25:
            tip = self.user(tip)
            self.answer(tip, status="in_progress", finish="interrupted")

    def turn(self, parent: str | None, paste: bool) -> str:
        """Append a user message and the assistant's response; return the new active tip."""
        rng = self.rng
        if parent is not None and self.branchy and rng.random() < 0.12:
            # a user edit: the original message and its answer stay as an inactive branch
            original = self.user(parent)
            tip = self.answer(original)
            if rng.random() < 0.3:
                self.answer(self.user(tip))
        user_id = self.user(parent, paste)
        if self.branchy and rng.random() < 0.18:
            count = rng.choice((2, 2, 3))
            active = (
                count - 1 if self.current_null or rng.random() < 0.5 else rng.randrange(1, count)
            )
            tip = user_id
            for index in range(count):
                if index == active:
                    tip = self.response(user_id)
                else:
                    self.abandoned_answer(user_id)
            return tip
        return self.response(user_id)


class _Generator:
    """Writes conversations one at a time from a seeded random stream."""

    #: what builds each conversation (personas.py plants a person's facts through a subclass)
    conversation_class: type[_Conversation] = _Conversation

    def __init__(
        self, seed: int | str, start_time: float = pools.NEWEST_TIME, giant_pastes: bool = True
    ) -> None:
        self.rng = random.Random(seed)
        self.giant_pastes = giant_pastes  # the giant conversation: long pastes, or short turns
        self.pool = pools.pool()
        self.index = 0
        self.time = start_time

    def write_array(
        self, sink: _Sink, truth: ExportTruth, target_bytes: int, giant_bytes: int, wrapped: bool
    ) -> None:
        """Write a JSON array (or the wrapped object form) of about ``target_bytes``."""
        start = sink.bytes
        head, tail = ('{"conversations": [', "]}") if wrapped else ("[", "]")
        sink.write(head)
        first = True
        while True:
            separator = "" if first else ", "
            remaining = target_bytes - (sink.bytes - start) - len(tail) - len(separator)
            giant = first and giant_bytes > 0
            if not giant and remaining < 1024 and not (first and remaining > 0):
                break
            sink.write(separator)
            self.write_conversation(sink, truth, remaining, giant_bytes if giant else 0)
            first = False
        sink.write(tail)
        sink.flush()
        truth.bytes_written += sink.bytes - start

    def next_start_time(self) -> float:
        rng = self.rng
        self.time -= rng.expovariate(1 / 14_400.0)
        if self.time < pools.OLDEST_TIME:
            self.time = pools.OLDEST_TIME + rng.random() * 3e7
        return round(self.time, 6)

    def pick_kind(self, giant: bool) -> str:
        if giant:
            return "normal"
        forced = {2: "corrupt", 4: "hidden_only", 6: "do_not_remember"}.get(self.index)
        if forced:
            return forced
        roll = self.rng.random()
        if roll < 0.004:
            return "corrupt"
        if roll < 0.010:
            return "hidden_only"
        if roll < 0.040:
            return "do_not_remember"
        return "normal"

    def write_conversation(
        self, sink: _Sink, truth: ExportTruth, budget: int, giant_bytes: int
    ) -> None:
        rng = self.rng
        kind = self.pick_kind(giant_bytes > 0)
        self.index += 1
        start = self.next_start_time()
        era_models = next(models for until, models in pools.MODELS_BY_ERA if start < until)
        model = rng.choice(era_models)
        title = rng.choice(pools.TITLES)
        conversation_id = f"{rng.getrandbits(128):032x}"
        conversation_id = "-".join(
            (
                conversation_id[:8],
                conversation_id[8:12],
                conversation_id[12:16],
                conversation_id[16:20],
                conversation_id[20:],
            )
        )
        gizmo_roll = rng.random()
        if gizmo_roll < 0.08:
            gizmo_id: str | None = f"g-p-{rng.getrandbits(128):032x}"
            gizmo_type: str | None = "snorlax"
            template_id: str | None = gizmo_id
        elif gizmo_roll < 0.14:
            gizmo_id = "g-" + "".join(
                rng.choices("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijk0123456789", k=9)
            )
            gizmo_type, template_id = "gpt", gizmo_id
        else:
            gizmo_id = gizmo_type = template_id = None
        truth.conversations += 1

        if kind == "corrupt":
            truth.without_mapping += 1
            record = {
                "title": title,
                "create_time": start,
                "update_time": start,
                "moderation_results": [],
                "plugin_ids": None,
                "conversation_id": conversation_id,
                "conversation_template_id": None,
                "gizmo_id": None,
                "gizmo_type": None,
                "is_archived": False,
                "safe_urls": [],
                "default_model_slug": model,
                "is_do_not_remember": False,
                "memory_scope": "global_enabled",
                "id": conversation_id,
            }
            sink.write(_ENCODE(record))
            return

        conv = self.conversation_class(
            self,
            start,
            model,
            branchy=rng.random() < 0.3,
            current_null=rng.random() < 0.06,
            giant=giant_bytes > 0,
            budget=budget,
        )
        # root: usually a null message, sometimes "client-created-root", sometimes a user message
        root_roll = rng.random()
        user_root = kind == "normal" and root_roll < 0.08
        if user_root:
            tip = conv.turn(None, paste=False)
        else:
            root_id = "client-created-root" if root_roll < 0.3 else conv.uid("aaa1")
            conv.add(None, None, node_id=root_id)
            tip = conv.system_node(root_id)
        if kind == "hidden_only":
            conv.current_null = False
        else:
            if not user_root and rng.random() < 0.25:
                tip = conv.custom_instructions(tip)
            if not user_root:
                paste = giant_bytes > 0 or rng.random() < 0.03
                user_id = conv.user(tip, paste=paste and conv.budget > 80_000)
                if rng.random() < 0.1:
                    user_id = conv.model_context(user_id)
                tip = conv.response(user_id)
            turns = self.pick_turns()
            done = 1
            while True:
                if giant_bytes > 0:
                    if conv.lower_bound >= giant_bytes:
                        break
                    paste = self.giant_pastes and rng.random() < 0.7
                else:
                    if done >= turns or conv.estimate >= budget:
                        break
                    paste = rng.random() < 0.03 and budget - conv.estimate > 80_000
                tip = conv.turn(tip, paste)
                done += 1

        # the active path: current node -> root
        active: set[str] = set()
        node_id: str | None = tip
        while node_id is not None:
            active.add(node_id)
            node_id = conv.nodes[node_id].parent
        counts = {"visible": 0, "custom": 0, "memory": 0}

        order = list(conv.nodes.values())
        rng.shuffle(order)
        corpus = self.pool.corpus
        head = {"title": title, "create_time": start, "update_time": round(conv.clock, 6)}
        pieces = [_ENCODE(head)[:-1], ', "mapping": {']
        pending = 0
        separator = ""
        for node in order:
            message = node.message
            if node.lazy is not None and message is not None:
                prefix, offset, n = node.lazy
                message["content"]["parts"][0] = prefix + corpus[offset : offset + n]
            if node.id in active:
                category = classify_message(message)
                if category is not None:
                    counts[category] += 1
            text = _ENCODE(
                {
                    "id": node.id,
                    "message": message,
                    "parent": node.parent,
                    "children": node.children,
                }
            )
            pieces.append(f'{separator}"{node.id}": {text}')
            separator = ", "
            pending += len(text)
            if node.lazy is not None and message is not None:
                message["content"]["parts"][0] = None  # free the document text
            if pending > _FLUSH_BYTES:
                sink.write("".join(pieces))
                pieces, pending = [], 0
        rest = {
            "moderation_results": [],
            "current_node": None if conv.current_null else tip,
            "plugin_ids": None,
            "conversation_id": conversation_id,
            "conversation_template_id": template_id,
            "gizmo_id": gizmo_id,
            "gizmo_type": gizmo_type,
            "is_archived": rng.random() < 0.05,
            "safe_urls": conv.safe_urls,
            "default_model_slug": model,
            "is_do_not_remember": kind == "do_not_remember",
            "memory_scope": "project_enabled" if gizmo_type == "snorlax" else "global_enabled",
            "id": conversation_id,
        }
        pieces.append("}, " + _ENCODE(rest)[1:])
        sink.write("".join(pieces))
        if kind == "do_not_remember":
            truth.do_not_remember += 1
        else:
            truth.visible_messages += counts["visible"]
            truth.custom_instructions += counts["custom"]
            truth.memories += counts["memory"]

    def pick_turns(self) -> int:
        roll = self.rng.random()
        if roll < 0.40:
            return self.rng.randint(1, 3)
        if roll < 0.80:
            return self.rng.randint(4, 12)
        if roll < 0.98:
            return self.rng.randint(13, 40)
        return self.rng.randint(41, 120)


# --------------------------------------------------------------------------- public API


def write_chatgpt_json(
    out: BinaryIO,
    *,
    target_bytes: int,
    seed: int = 0,
    giant_conversation_bytes: int = 0,
    wrapped: bool = False,
    giant_shape: str = "pastes",
) -> ExportTruth:
    """Stream a ChatGPT conversations.json of about ``target_bytes`` into ``out``.

    The file is a top-level JSON array, or ``{"conversations": [...]}`` when ``wrapped``.
    ``giant_conversation_bytes > 0`` makes the FIRST conversation at least that big: of many
    long pasted-document messages (``giant_shape="pastes"``, the way real long-running chats
    are), or of tens of thousands of ordinary turns (``"turns"``). The same arguments always
    produce the same bytes. Returns the ground truth about what was written.
    """
    truth = ExportTruth()
    generator = _Generator(seed, giant_pastes=_giant_pastes(giant_shape))
    _write_stream(out, truth, generator, target_bytes, giant_conversation_bytes, wrapped)
    return truth


#: What the giant conversation is made of (see write_chatgpt_json).
GIANT_SHAPES = ("pastes", "turns")


def _giant_pastes(giant_shape: str) -> bool:
    if giant_shape not in GIANT_SHAPES:
        raise ValueError(f"unknown giant shape {giant_shape!r}; expected one of {GIANT_SHAPES}")
    return giant_shape == "pastes"


def _write_stream(
    out: BinaryIO,
    truth: ExportTruth,
    gen: _Generator,
    target_bytes: int,
    giant_bytes: int,
    wrapped: bool,
) -> None:
    sink = _Sink(out)
    gen.write_array(sink, truth, target_bytes, giant_bytes, wrapped)


def _user_json(seed: int) -> bytes:
    rng = random.Random(f"user:{seed}")
    user = {
        "id": f"user-{rng.getrandbits(96):024x}",
        "email": f"synthetic.{seed}@example.com",
        "chatgpt_plus_user": True,
        "birth_year": None,
        "phone_number": None,
    }
    return json.dumps(user).encode()


def write_export(
    path: str,
    *,
    fmt: str,
    target_bytes: int,
    seed: int = 0,
    giant_conversation_bytes: int = 0,
    shards: int = 3,
    giant_shape: str = "pastes",
) -> ExportTruth:
    """Write a synthetic ChatGPT export to the local ``path`` (``giant_*``: see
    :func:`write_chatgpt_json`).

    ``fmt`` is one of:

    * ``"json"``: a plain conversations.json (top-level array);
    * ``"wrapped"``: the JSON object form ``{"conversations": [...]}``;
    * ``"gzip"``: a gzip-compressed conversations.json (.json.gz);
    * ``"zip"``: a zip with conversations.json at its root, plus chat.html and user.json;
    * ``"zip-folder"``: the same files inside a folder (``export-2026/conversations.json``);
    * ``"zip-sharded"``: members conversations-000.json ... (``shards`` JSON arrays, written in
      an order that is not sorted by name, so readers must sort; the giant conversation, if
      any, is the first one of conversations-000.json).

    Zip members are deflated and streamed with ``force_zip64``. ``bytes_written`` counts the
    uncompressed conversation JSON only (not chat.html or user.json).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    giant = giant_conversation_bytes
    if fmt in ("json", "wrapped"):
        with open(path, "wb") as out:
            return write_chatgpt_json(
                out,
                target_bytes=target_bytes,
                seed=seed,
                giant_conversation_bytes=giant,
                wrapped=fmt == "wrapped",
                giant_shape=giant_shape,
            )
    if fmt == "gzip":
        with gzip.open(path, "wb", compresslevel=6) as out:
            return write_chatgpt_json(
                out,
                target_bytes=target_bytes,
                seed=seed,
                giant_conversation_bytes=giant,
                giant_shape=giant_shape,
            )
    truth = ExportTruth()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        folder = "export-2026/" if fmt == "zip-folder" else ""
        archive.writestr(folder + "user.json", _user_json(seed))
        if fmt == "zip-sharded":
            if shards < 1:
                raise ValueError("shards must be at least 1")
            order = list(range(1, shards)) + [0]  # e.g. 001, 002, 000: not sorted by name
            per_shard = target_bytes // shards
            for shard in order:
                gen = _Generator(
                    f"{seed}:shard:{shard}",
                    pools.NEWEST_TIME - shard * 86400.0 * 120,
                    giant_pastes=_giant_pastes(giant_shape),
                )
                name = f"conversations-{shard:03d}.json"
                with archive.open(name, "w", force_zip64=True) as member:
                    _write_stream(
                        member, truth, gen, per_shard, giant if shard == 0 else 0, wrapped=False
                    )
        else:
            with archive.open(folder + "conversations.json", "w", force_zip64=True) as member:
                gen = _Generator(seed, giant_pastes=_giant_pastes(giant_shape))
                _write_stream(member, truth, gen, target_bytes, giant, wrapped=False)
        archive.writestr(folder + "chat.html", pools.CHAT_HTML)
    return truth


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str | int) -> int:
    """Parse a size such as ``"50MB"``, ``"1GB"``, ``"1.5GiB"``, ``"300k"`` or ``"12345"``.

    Units are binary (1 MB = 1024 * 1024 bytes).
    """
    if isinstance(text, int):
        return text
    match = _SIZE_RE.match(text)
    if not match:
        raise ValueError(f"not a size: {text!r}")
    number, unit = match.groups()
    unit = (unit or "").lower().rstrip("b").rstrip("i")
    return int(float(number) * _UNITS[unit])


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m soulprint_pipeline.testing.synthetic OUT --size 50MB``.

    Prints the ground truth as JSON on stdout and the throughput on stderr.
    """
    parser = argparse.ArgumentParser(
        prog="python -m soulprint_pipeline.testing.synthetic",
        description="Write a seeded synthetic ChatGPT export.",
    )
    parser.add_argument("out", help="output path (local file)")
    parser.add_argument(
        "--size",
        type=parse_size,
        default=parse_size("50MB"),
        help="approximate uncompressed size, e.g. 50MB, 1GB, 2GB or bytes",
    )
    parser.add_argument("--format", choices=FORMATS, default="json", dest="fmt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--giant",
        type=parse_size,
        default=0,
        help="make the first conversation at least this big, e.g. 100MB",
    )
    parser.add_argument(
        "--giant-shape",
        choices=GIANT_SHAPES,
        default="pastes",
        help="the giant conversation: long pasted documents, or many short turns",
    )
    parser.add_argument("--shards", type=int, default=3, help="members for zip-sharded")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    truth = write_export(
        args.out,
        fmt=args.fmt,
        target_bytes=args.size,
        seed=args.seed,
        giant_conversation_bytes=args.giant,
        shards=args.shards,
        giant_shape=args.giant_shape,
    )
    elapsed = time.perf_counter() - began
    print(json.dumps(asdict(truth)))
    megabytes = truth.bytes_written / (1 << 20)
    print(
        f"wrote {megabytes:.1f} MB of JSON in {elapsed:.1f} s "
        f"({megabytes / max(elapsed, 1e-9):.1f} MB/s)",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
