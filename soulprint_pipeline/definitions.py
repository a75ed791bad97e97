"""The code location: assembles the assets, jobs, sensors, and the resources built from the
environment (the embedded defaults under SOULPRINT_DATA_DIR where a variable is unset)."""

import os
from typing import Any

import dagster as dg

from soulprint_pipeline.defs.assets import conversation_batches, quick_pass_soulprint, raw_export
from soulprint_pipeline.defs.io_manager import LakeIOManager
from soulprint_pipeline.defs.jobs import import_user
from soulprint_pipeline.defs.model import SoulprintModel
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
    import_failure_sensor,
    import_queued_sensor,
    upload_sensor,
)


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
    }


#: Evaluates the soulprint's automation condition (a prompt version bump re-runs it per user).
soulprint_automation = dg.AutomationConditionSensorDefinition(
    "soulprint_automation",
    target=dg.AssetSelection.assets(quick_pass_soulprint),
    default_status=dg.DefaultSensorStatus.RUNNING,
)

defs = dg.Definitions(
    assets=[raw_export, conversation_batches, quick_pass_soulprint],
    jobs=[import_user],
    sensors=[upload_sensor, import_queued_sensor, import_failure_sensor, soulprint_automation],
    resources=default_resources(),
)
