"""The memory as an operator meets it: an import killed while embedding resumes without paying
again, and ``soulprint-pipeline recall`` prints the chunks a query finds."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import dagster as dg
import pytest

from soulprint_pipeline.memory.lance import LanceMemoryStore
from soulprint_pipeline.memory.store import TABLE
from soulprint_pipeline.testing.synthetic import write_export
from soulprint_pipeline_tests.support.cli import (
    CONSOLE_SCRIPT,
    defaults_under,
    environment,
    run_cli,
)


def _staged_rows(memory: Path) -> int:
    if not (memory / f"{TABLE}.lance").exists():
        return 0
    try:
        return LanceMemoryStore(str(memory), 256)._chunks.count_rows()
    except Exception:  # the table is being created by the import: not yet
        return 0


def _last_memory_metadata(home: Path) -> dict:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("memory_chunks"))
        metadata = event.asset_materialization.metadata
        return {key: value.value for key, value in metadata.items()}


@pytest.mark.chaos
def test_an_import_killed_while_embedding_resumes_and_recall_finds(tmp_path: Path) -> None:
    export = tmp_path / "export.json"
    write_export(str(export), fmt="json", target_bytes=12 * 1024 * 1024, seed=11)
    settings = defaults_under(tmp_path)
    memory = tmp_path / "data" / "memory"
    command = [str(CONSOLE_SCRIPT), "import", str(export), "--user", "u1"]
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=environment(**settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # kill -9 once some chunks are staged, long before all of them are
    deadline = time.monotonic() + 300
    while _staged_rows(memory) < 1024 and time.monotonic() < deadline:
        assert process.poll() is None, "the import ended before it could be killed"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    staged = _staged_rows(memory)
    assert staged >= 1024

    again = run_cli("import", str(export), "--user", "u1", cwd=tmp_path, env=settings)
    assert again.returncode == 0, again.stderr[-2000:]
    assert '"import_status": "complete"' in again.stdout
    metadata = _last_memory_metadata(tmp_path / "home")
    # the re-import parsed the export again, and embedded only what the killed run had not
    assert metadata["chunks_resumed"] >= staged
    assert metadata["chunks_embedded"] + metadata["chunks_resumed"] == metadata["chunks"]

    found = run_cli(
        "recall", "--user", "u1", "-k", "2", "my dog barking at the mail carrier",
        cwd=tmp_path, env=settings,
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    assert found.stdout.startswith("1. ") and "2. " in found.stdout
    assert "Biscuit" in found.stdout  # the generator's dog, in the person's own words

    unknown = run_cli("recall", "--user", "nobody", "anything", cwd=tmp_path, env=settings)
    assert unknown.returncode == 2 and "no memory is stored for nobody" in unknown.stderr
    assert "Traceback" not in unknown.stderr
