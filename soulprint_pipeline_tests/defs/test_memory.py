"""The memory: chunks of a user's conversations, embedded and stored, through Dagster."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from soulprint_pipeline.defs.assets import memory_chunks
from soulprint_pipeline.defs.jobs import import_user
from soulprint_pipeline.defs.memory import EmbedderResource, MemoryResource
from soulprint_pipeline.memory.embedders import TITAN_V2, OfflineEmbedder
from soulprint_pipeline.memory.recall import recall
from soulprint_pipeline.memory.store import open_memory_store
from soulprint_pipeline_tests.support.bedrock_stub import BedrockStub, bedrock_error
from soulprint_pipeline_tests.support.env import Env
from soulprint_pipeline_tests.support.exports import chatgpt_conversation

FILLER = [
    ("user", "Can you suggest a quick dinner with chickpeas, spinach and rice?"),
    ("assistant", "Try a chickpea and spinach curry over rice; it takes about twenty minutes."),
    ("user", "How do I undo the last commit in git but keep my changes?"),
    ("assistant", "Use git reset --soft HEAD~1: the commit is undone, the changes stay staged."),
]
PLANTED = "My sister Marguerite is getting married in Porto next June, and I am giving a toast."


def _export(conversations: int = 60) -> bytes:
    items = []
    for index in range(conversations):
        turns = [FILLER[(index + turn) % len(FILLER)] for turn in range(6)]
        if index == conversations // 2:
            turns.insert(3, ("user", PLANTED))
        items.append(chatgpt_conversation(index, turns, create_time=1_700_000_000.0 + index))
    # the first conversation exported twice (under another id): its chunks are duplicates
    items.append({**items[0], "id": "conv-again", "conversation_id": "conv-again"})
    return json.dumps(items).encode()


def _metadata(result: dg.ExecuteInProcessResult) -> dict:
    [materialization] = result.asset_materializations_for_node("memory_chunks")
    return {key: value.value for key, value in materialization.metadata.items()}


def _store(env: Env):
    return open_memory_store(str(env.memory), env.resources["embedder"].dimension)


def test_import_builds_a_memory_that_recalls_a_paraphrased_fact(env: Env) -> None:
    upload = env.upload("mia", "conversations.json", _export())
    result = env.run_import("mia", upload)
    assert result.success
    row = env.row("mia")
    assert row["import_status"] == "complete" and row["progress_percent"] == 100
    metadata = _metadata(result)
    assert metadata["chunks"] > 0 and metadata["dagster/row_count"] == metadata["chunks"]
    assert metadata["conversations_total"] == 61 and metadata["conversations_covered"] == 60
    # the same filler conversation text repeats: identical chunks are embedded once
    assert metadata["duplicate_chunks"] > 0
    assert metadata["chunks_embedded"] == metadata["chunks"]
    assert metadata["embedding_model"] == OfflineEmbedder.model
    assert metadata["embedding_dimension"] == 256
    # the chunks' own estimate counts each turn apart; the embedder counts the joined text
    assert 0.9 < metadata["tokens_embedded"] / metadata["estimated_tokens"] <= 1.0
    assert metadata["estimated_cost_usd"] == 0.0  # offline costs nothing
    with _store(env) as store:
        assert store.count("mia") == metadata["chunks"]
        embedder = OfflineEmbedder(256)
        [best, *_] = recall(store, embedder, "mia", "when is my sister's wedding in Porto?", k=3)
    assert "Marguerite" in best.text and best.conversation_title == "Conversation 30"
    assert best.first_message_at is not None
    for value in metadata.values():  # nothing the person wrote reaches the metadata
        assert "Marguerite" not in str(value) and "chickpea" not in str(value)


def test_quick_ready_before_the_memory_and_complete_after(env: Env) -> None:
    env.upload("noor", "conversations.json", _export(10))
    without_memory = [asset for asset in env.defs.assets if asset is not memory_chunks]
    assert env.rematerialize("noor", without_memory).success
    row = env.row("noor")
    assert row["import_status"] == "quick_ready" and row["progress_percent"] == 80
    assert row["import_stage"] == "Creating memory chunks" and row["ai_name"]
    assert env.rematerialize("noor", [memory_chunks]).success
    row = env.row("noor")
    assert row["import_status"] == "complete" and row["progress_percent"] == 100


def test_a_complete_user_stays_complete_through_a_memory_rerun(env: Env) -> None:
    upload = env.upload("omar", "conversations.json", _export(10))
    assert env.run_import("omar", upload).success
    before = env.row("omar")
    result = env.rematerialize("omar", [memory_chunks])
    assert result.success
    # the same rows, chunker and embedder: the live build is reused, nothing is embedded
    assert _metadata(result)["chunks_embedded"] == 0
    assert env.row("omar") == before


class _DiesAfter(OfflineEmbedder):
    """Embeds ``calls`` batches, then dies."""

    def __init__(self, dimension: int, calls: int) -> None:
        super().__init__(dimension)
        self.left = calls

    def embed(self, texts):
        if self.left == 0:
            raise RuntimeError("the worker died")
        self.left -= 1
        return super().embed(texts)


def test_a_run_that_dies_resumes_without_embedding_again(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload = env.upload("pia", "conversations.json", _export(2500))
    # a step dies after three batches of 512 chunks are staged
    monkeypatch.setattr(
        EmbedderResource, "open", lambda self: _context(_DiesAfter(self.dimension, 3))
    )
    failed = env.run_import("pia", upload)
    assert not failed.success
    with _store(env) as store:
        assert store.count("pia") == 0  # nothing half-built is live
    monkeypatch.undo()
    resumed = env.rematerialize("pia", [memory_chunks])
    assert resumed.success
    metadata = _metadata(resumed)
    assert metadata["chunks_resumed"] == 3 * 512
    assert metadata["chunks_embedded"] == metadata["chunks"] - 3 * 512 > 0
    assert env.row("pia")["import_status"] == "complete"


def _context(embedder):
    from contextlib import nullcontext

    return nullcontext(embedder)


def _production_memory(env: Env, pgvector_database_url: str) -> None:
    """The memory as production runs it: Titan V2 on Bedrock, Postgres with pgvector."""
    env.resources["embedder"] = EmbedderResource(backend="bedrock", dimension=256)
    env.resources["memory"] = MemoryResource(url=pgvector_database_url)
    env.defs = dg.Definitions(assets=env.defs.assets, jobs=[import_user], resources=env.resources)


def test_titan_into_pgvector_through_the_import(
    env: Env, bedrock: BedrockStub, pgvector_database_url: str
) -> None:
    _production_memory(env, pgvector_database_url)
    upload = env.upload("quin", "conversations.json", _export(12))
    result = env.run_import("quin", upload)
    assert result.success
    metadata = _metadata(result)
    assert metadata["embedding_model"] == TITAN_V2
    assert metadata["embedding_calls"] == len(bedrock.titan_requests) == metadata["chunks"]
    assert metadata["tokens_embedded"] > 0 and metadata["estimated_cost_usd"] > 0
    assert all(r.body["dimensions"] == 256 for r in bedrock.titan_requests)
    with open_memory_store(pgvector_database_url, 256) as store:
        assert store.count("quin") == metadata["chunks"]
    assert env.row("quin")["import_status"] == "complete"


def test_a_refused_embedding_fails_the_import_with_a_clear_message(
    env: Env, bedrock: BedrockStub, pgvector_database_url: str
) -> None:
    _production_memory(env, pgvector_database_url)
    bedrock.script_titan(then=bedrock_error(403, "AccessDeniedException"))
    upload = env.upload("rory", "conversations.json", _export(12))
    result = env.run_import("rory", upload)
    assert not result.success
    row = env.row("rory")
    assert row["import_status"] == "failed" and row["import_stage"] == "Creating memory chunks"
    assert "AccessDeniedException" in row["import_error"]
    assert "Marguerite" not in row["import_error"]
    assert row["ai_name"]  # the soulprint was saved before the memory failed


def test_the_nightly_maintenance_indexes_the_store_and_recall_still_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from soulprint_pipeline.defs.maintenance import memory_maintenance
    from soulprint_pipeline.memory import lance
    from soulprint_pipeline.memory.build import _record_batch
    from soulprint_pipeline.memory.chunking import Chunk
    from soulprint_pipeline.memory.store import chunk_schema

    monkeypatch.setattr(lance, "INDEX_MIN_ROWS", 500)
    dimension, url = 16, str(tmp_path / "memory")
    vectors = np.random.default_rng(7).standard_normal((600, dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with open_memory_store(url, dimension) as store:
        for user, rows in (("ann", range(0, 300)), ("bob", range(300, 600))):
            chunks = [Chunk(f"c{i}", "t", None, None, None, i, f"text {i}", 3) for i in rows]
            batch = _record_batch(user, chunks, vectors[rows.start : rows.stop], chunk_schema(16))
            store.stage(user, "k1", batch)
            store.publish(user, "k1")
        assert store._chunks.list_indices() == []  # publishing never trains the index
    resources = {
        "embedder": EmbedderResource(dimension=dimension),
        "memory": MemoryResource(url=url),
    }
    with dg.instance_for_test() as instance, warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # lancedb's legacy index API
        result = memory_maintenance.execute_in_process(instance=instance, resources=resources)
    assert result.success
    with open_memory_store(url, dimension) as store:
        assert {index.name for index in store._chunks.list_indices()} >= {"embedding_idx"}
        [best] = store.search("bob", vectors[420].tolist(), 1)
        assert best.conversation_id == "c420" and best.score > 0.9
        of_ann = store.search("ann", vectors[420].tolist(), 5)
        assert of_ann and all(hit.conversation_id != "c420" for hit in of_ann)
