"""The installed console script, as a person runs it: in a subprocess, with the documented
environment variables set or unset."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

#: The installed entry point (pyproject's [project.scripts]), beside the test's interpreter.
CONSOLE_SCRIPT = Path(sys.executable).parent / "soulprint-pipeline"

#: Every variable the README documents: a test sets what it needs on a clean slate.
DOCUMENTED = [
    "SOULPRINT_DATA_DIR",
    "SOULPRINT_UPLOADS_URL",
    "SOULPRINT_LAKE_URL",
    "SOULPRINT_PROFILES_URL",
    "SOULPRINT_MODEL",
    "SOULPRINT_MODEL_ID",
    "SOULPRINT_TOKEN_BUDGET",
    "SOULPRINT_PARSE_WORKERS",
    "SOULPRINT_MEMORY_URL",
    "SOULPRINT_MEMORY_MAX_TOKENS",
    "SOULPRINT_EMBEDDER",
    "SOULPRINT_EMBEDDING_DIMENSION",
    "SOULPRINT_EMBEDDING_MODEL_ID",
    "SOULPRINT_EMBEDDING_CONCURRENCY",
    "DAGSTER_HOME",
]


def environment(**settings: str) -> dict[str, str]:
    """This process's environment with none of the documented variables, plus ``settings``."""
    clean = {k: v for k, v in os.environ.items() if k not in DOCUMENTED}
    return {**clean, **settings}


def defaults_under(root: Path) -> dict[str, str]:
    """Settings that keep the embedded defaults under ``root`` (data folder, Dagster
    instance), with small embeddings so a test's memory builds fast."""
    return {
        "SOULPRINT_DATA_DIR": str(root / "data"),
        "SOULPRINT_EMBEDDING_DIMENSION": "256",
        "DAGSTER_HOME": str(root / "home"),
    }


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``soulprint-pipeline ARGS`` on a clean slate plus ``env``, its output captured."""
    return subprocess.run(
        [str(CONSOLE_SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=environment(**(env or {})),
    )
