"""The code location: assembles the assets, jobs, sensors and resources."""

import dagster as dg

from soulprint_pipeline.defs.assets import conversation_batches, quick_pass_soulprint, raw_export
from soulprint_pipeline.defs.jobs import import_user
from soulprint_pipeline.defs.resources import default_resources
from soulprint_pipeline.defs.sensors import (
    import_failure_sensor,
    import_queued_sensor,
    upload_sensor,
)

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
