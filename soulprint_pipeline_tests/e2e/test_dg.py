"""``dg``, Dagster's project CLI, finds the project from pyproject.toml and loads its defs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
DG = Path(sys.executable).parent / "dg"


def _dg(*args: str) -> subprocess.CompletedProcess[str]:
    venv = Path(sys.executable).parent.parent
    environment = {**os.environ, "VIRTUAL_ENV": str(venv), "NO_COLOR": "1", "COLUMNS": "200"}
    environment["PATH"] = f"{venv / 'bin'}{os.pathsep}{environment.get('PATH', '')}"
    return subprocess.run(
        [str(DG), *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300
    )


def test_dg_checks_and_lists_the_definitions() -> None:
    checked = _dg("check", "defs")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr
    listed = _dg("list", "defs")
    assert listed.returncode == 0, listed.stderr
    for name in ("raw_export", "conversation_batches", "quick_pass_soulprint", "memory_chunks"):
        assert name in listed.stdout
    assert "upload_sensor" in listed.stdout and "import_user" in listed.stdout
