"""The whole path as in production: a real ``dagster-daemon`` and ``dagster-webserver`` on a
dagster-postgres instance (``deploy/dagster.yaml``), uploads dropped into a folder, the upload
sensor starting runs, ``user_profiles`` in PostgreSQL, and a re-run through the GraphQL API.

It starts processes and waits on their daemons, so it takes a minute or so; it runs on CI
(the PostgreSQL fixtures fail there rather than skip).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import psycopg
import pytest
import requests
import yaml
from psycopg.rows import dict_row

from soulprint_pipeline_tests.support.exports import chatgpt_export_bytes
from soulprint_pipeline_tests.support.services import Service, free_port

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the venv's bin: dagster-daemon, dagster-webserver, dagster
LOCATION = "soulprint_pipeline"
REPOSITORY = "__repository__"
JOB = "import_user"
SENSORS = ("upload_sensor", "import_queued_sensor", "import_failure_sensor")

START_TIMEOUT = 90.0  # webserver up with the code location loaded
IMPORT_TIMEOUT = 120.0  # an upload dropped -> its row complete (or failed)

_T = TypeVar("_T")


@dataclass
class Deployment:
    """The running daemon and webserver, and where the pipeline reads and writes."""

    uploads: Path
    profiles_url: str
    port: int
    services: list[Service] = field(default_factory=list)

    def logs(self) -> str:
        return "\n".join(
            f"----- {service.name} (exit {service.process.poll()}) -----\n{service.tail()}"
            for service in self.services
        )

    def upload(self, user_id: str, data: bytes, name: str = "export.json") -> Path:
        """Drop an export as a browser upload would land: written whole, then renamed in."""
        folder = self.uploads / user_id
        folder.mkdir(parents=True, exist_ok=True)
        partial = self.uploads / f".{user_id}-{name}.partial"  # at the root: never an export
        partial.write_bytes(data)
        path = folder / name
        partial.rename(path)
        return path

    def row(self, user_id: str) -> dict[str, Any] | None:
        with psycopg.connect(self.profiles_url, row_factory=dict_row, connect_timeout=10) as conn:
            try:
                return conn.execute(
                    "SELECT * FROM user_profiles WHERE user_id = %s", (user_id,)
                ).fetchone()
            except psycopg.errors.UndefinedTable:
                return None  # the pipeline creates it on first use

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = requests.post(
            f"http://127.0.0.1:{self.port}/graphql",
            json={"query": query, "variables": variables or {}},
            timeout=30,
        )
        assert response.status_code == 200, f"{response.status_code}: {response.text[:2000]}"
        body = response.json()
        assert "errors" not in body, body
        return body["data"]

    def wait_for(
        self, what: str, probe: Callable[[], _T | None], timeout: float = IMPORT_TIMEOUT
    ) -> _T:
        """Poll ``probe`` until it returns something truthy; on timeout, fail with the logs."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            for service in self.services:
                if service.process.poll() is not None:
                    pytest.fail(f"{service.name} exited while waiting for {what}\n{self.logs()}")
            try:
                last = probe()
            except (requests.RequestException, psycopg.OperationalError) as error:
                last = error
            if last and not isinstance(last, Exception):
                return last
            time.sleep(0.5)
        pytest.fail(
            f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})\n{self.logs()}"
        )
        raise AssertionError("unreachable")


def _instance_yaml(poll_interval_seconds: int = 2) -> dict[str, Any]:
    """deploy/dagster.yaml as deployed, with quicker run monitoring."""
    config = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    config["run_monitoring"]["poll_interval_seconds"] = poll_interval_seconds
    return config


@pytest.fixture
def instance_database(postgres_url: str) -> Iterator[str]:
    """A fresh database for the Dagster instance's storage, on the session's server."""
    server = urlsplit(postgres_url)._replace(path="/postgres").geturl()
    name = f"dagster_{uuid.uuid4().hex}"
    with psycopg.connect(server, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlsplit(postgres_url)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(server, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def deployment(
    tmp_path: Path, instance_database: str, postgres_profiles_url: str
) -> Iterator[Deployment]:
    for tool in ("dagster", "dagster-daemon", "dagster-webserver"):
        assert (BIN / tool).is_file(), f"{BIN / tool} is missing: run `make install`"
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(_instance_yaml(), sort_keys=False))
    data = tmp_path / "data"
    uploads = data / "uploads"
    uploads.mkdir(parents=True)
    storage = urlsplit(instance_database)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SOULPRINT_", "DAGSTER_", "SUPABASE_"))
    }
    env.update(
        DAGSTER_HOME=str(home),
        DAGSTER_PG_HOST=storage.hostname or "127.0.0.1",
        DAGSTER_PG_PORT=str(storage.port or 5432),
        DAGSTER_PG_USER=storage.username or "postgres",
        DAGSTER_PG_PASSWORD=storage.password or "",
        DAGSTER_PG_DB=storage.path.lstrip("/"),
        SOULPRINT_DATA_DIR=str(data),
        SOULPRINT_UPLOADS_URL=str(uploads),
        SOULPRINT_LAKE_URL=str(data / "lake"),
        SOULPRINT_PROFILES_URL=postgres_profiles_url,
        SOULPRINT_SENSOR_INTERVAL_SECONDS="2",  # read when the definitions load
        SOULPRINT_SENSOR_SETTLE_SECONDS="1",
        PYTHONUNBUFFERED="1",
    )
    # The schema first, once, so the two processes do not race to create it.
    migrate = subprocess.run(
        [str(BIN / "dagster"), "instance", "migrate"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    port = free_port()
    deployment = Deployment(uploads=uploads, profiles_url=postgres_profiles_url, port=port)
    commands = {
        "dagster-webserver": [
            str(BIN / "dagster-webserver"),
            *("-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"),
        ],
        "dagster-daemon": [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
    }
    try:
        for name, command in commands.items():
            log = tmp_path / f"{name}.log"
            deployment.services.append(Service.start(name, command, REPO, env, log))
        deployment.wait_for("the webserver", lambda: _location_loaded(deployment), START_TIMEOUT)
        yield deployment
    finally:
        for service in reversed(deployment.services):
            service.stop()


def _location_loaded(deployment: Deployment) -> bool:
    data = deployment.graphql(
        """{ workspaceOrError { __typename ... on Workspace { locationEntries {
             name loadStatus locationOrLoadError { __typename ... on PythonError { message } }
           } } } }"""
    )
    for entry in data["workspaceOrError"].get("locationEntries", []):
        if entry["name"] == LOCATION and entry["loadStatus"] == "LOADED":
            loaded = entry["locationOrLoadError"]
            assert loaded["__typename"] == "RepositoryLocation", loaded
            return True
    return False


def _sensor_statuses(deployment: Deployment) -> dict[str, str]:
    data = deployment.graphql(
        """query ($selector: RepositorySelector!) { sensorsOrError(repositorySelector: $selector) {
             __typename ... on Sensors { results { name sensorState { status } } }
             ... on PythonError { message } } }""",
        {"selector": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}},
    )
    return {s["name"]: s["sensorState"]["status"] for s in data["sensorsOrError"]["results"]}


def _status(deployment: Deployment, user_id: str, *statuses: str) -> dict[str, Any] | None:
    row = deployment.row(user_id)
    return row if row and row["import_status"] in statuses else None


def _runs_of(deployment: Deployment, user_id: str) -> list[dict[str, Any]]:
    data = deployment.graphql(
        """query ($filter: RunsFilter!) { runsOrError(filter: $filter) { __typename
             ... on Runs { results { runId status jobName tags { key value } } } } }""",
        {"filter": {"tags": [{"key": "dagster/partition", "value": user_id}]}},
    )
    return data["runsOrError"]["results"]


@pytest.mark.filterwarnings(
    "ignore:Using variable_values:DeprecationWarning"
)  # gql, via the client
def test_uploads_to_soulprints_through_the_daemon_and_the_webserver(
    deployment: Deployment,
) -> None:
    from dagster import DagsterRunStatus
    from dagster_graphql import DagsterGraphQLClient

    started = time.monotonic()
    # The sensors are on from deploy (default_status=RUNNING): nobody has to switch them on.
    statuses = _sensor_statuses(deployment)
    assert {name: statuses.get(name) for name in SENSORS} == dict.fromkeys(SENSORS, "RUNNING")

    # One upload: the sensor starts its import, which ends complete with the soulprint.
    deployment.upload("e2e-alice", chatgpt_export_bytes(5))
    alice = deployment.wait_for(
        "e2e-alice complete",
        lambda: _status(deployment, "e2e-alice", "complete", "failed"),
    )
    assert alice["import_status"] == "complete", alice["import_error"]
    assert alice["progress_percent"] == 100 and alice["import_stage"] == "Complete"
    assert alice["total_conversations"] == 5 and alice["total_messages"] == 10
    assert alice["import_error"] is None and alice["soulprint"] and alice["soul_md"]

    # Two at once: a good export and a corrupt one (a truncated upload).
    deployment.upload("e2e-bob", chatgpt_export_bytes(4))
    good = chatgpt_export_bytes(3)
    deployment.upload("e2e-carol", good[: len(good) // 2])
    bob = deployment.wait_for(
        "e2e-bob complete", lambda: _status(deployment, "e2e-bob", "complete", "failed")
    )
    carol = deployment.wait_for(
        "e2e-carol failed", lambda: _status(deployment, "e2e-carol", "complete", "failed")
    )
    assert bob["import_status"] == "complete", bob["import_error"]
    assert bob["progress_percent"] == 100 and bob["total_messages"] == 8
    assert carol["import_status"] == "failed"
    assert "cut short" in carol["import_error"], carol["import_error"]
    assert carol["progress_percent"] < 100 and carol["soulprint"] is None

    # A data engineer re-materializes alice from the UI (the webserver's GraphQL API): the run
    # takes her newest upload, and she stays complete with her soulprint throughout.
    client = DagsterGraphQLClient("127.0.0.1", port_number=deployment.port)
    run_id = client.submit_job_execution(
        JOB,
        repository_location_name=LOCATION,
        repository_name=REPOSITORY,
        tags={"dagster/partition": "e2e-alice"},
    )
    terminal = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}

    def finished() -> DagsterRunStatus | None:
        row = deployment.row("e2e-alice")
        assert row and row["import_status"] == "complete", row  # never leaves complete
        status = client.get_run_status(run_id)
        return status if status in terminal else None

    status = deployment.wait_for(f"the GraphQL run {run_id}", finished)
    assert status == DagsterRunStatus.SUCCESS, deployment.logs()
    again = deployment.row("e2e-alice")
    assert again["import_status"] == "complete" and again["progress_percent"] == 100
    assert again["total_messages"] == 10 and again["soulprint"] == alice["soulprint"]
    assert again["updated_at"] >= alice["updated_at"]

    # One run per upload (the sensor never re-submitted one), plus the GraphQL re-run.
    runs = {user: _runs_of(deployment, user) for user in ("e2e-alice", "e2e-bob", "e2e-carol")}
    assert [len(runs[user]) for user in runs] == [2, 1, 1], runs
    assert {r["status"] for r in runs["e2e-alice"] + runs["e2e-bob"]} == {"SUCCESS"}
    assert runs["e2e-carol"][0]["status"] == "FAILURE"
    assert all(r["jobName"] == JOB for rs in runs.values() for r in rs)
    print(f"end to end: {time.monotonic() - started:.1f}s after the deployment was up")
