"""deploy/: the code location's image builds the package the tests use and serves it over gRPC
as the Helm chart expects (Docker cannot pull images here: the Dockerfile is parsed, what it
copies is built into a wheel, and the command it runs is started)."""

from __future__ import annotations

import fnmatch
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import dockerfile
import pytest
import yaml

from soulprint_pipeline_tests.support.cli import defaults_under, environment
from soulprint_pipeline_tests.support.services import Service, free_port

ROOT = Path(__file__).parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
HELM_VALUES = ROOT / "deploy" / "helm" / "values.yaml"
DAGSTER = Path(sys.executable).parent / "dagster"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCATION_MODULE = PYPROJECT["tool"]["dagster"]["module_name"]


def _stages() -> list[list[dockerfile.Command]]:
    """The Dockerfile's instructions, one list per build stage."""
    stages: list[list[dockerfile.Command]] = []
    for command in dockerfile.parse_file(str(DOCKERFILE)):
        if command.cmd == "FROM":
            stages.append([])
        stages[-1].append(command)
    return stages


def _of(stage: list[dockerfile.Command], cmd: str) -> list[dockerfile.Command]:
    return [command for command in stage if command.cmd == cmd]


def _ignored(relative: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps ``relative`` out of the build context (a path is out when
    it or a folder above it matches; the file uses no `!` exceptions)."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch.fnmatch(p, pattern) for p in prefixes for pattern in patterns)


def _dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert not any(p.startswith("!") for p in patterns)
    # Docker matches `**/x` at any depth, the root included
    return patterns + [p.removeprefix("**/") for p in patterns if p.startswith("**/")]


def test_the_image_is_python_311_slim_serving_the_location_on_4000() -> None:
    stages = _stages()
    assert [_of(stage, "FROM")[0].value[0] for stage in stages] == [
        "python:3.11-slim",
        "python:3.11-slim",
    ]
    final = stages[-1]
    assert [c.value[0] for c in _of(final, "EXPOSE")] == ["4000"]
    (cmd,) = _of(final, "CMD")
    assert cmd.json, "exec form: the server is PID 1 and gets the pod's SIGTERM"
    assert list(cmd.value) == [
        "dagster", "api", "grpc", "-m", LOCATION_MODULE, "-h", "0.0.0.0", "-p", "4000",
    ]  # fmt: skip
    # the Helm chart starts the same location on the same port
    deployment = yaml.safe_load(HELM_VALUES.read_text())["dagster-user-deployments"]
    (location,) = deployment["deployments"]
    assert location["dagsterApiGrpcArgs"] == ["-m", LOCATION_MODULE]
    assert location["port"] == 4000


def test_the_image_installs_the_package_the_tests_use(tmp_path: Path) -> None:
    build, final = _stages()
    # the final stage installs the wheel built from the repository, with the k8s extra
    installs = " ".join(" ".join(c.value) for c in _of(final, "RUN"))
    assert "pip install" in installs and '"${WHEEL}[k8s]"' in installs
    assert any(c.value[-1] == "/wheels" and "--from=build" in c.flags for c in _of(final, "COPY"))
    (wheel_step,) = [c for c in _of(build, "RUN") if "pip wheel" in " ".join(c.value)]
    assert shlex.split(wheel_step.value[0])[-1] == "."  # the package at the build's WORKDIR
    # the instance's run launcher and compute log manager (deploy/dagster-k8s.yaml)
    assert PYPROJECT["project"]["optional-dependencies"]["k8s"] == [
        "dagster-k8s==0.29.27",
        "dagster-aws==0.29.27",
    ]

    # what the build stage copies, taken from the build context as .dockerignore leaves it,
    # builds the same package (with its C extension, prompts and definitions), with the build
    # requirements pyproject.toml names, as `pip wheel` in the image fetches them
    patterns = _dockerignore()
    context = tmp_path / "context"
    for copy in _of(build, "COPY"):
        *sources, destination = copy.value
        target = context / destination.removeprefix("./")
        for source in sources:
            origin = ROOT / source
            if origin.is_dir():
                for path in origin.rglob("*"):
                    relative = path.relative_to(ROOT).as_posix()
                    if path.is_file() and not _ignored(relative, patterns):
                        placed = target / path.relative_to(origin)
                        placed.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy(path, placed)
            else:
                assert not _ignored(source, patterns), f".dockerignore drops {source}"
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy(origin, target / origin.name)
    assert not list(context.rglob("*.so")), "a locally built extension must not reach the image"
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps",
         "--wheel-dir", str(wheels), "."],
        cwd=context, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = wheels.glob("soulprint_pipeline-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert f"{LOCATION_MODULE.replace('.', '/')}.py" in names
    assert "soulprint_pipeline/soulprint/prompts/quick_pass.md" in names
    assert any(
        n.startswith("soulprint_pipeline/export/_native") and n.endswith(".so") for n in names
    )
    assert not any(n.startswith("soulprint_pipeline_tests/") for n in names)


def test_dockerignore_keeps_local_state_out() -> None:
    patterns = _dockerignore()
    for local in (".venv/bin/python", ".dagster_home/dagster.yaml", "data/lake/x", ".git/HEAD",
                  "soulprint_pipeline/export/__pycache__/reader.pyc"):  # fmt: skip
        assert _ignored(local, patterns), local
    for needed in ("pyproject.toml", "README.md", "soulprint_pipeline/definitions.py"):
        assert not _ignored(needed, patterns), needed


@pytest.fixture
def code_server(tmp_path: Path) -> Iterator[int]:
    """The image's command, `dagster api grpc -m soulprint_pipeline.definitions`, on a free
    port (127.0.0.1 here; the image listens on 0.0.0.0), on the embedded defaults."""
    port = free_port()
    env = environment(**defaults_under(tmp_path))
    Path(env["DAGSTER_HOME"]).mkdir()
    server = Service.start(
        "code-server",
        [str(DAGSTER), "api", "grpc", "-m", LOCATION_MODULE, "-h", "127.0.0.1", "-p", str(port)],
        cwd=tmp_path,
        env=env,
        log=tmp_path / "grpc.log",
    )
    try:
        yield port
    finally:
        server.stop()
        assert server.process.poll() is not None


def _dagster(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DAGSTER), *args], capture_output=True, text=True, timeout=300, env=env
    )


def test_the_code_location_serves_over_grpc(code_server: int, tmp_path: Path) -> None:
    env = environment(**defaults_under(tmp_path))
    deadline = time.monotonic() + 180
    while True:  # the liveness probe the chart gives the code location's pod
        health = _dagster("api", "grpc-health-check", "-p", str(code_server), env=env)
        if health.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert health.returncode == 0, (
        health.stdout + health.stderr + (tmp_path / "grpc.log").read_text()
    )

    validated = _dagster(
        "definitions", "validate", "--grpc-host", "127.0.0.1", "--grpc-port", str(code_server),
        env=env,
    )  # fmt: skip
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "Validation successful" in validated.stdout + validated.stderr
