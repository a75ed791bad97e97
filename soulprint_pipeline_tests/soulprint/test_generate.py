"""The soulprint step called as a library, without Dagster: real parsed parts in."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from soulprint_pipeline.export.reader import ExportReader
from soulprint_pipeline.lake.store import Lake, StoredParts
from soulprint_pipeline.soulprint.generate import DEFAULT_MODELS, ModelSettings, generate
from soulprint_pipeline.soulprint.llm import PermanentModelError
from soulprint_pipeline.soulprint.prompt import quick_pass_prompt
from soulprint_pipeline.soulprint.sections import validate_sections
from soulprint_pipeline_tests.support.bedrock_stub import BedrockStub, Reply, soulprint_json
from soulprint_pipeline_tests.support.exports import REAL_FIXTURES


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> StoredParts:
    """The real exports parsed into Parquet parts, as conversation_batches stores them."""
    exports = sorted(path for path in REAL_FIXTURES.iterdir() if path.suffix in (".json", ".zip"))
    batches = (batch for path in exports for batch in ExportReader(str(path)).batches())
    lake = Lake(str(tmp_path_factory.mktemp("lake")))
    version = lake.new_version("conversation_batches", "user-g")
    written = lake.write_parts(version, batches, batches_per_part=4)
    return StoredParts(lake, {"parts": written.paths})


def test_the_offline_step_gives_sections_and_json_metadata(parts: StoredParts) -> None:
    progress: list[float] = []
    generated = generate(parts, ModelSettings(), on_progress=progress.append)
    assert validate_sections(generated.sections) == generated.sections
    assert json.loads(json.dumps(generated.metadata)) == generated.metadata
    assert set(generated.metadata) == {
        "model",
        "prompt_version",
        "input_tokens",
        "output_tokens",
        "estimated_cost_usd",
        "latency_s",
        "evidence",
        "field_evidence",
    }
    # counts in the metadata; the quotes only beside the sections
    assert set(generated.metadata["field_evidence"]) == {
        "fields_with_evidence",
        "quotes",
        "dropped_not_in_input",
        "dropped_other",
    }
    assert generated.metadata["field_evidence"]["quotes"] == sum(
        len(quotes) for quotes in generated.evidence.values()
    )
    assert generated.metadata["model"] == DEFAULT_MODELS["offline"]
    assert generated.metadata["prompt_version"] == quick_pass_prompt().version
    evidence = generated.metadata["evidence"]
    assert evidence["rows"] == sum(batch.num_rows for batch in parts.batches())
    assert len(parts.paths) > 1 and len(progress) == len(parts.paths) and progress[-1] == 1.0


def test_the_bedrock_step_gives_the_answer_and_json_metadata(
    parts: StoredParts, bedrock: BedrockStub
) -> None:
    bedrock.script(Reply(soulprint_json("Nova")))
    generated = generate(parts, ModelSettings(backend="bedrock", token_budget=20_000))
    assert generated.sections["identity"]["ai_name"] == "Nova"
    assert json.loads(json.dumps(generated.metadata)) == generated.metadata
    assert generated.metadata["model"] == DEFAULT_MODELS["bedrock"] == bedrock.requests[0].model
    assert generated.metadata["conversations_sampled"] > 0
    assert generated.metadata["model_calls"] == 1 and generated.metadata["input_tokens"] == 1200


def test_a_denied_model_raises_the_library_error(parts: StoredParts, bedrock: BedrockStub) -> None:
    bedrock.script(Reply(status=403, text="You don't have access to the model"))
    with pytest.raises(PermanentModelError, match="HTTP 403"):
        generate(parts, ModelSettings(backend="bedrock"))


def test_the_sdk_is_imported_only_when_a_model_is_called() -> None:
    check = "import sys, soulprint_pipeline.soulprint.generate; print('anthropic' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
