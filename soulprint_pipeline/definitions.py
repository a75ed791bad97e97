"""The code location: assembles the assets, jobs, sensors, and the resources built from the
environment (the embedded defaults under SOULPRINT_DATA_DIR where a variable is unset)."""

import os
from typing import Any

import dagster as dg

from soulprint_pipeline.defs.assets import ASSETS, memory_chunks, quick_pass_soulprint
from soulprint_pipeline.defs.io_manager import LakeIOManager
from soulprint_pipeline.defs.jobs import import_user
from soulprint_pipeline.defs.maintenance import (
    lake_maintenance,
    lake_maintenance_schedule,
    memory_maintenance,
    memory_maintenance_schedule,
)
from soulprint_pipeline.defs.memory import (
    DEFAULT_DIMENSION,
    DEFAULT_MAX_TOKENS,
    EmbedderResource,
    MemoryResource,
    check_embedder,
)
from soulprint_pipeline.defs.model import SoulprintModel
from soulprint_pipeline.defs.reconcile import mirror_reconcile_sensor
from soulprint_pipeline.defs.resources import (
    DATA_DIR,
    ProfilesResource,
    UploadsResource,
    int_setting,
    location_setting,
    s3_settings_from_env,
    secret,
)
from soulprint_pipeline.defs.sensors import (
    dead_run_sensor,
    import_failure_sensor,
    import_queued_sensor,
    upload_sensor,
)
from soulprint_pipeline.lake.store import DEFAULT_KEEP_SECONDS


def default_resources() -> dict[str, Any]:
    """The resources of the embedded defaults, overridden by the environment."""
    s3 = s3_settings_from_env()
    return {
        "uploads": UploadsResource(
            url=location_setting("SOULPRINT_UPLOADS_URL", DATA_DIR / "uploads"), s3=s3
        ),
        "lake": LakeIOManager(
            url=location_setting("SOULPRINT_LAKE_URL", DATA_DIR / "lake"),
            s3=s3,
            parse_workers=int_setting("SOULPRINT_PARSE_WORKERS", 1),
            keep_seconds=int_setting(
                "SOULPRINT_LAKE_KEEP_SECONDS", DEFAULT_KEEP_SECONDS, minimum=0
            ),
        ),
        "profiles": ProfilesResource(
            # a postgresql:// URL may carry a password: a secret when set
            url=secret("SOULPRINT_PROFILES_URL")
            or f"sqlite:///{DATA_DIR / 'user_profiles.sqlite3'}",
            supabase_service_role_key=secret("SUPABASE_SERVICE_ROLE_KEY"),
        ),
        "llm": SoulprintModel(
            backend=os.getenv("SOULPRINT_MODEL", "offline"),
            model_id=os.getenv("SOULPRINT_MODEL_ID"),
            token_budget=int_setting("SOULPRINT_TOKEN_BUDGET", 50_000, minimum=1_000),
        ),
        "embedder": embedder_from_env(),
        "memory": MemoryResource(
            url=memory_url_setting(),
            max_tokens=int_setting("SOULPRINT_MEMORY_MAX_TOKENS", DEFAULT_MAX_TOKENS),
        ),
    }


def memory_url_setting() -> Any:
    """``SOULPRINT_MEMORY_URL``: a postgresql:// URL (a secret: it may carry a password), or a
    LanceDB location (a path or URL, ``data/memory`` by default)."""
    if os.getenv("SOULPRINT_MEMORY_URL", "").startswith(("postgresql://", "postgres://")):
        return secret("SOULPRINT_MEMORY_URL")
    return location_setting("SOULPRINT_MEMORY_URL", DATA_DIR / "memory")


def embedder_from_env() -> EmbedderResource:
    """The embedder of ``SOULPRINT_EMBEDDER`` (``offline`` by default), checked now."""
    backend = os.getenv("SOULPRINT_EMBEDDER", "offline").strip()
    dimension = int_setting("SOULPRINT_EMBEDDING_DIMENSION", DEFAULT_DIMENSION, minimum=8)
    check_embedder(backend, dimension)
    return EmbedderResource(
        backend=backend,
        dimension=dimension,
        model_id=os.getenv("SOULPRINT_EMBEDDING_MODEL_ID"),
        max_concurrency=int_setting("SOULPRINT_EMBEDDING_CONCURRENCY", 8),
    )


#: Evaluates the soulprint's and the memory's automation conditions (a prompt version bump
#: re-runs the soulprint per user; a chunker or embedder change, the memory).
soulprint_automation = dg.AutomationConditionSensorDefinition(
    "soulprint_automation",
    target=dg.AssetSelection.assets(quick_pass_soulprint, memory_chunks),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Re-runs a user's quick_pass_soulprint when the prompt's version changes, and their "
        "memory_chunks when the chunker or embedder changes; users never imported are left "
        "alone, and the llm and embeddings pools throttle the re-runs."
    ),
)

defs = dg.Definitions(
    assets=ASSETS,
    # Every run's steps in the run's own process: a step's process cost more to start than
    # the steps of a small import take to run (step launch 36.7 s of a 67 s run, four steps
    # through the daemon), and it bought no memory: the steps run one after the other, and a
    # 1 GB import's whole run in one process peaks about where its memory step alone does
    # (see the README's "Many users").
    executor=dg.in_process_executor,
    jobs=[import_user, memory_maintenance, lake_maintenance],
    schedules=[memory_maintenance_schedule, lake_maintenance_schedule],
    sensors=[
        upload_sensor,
        import_queued_sensor,
        import_failure_sensor,
        dead_run_sensor,
        mirror_reconcile_sensor,
        soulprint_automation,
    ],
    resources=default_resources(),
)
