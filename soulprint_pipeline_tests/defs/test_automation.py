"""A prompt version bump re-runs every user's soulprint, and only the soulprint."""

from __future__ import annotations

import importlib
from pathlib import Path

import dagster as dg
import pytest

from soulprint_pipeline.defs import assets as assets_module
from soulprint_pipeline.soulprint import prompt
from soulprint_pipeline_tests.support.env import Env
from soulprint_pipeline_tests.support.exports import chatgpt_export_bytes


def _defs(env: Env, module) -> dg.Definitions:
    return dg.Definitions(
        assets=[module.raw_export, module.conversation_batches, module.quick_pass_soulprint],
        resources=env.resources,
    )


def test_prompt_bump_requests_exactly_the_soulprint_partitions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with dg.instance_for_test() as instance:
        env = Env(tmp_path, f"sqlite:///{tmp_path / 'profiles.sqlite3'}", instance)
        for user in ("alice", "bob"):
            upload = env.upload(user, "export.json", chatgpt_export_bytes(3))
            assert env.run_import(user, upload).success
        instance.add_dynamic_partitions("users", ["never-imported"])
        v1 = _defs(env, assets_module)
        baseline = dg.evaluate_automation_conditions(defs=v1, instance=instance)
        assert baseline.total_requested == 0  # the first evaluation records the version

        current = prompt.quick_pass_prompt()
        monkeypatch.setattr(
            prompt, "quick_pass_prompt", lambda: prompt.Prompt(current.version + 1, current.system)
        )
        bumped = importlib.reload(assets_module)  # the asset is built again with the new version
        try:
            key = dg.AssetKey("quick_pass_soulprint")
            assert bumped.quick_pass_soulprint.code_versions_by_key[key] == (
                f"prompt-v{current.version + 1}"
            )
            result = dg.evaluate_automation_conditions(
                defs=_defs(env, bumped), instance=instance, cursor=baseline.cursor
            )
            assert result.get_requested_partitions(key) == {"alice", "bob"}
            assert result.get_num_requested(dg.AssetKey("conversation_batches")) == 0
            assert result.get_num_requested(dg.AssetKey("raw_export")) == 0
            assert result.total_requested == 2
        finally:
            monkeypatch.undo()
            importlib.reload(assets_module)


def test_an_embedder_change_requests_exactly_the_memory_partitions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def all_assets(module) -> dg.Definitions:
        return dg.Definitions(assets=module.ASSETS, resources=env.resources)

    with dg.instance_for_test() as instance:
        env = Env(tmp_path, f"sqlite:///{tmp_path / 'profiles.sqlite3'}", instance)
        for user in ("alice", "bob"):
            upload = env.upload(user, "export.json", chatgpt_export_bytes(3))
            assert env.run_import(user, upload).success
        baseline = dg.evaluate_automation_conditions(
            defs=all_assets(assets_module), instance=instance
        )
        assert baseline.total_requested == 0

        monkeypatch.setenv("SOULPRINT_EMBEDDING_DIMENSION", "512")
        changed = importlib.reload(assets_module)
        try:
            result = dg.evaluate_automation_conditions(
                defs=all_assets(changed), instance=instance, cursor=baseline.cursor
            )
            memory = dg.AssetKey("memory_chunks")
            assert result.get_requested_partitions(memory) == {"alice", "bob"}
            assert result.total_requested == 2  # no re-parse, no soulprint billed again
        finally:
            monkeypatch.undo()
            importlib.reload(assets_module)
