"""A tick of the upload sensor in a test, as the daemon makes it."""

from __future__ import annotations

import dagster as dg
from dagster._core.test_utils import create_run_for_test

from soulprint_pipeline.defs.assets import ASSETS
from soulprint_pipeline.defs.jobs import import_user
from soulprint_pipeline.defs.partitions import PARTITION_TAG
from soulprint_pipeline.defs.sensors import upload_sensor
from soulprint_pipeline_tests.support.env import Env


def upload_tick(env: Env, cursor: str | None = None, submit: bool = False) -> dg.SensorResult:
    """One tick of the sensor on ``env``'s instance; with ``submit``, its requests become
    queued runs, as the daemon makes them (the run history the sensor reads back)."""
    defs = dg.Definitions(
        assets=ASSETS,
        jobs=[import_user],
        sensors=[upload_sensor],
        resources=env.resources,
    )
    with dg.build_sensor_context(
        instance=env.instance, cursor=cursor, definitions=defs, resources=env.resources
    ) as context:
        result = upload_sensor(context)
    for request in result.dynamic_partitions_requests or []:
        env.instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
    if submit:
        for request in result.run_requests:
            create_run_for_test(
                env.instance,
                job_name=import_user.name,
                status=dg.DagsterRunStatus.NOT_STARTED,  # waiting, as a queued run
                tags={
                    **request.tags,
                    # a batch run has the range tags of its users instead
                    **({PARTITION_TAG: request.partition_key} if request.partition_key else {}),
                    "dagster/run_key": request.run_key,
                    "dagster/sensor_name": upload_sensor.name,
                },
            )
    return result
