"""The repo's Dagster instance configs (dagster.yaml, deploy/dagster.yaml) load and do their job."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dagster as dg
import psycopg
import pytest
import yaml
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._utils.tags import TagConcurrencyLimitsCounter

from soulprint_pipeline.defs.partitions import users

ROOT = Path(__file__).parents[2]
DEV_CONFIG = ROOT / "dagster.yaml"
DEPLOY_CONFIG = ROOT / "deploy" / "dagster.yaml"
ONE_RUN_PER_USER = {
    "key": "dagster/partition",
    "value": {"applyLimitPerUniqueValue": True},
    "limit": 1,
}


@dg.op
def noop() -> None:
    pass


@dg.job
def probe_job() -> None:
    noop()


def _home(tmp_path: Path, config: Path) -> Path:
    """A fresh DAGSTER_HOME holding a copy of ``config`` as its dagster.yaml."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(config, home / "dagster.yaml")
    return home


def _run(instance: dg.DagsterInstance, user_id: str) -> dg.DagsterRun:
    """A stored run of one user's partition."""
    return instance.create_run_for_job(
        probe_job, status=dg.DagsterRunStatus.NOT_STARTED, tags={"dagster/partition": user_id}
    )


def _assert_one_run_per_user(instance: dg.DagsterInstance, max_runs: int) -> None:
    queue = instance.get_concurrency_config().run_queue_config
    assert queue is not None
    assert queue.max_concurrent_runs == max_runs
    assert ONE_RUN_PER_USER in queue.tag_concurrency_limits

    # what the run queue daemon does with it: alice's second run waits, bob's does not (the
    # counter reads only tags; the runs are built, not stored, as queued ones need an origin)
    def run_of(user_id: str) -> dg.DagsterRun:
        return dg.DagsterRun(job_name="import_user", tags={"dagster/partition": user_id})

    counter = TagConcurrencyLimitsCounter(queue.tag_concurrency_limits, [run_of("alice")])
    assert counter.is_blocked(run_of("alice"))
    assert not counter.is_blocked(run_of("bob"))
    counter.update_counters_with_launched_item(run_of("bob"))
    assert counter.is_blocked(run_of("bob"))
    assert not counter.is_blocked(run_of("carol"))


# --------------------------------------------------------------------------------------------
# dagster.yaml: the embedded default


@pytest.fixture
def dev_instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.from_config(str(_home(tmp_path, DEV_CONFIG))) as instance:
        yield instance


def test_dev_config_enables_run_monitoring(dev_instance: dg.DagsterInstance) -> None:
    assert dev_instance.run_monitoring_enabled
    settings = dev_instance.run_monitoring_settings
    assert settings["max_runtime_seconds"] == 7200  # a run whose worker died is failed
    assert settings["start_timeout_seconds"] == 180
    assert settings["poll_interval_seconds"] == 30
    assert not dev_instance.telemetry_enabled


def test_dev_config_queues_one_run_per_user(dev_instance: dg.DagsterInstance) -> None:
    assert isinstance(dev_instance.run_coordinator, QueuedRunCoordinator)
    _assert_one_run_per_user(dev_instance, max_runs=4)
    pools = dev_instance.get_concurrency_config().pool_config
    assert pools.default_pool_limit == 2
    assert dev_instance.event_log_storage.supports_global_concurrency_limits


def test_dev_config_keeps_everything_in_dagster_home(
    dev_instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    dev_instance.add_dynamic_partitions(users.name, ["alice"])
    run = _run(dev_instance, "alice")
    home = tmp_path / "dagster_home"
    assert (home / "history" / "runs.db").exists()
    with dg.DagsterInstance.from_config(str(home)) as again:  # a second process, same home
        assert again.has_dynamic_partition(users.name, "alice")
        assert again.get_run_by_id(run.run_id).tags["dagster/partition"] == "alice"


# --------------------------------------------------------------------------------------------
# deploy/dagster.yaml: production, on dagster-postgres


@pytest.fixture
def pg_env(postgres_profiles_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    url = urlsplit(postgres_profiles_url)
    env = {
        "DAGSTER_PG_HOST": url.hostname or "127.0.0.1",
        "DAGSTER_PG_USER": url.username or "postgres",
        "DAGSTER_PG_PASSWORD": "",
        "DAGSTER_PG_DB": url.path.lstrip("/"),
        "DAGSTER_PG_PORT": str(url.port),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return {**env, "url": postgres_profiles_url}


@pytest.fixture
def deploy_instance(tmp_path: Path, pg_env: dict[str, str]) -> Iterator[dg.DagsterInstance]:
    home = _home(tmp_path, DEPLOY_CONFIG)  # the file as deployed, pointed at the test server
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


def test_deploy_config_uses_dagster_postgres(
    deploy_instance: dg.DagsterInstance, pg_env: dict[str, str], tmp_path: Path
) -> None:
    from dagster_postgres import (
        PostgresEventLogStorage,
        PostgresRunStorage,
        PostgresScheduleStorage,
    )

    assert isinstance(deploy_instance.run_storage, PostgresRunStorage)
    assert isinstance(deploy_instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(deploy_instance.schedule_storage, PostgresScheduleStorage)

    deploy_instance.add_dynamic_partitions(users.name, ["alice", "bob"])
    assert deploy_instance.has_dynamic_partition(users.name, "alice")
    run = _run(deploy_instance, "alice")
    assert deploy_instance.get_run_by_id(run.run_id).tags["dagster/partition"] == "alice"

    # it really is in that database, not in a local file
    with psycopg.connect(pg_env["url"], autocommit=True) as conn:
        stored = conn.execute("SELECT run_id FROM runs").fetchall()
        partitions = conn.execute(
            "SELECT partition FROM dynamic_partitions WHERE partitions_def_name = %s "
            "ORDER BY partition",
            (users.name,),
        ).fetchall()
    assert stored == [(run.run_id,)]
    assert partitions == [("alice",), ("bob",)]
    assert not list((tmp_path / "dagster_home").glob("**/*.db"))


def test_deploy_config_concurrency_and_monitoring(deploy_instance: dg.DagsterInstance) -> None:
    assert deploy_instance.run_monitoring_enabled
    assert deploy_instance.run_monitoring_settings["max_runtime_seconds"] == 7200
    assert deploy_instance.run_monitoring_settings["start_timeout_seconds"] == 300
    assert isinstance(deploy_instance.run_coordinator, QueuedRunCoordinator)
    _assert_one_run_per_user(deploy_instance, max_runs=20)
    assert deploy_instance.get_concurrency_config().pool_config.default_pool_limit == 4
    # the "llm" pool can be set and read back, as `dagster instance concurrency set llm N` does
    storage = deploy_instance.event_log_storage
    assert storage.supports_global_concurrency_limits
    storage.set_concurrency_slots("llm", 3)
    assert storage.get_concurrency_info("llm").slot_count == 3


def _resolved_deploy_storage() -> dict:
    """deploy/dagster.yaml's storage config as dagster-postgres resolves it (env vars read)."""
    from dagster._config import process_config, resolve_to_config_type
    from dagster_postgres import DagsterPostgresStorage

    config = yaml.safe_load(DEPLOY_CONFIG.read_text())["storage"]["postgres"]
    result = process_config(resolve_to_config_type(DagsterPostgresStorage.config_type()), config)
    assert result.success, result.errors
    return result.value["postgres_db"]


def test_deploy_config_reads_the_server_from_the_environment(pg_env: dict[str, str]) -> None:
    db = _resolved_deploy_storage()
    assert db["hostname"] == pg_env["DAGSTER_PG_HOST"]
    assert db["port"] == int(pg_env["DAGSTER_PG_PORT"])
    assert db["username"] == pg_env["DAGSTER_PG_USER"]
    assert db["password"] == ""
    assert db["db_name"] == pg_env["DAGSTER_PG_DB"]


# --------------------------------------------------------------------------------------------
# deploy/dagster-k8s.yaml: the instance deploy/helm/values.yaml gives the cluster's pods

K8S_CONFIG = ROOT / "deploy" / "dagster-k8s.yaml"
HELM_VALUES = ROOT / "deploy" / "helm" / "values.yaml"

#: A kubeconfig for a cluster that is never called: the launcher only reads it at start-up.
KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "test", "cluster": {"server": "https://127.0.0.1:1"}}],
    "users": [{"name": "test", "user": {"token": "unused"}}],
    "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
    "current-context": "test",
}


def _k8s_home(tmp_path: Path, name: str, s3_endpoint: str) -> Path:
    """A DAGSTER_HOME holding deploy/dagster-k8s.yaml as deployed, but for where the launcher
    finds its cluster (a pod's service account in the cluster, a kubeconfig file here) and
    where the compute logs' bucket is (the local S3 server, not AWS). Each home is a pod: its
    compute logs' local files are its own."""
    home = tmp_path / name
    home.mkdir()
    config = yaml.safe_load(K8S_CONFIG.read_text())
    kubeconfig = home / "kubeconfig.yaml"
    kubeconfig.write_text(yaml.safe_dump(KUBECONFIG))
    launcher = config["run_launcher"]["config"]
    assert launcher["load_incluster_config"] is True
    launcher.update(load_incluster_config=False, kubeconfig_file=str(kubeconfig))
    logs = config["compute_logs"]["config"]
    assert "endpoint_url" not in logs and "local_dir" not in logs
    logs.update(endpoint_url=s3_endpoint, local_dir=str(home / "compute-logs"))
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


@pytest.fixture
def s3_endpoint(s3_server: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> str:
    """The local S3 server, its credentials in the environment as the pods' AWS chain gives
    them, and an empty bucket of the compute logs' name."""
    import boto3

    endpoint = s3_server["client_kwargs"]["endpoint_url"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server["key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server["secret"])
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    bucket = yaml.safe_load(K8S_CONFIG.read_text())["compute_logs"]["config"]["bucket"]
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    if bucket not in [found["Name"] for found in client.list_buckets()["Buckets"]]:
        client.create_bucket(Bucket=bucket)
    for item in client.list_objects_v2(Bucket=bucket).get("Contents", []):
        client.delete_object(Bucket=bucket, Key=item["Key"])
    return endpoint


@pytest.fixture
def k8s_instance(
    tmp_path: Path, pg_env: dict[str, str], s3_endpoint: str
) -> Iterator[dg.DagsterInstance]:
    """deploy/dagster-k8s.yaml, as a run's pod loads it."""
    with dg.DagsterInstance.from_config(str(_k8s_home(tmp_path, "run_pod", s3_endpoint))) as i:
        yield i


def test_k8s_config_launches_runs_as_kubernetes_jobs(k8s_instance: dg.DagsterInstance) -> None:
    from dagster_k8s import K8sRunLauncher
    from dagster_postgres import PostgresRunStorage

    launcher = k8s_instance.run_launcher
    assert isinstance(launcher, K8sRunLauncher)
    assert launcher.instance_config_map == "soulprint-dagster-instance"
    assert launcher.postgres_password_secret == "dagster-postgresql-secret"
    assert launcher.env_secrets == ["soulprint-secrets"]
    assert launcher.job_image is None  # each run starts from its code location's image
    resources = launcher.run_k8s_config["container_config"]["resources"]
    assert resources["limits"]["memory"] == "2Gi"
    # run monitoring reads the Jobs' health from Kubernetes, so a dead run pod fails its run
    assert launcher.supports_check_run_worker_health
    assert k8s_instance.run_monitoring_enabled

    assert isinstance(k8s_instance.run_storage, PostgresRunStorage)
    assert isinstance(k8s_instance.run_coordinator, QueuedRunCoordinator)
    _assert_one_run_per_user(k8s_instance, max_runs=50)
    assert k8s_instance.get_concurrency_config().pool_config.default_pool_limit == 4
    run = _run(k8s_instance, "alice")
    assert k8s_instance.get_run_by_id(run.run_id).tags["dagster/partition"] == "alice"


#: What the probe step prints: not a person's words, a line to find again.
STDOUT_LINE = "probe step: stdout reaches the webserver"


@dg.op
def prints_a_line() -> None:
    print(STDOUT_LINE)


@dg.job
def printing_job() -> None:
    prints_a_line()


def test_k8s_config_keeps_a_steps_stdout_where_the_webserver_reads_it(
    k8s_instance: dg.DagsterInstance, s3_endpoint: str, tmp_path: Path
) -> None:
    """A run pod's step prints; the webserver, another pod with none of its files, shows it."""
    from dagster_aws.s3.compute_log_manager import S3ComputeLogManager

    assert isinstance(k8s_instance.compute_log_manager, S3ComputeLogManager)
    result = printing_job.execute_in_process(instance=k8s_instance)
    assert result.success
    (captured,) = [
        event.logs_captured_data
        for event in result.all_events
        if event.event_type == dg.DagsterEventType.LOGS_CAPTURED
    ]

    webserver_home = _k8s_home(tmp_path, "webserver_pod", s3_endpoint)
    with dg.DagsterInstance.from_config(str(webserver_home)) as webserver:
        manager = webserver.compute_log_manager
        log_key = manager.build_log_key_for_run(result.run_id, captured.file_key)
        assert not (webserver_home / "compute-logs").exists()  # nothing local: from the bucket
        data = manager.get_log_data(log_key)
    assert data.stdout is not None
    assert STDOUT_LINE in data.stdout.decode()


def test_helm_values_render_the_k8s_instance() -> None:
    """The chart's values say what deploy/dagster-k8s.yaml holds (the chart renders one from
    the other; helm itself is not on this machine)."""
    values = yaml.safe_load(HELM_VALUES.read_text())
    instance = yaml.safe_load(K8S_CONFIG.read_text())
    dev = yaml.safe_load(DEV_CONFIG.read_text())

    assert values["runLauncher"]["type"] == instance["run_launcher"]["class"] == "K8sRunLauncher"
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    config = instance["run_launcher"]["config"]
    assert [s["name"] for s in launcher["envSecrets"]] == config["env_secrets"]
    assert (
        launcher["runK8sConfig"]["containerConfig"]["resources"]
        == config["run_k8s_config"]["container_config"]["resources"]
    )
    assert values["global"]["postgresqlSecretName"] == config["postgres_password_secret"]
    assert values["postgresql"]["enabled"] is False  # an external PostgreSQL
    assert values["generatePostgresqlPasswordSecret"] is False  # its password from a secret

    runs = values["concurrency"]["runs"]
    assert values["concurrency"]["enabled"] is True
    assert runs["maxConcurrentRuns"] == instance["concurrency"]["runs"]["max_concurrent_runs"]
    # one run per user, exactly as the embedded default and deploy/dagster.yaml say
    assert runs["tagConcurrencyLimits"] == instance["concurrency"]["runs"]["tag_concurrency_limits"]
    assert ONE_RUN_PER_USER in dev["concurrency"]["runs"]["tag_concurrency_limits"]
    assert ONE_RUN_PER_USER in runs["tagConcurrencyLimits"]
    pools = values["concurrency"]["pools"]
    assert pools["defaultLimit"] == instance["concurrency"]["pools"]["default_limit"]

    monitoring = values["dagsterDaemon"]["runMonitoring"]
    assert monitoring["enabled"] is instance["run_monitoring"]["enabled"] is True
    assert monitoring["maxRuntimeSeconds"] == instance["run_monitoring"]["max_runtime_seconds"]
    assert monitoring["startTimeoutSeconds"] == instance["run_monitoring"]["start_timeout_seconds"]
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"

    # the code location's secrets come from a Kubernetes secret, never from the values
    (location,) = values["dagster-user-deployments"]["deployments"]
    assert [s["name"] for s in location["envSecrets"]] == ["soulprint-secrets"]
    secret_like = ("KEY", "SECRET", "PASSWORD", "TOKEN", "PROFILES_URL")
    assert not [e["name"] for e in location["env"] if any(w in e["name"] for w in secret_like)]
    assert location["includeConfigInLaunchedRuns"]["enabled"] is True

    # a step's stdout and stderr go to the lake's bucket, in both files
    logs = values["computeLogManager"]
    assert logs["type"] == instance["compute_logs"]["class"] == "S3ComputeLogManager"
    chart = logs["config"]["s3ComputeLogManager"]
    assert instance["compute_logs"]["config"] == {
        "bucket": chart["bucket"],
        "prefix": chart["prefix"],
        "region": chart["region"],
        "upload_interval": chart["uploadInterval"],
    }
    env = {e["name"]: e.get("value") for e in location["env"]}
    assert env["SOULPRINT_LAKE_URL"] == f"s3://{chart['bucket']}"
