"""A Dagster environment on real files: uploads and lake folders, a user_profiles store, an
instance, and the import job as the sensor or the import command starts it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from soulprint_pipeline.defs.assets import ASSETS
from soulprint_pipeline.defs.io_manager import LakeIOManager
from soulprint_pipeline.defs.jobs import import_user
from soulprint_pipeline.defs.memory import EmbedderResource, MemoryResource
from soulprint_pipeline.defs.model import SoulprintModel
from soulprint_pipeline.defs.partitions import UPLOAD_TAG, users
from soulprint_pipeline.defs.resources import ProfilesResource, S3Settings, UploadsResource
from soulprint_pipeline.lake.store import Lake
from soulprint_pipeline.mirror.registry import open_profile_store


class Env:
    """A data folder (uploads, lake), a user_profiles store and a Dagster instance."""

    def __init__(self, root: Path, profiles_url: str, instance: dg.DagsterInstance) -> None:
        self.root = root
        self.uploads = root / "uploads"
        self.lake = root / "lake"
        self.memory = root / "memory"
        self.profiles_url = profiles_url
        self.instance = instance
        s3 = S3Settings()
        self.resources: dict[str, Any] = {
            "uploads": UploadsResource(url=str(self.uploads), s3=s3),
            "lake": LakeIOManager(url=str(self.lake), s3=s3),
            "profiles": ProfilesResource(url=profiles_url),
            "llm": SoulprintModel(),
            "embedder": EmbedderResource(dimension=256),
            "memory": MemoryResource(url=str(self.memory)),
        }
        self.defs = dg.Definitions(assets=ASSETS, jobs=[import_user], resources=self.resources)

    def upload(self, user_id: str, name: str, data: bytes) -> Path:
        path = self.uploads / user_id / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def run_import(self, user_id: str, upload: Path | None = None) -> dg.ExecuteInProcessResult:
        """The import job, as the sensor or the import command starts it."""
        if not self.instance.has_dynamic_partition(users.name, user_id):
            self.instance.add_dynamic_partitions(users.name, [user_id])
        tags = {UPLOAD_TAG: str(upload)} if upload else {}
        return self.defs.resolve_job_def("import_user").execute_in_process(
            instance=self.instance, partition_key=user_id, tags=tags, raise_on_error=False
        )

    def rematerialize(self, user_id: str, selection=ASSETS) -> dg.ExecuteInProcessResult:
        """A re-run from the UI (or a backfill): no upload tag, no job hooks."""
        if not self.instance.has_dynamic_partition(users.name, user_id):
            self.instance.add_dynamic_partitions(users.name, [user_id])
        return dg.materialize(
            ASSETS,
            selection=selection,
            partition_key=user_id,
            instance=self.instance,
            resources=self.resources,
            raise_on_error=False,
        )

    def current(self, asset: str, user_id: str) -> dict[str, Any]:
        """The manifest of the current version of ``asset`` for ``user_id``."""
        manifest = Lake(str(self.lake)).current(asset, user_id)
        assert manifest is not None, f"no {asset} is current for {user_id}"
        return manifest

    def stored_soulprint(self, user_id: str) -> dict[str, Any]:
        """The current soulprint's JSON in the lake, as stored (its evidence too)."""
        return Lake(str(self.lake)).read_json(self.current("quick_pass_soulprint", user_id)["file"])

    def metadata_and_logs(self, run_id: str) -> str:
        """Every metadata value and log message of the run, as one string."""
        texts = []
        for record in self.instance.all_logs(run_id):
            texts.append(record.user_message or "")
            event = record.dagster_event
            data = event.event_specific_data if event else None
            for attribute in ("materialization", "asset_observation"):
                if hasattr(data, attribute):
                    texts.extend(str(v.value) for v in getattr(data, attribute).metadata.values())
            if isinstance(data, dg.AssetCheckEvaluation):
                texts.append(data.description or "")
                texts.extend(str(v.value) for v in data.metadata.values())
        return "\n".join(texts)

    def row(self, user_id: str) -> dict[str, Any]:
        store = open_profile_store(self.profiles_url)
        try:
            return store.get(user_id) or {}
        finally:
            store.close()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with dg.instance_for_test() as instance:
        yield Env(tmp_path, f"sqlite:///{tmp_path / 'profiles.sqlite3'}", instance)
