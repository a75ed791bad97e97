"""What a data engineer sees in the Dagster UI, in a real browser (headless Chromium).

A demo instance is built the way a person builds one: a small generated export imported with
the installed ``soulprint-pipeline import`` into a fresh ``DAGSTER_HOME`` (holding the
repository's ``dagster.yaml``, as ``make demo`` copies it), then ``dagster-webserver`` serves
that instance with the project's workspace. Each test opens one page and asserts what a person
must see there; every page is saved as a screenshot (``support/browser.py``: ``artifacts/ui/``).

Marked ``ui``: ``pytest -m ui`` runs these alone, ``-m "not ui"`` leaves them out. Without
Chromium they are skipped, except on CI, where ``.ci/run`` installs it.
"""

from __future__ import annotations

import re
import shutil
import struct
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import requests
from selenium.webdriver.common.by import By

from soulprint_pipeline.defs.checks import BATCHES_CHECKS, SOULPRINT_CHECKS
from soulprint_pipeline.export.rows import SCHEMA
from soulprint_pipeline.mirror.progress import (
    COMPLETE,
    DOWNLOADING,
    GENERATING,
    PARSING,
    REMEMBERING,
)
from soulprint_pipeline.testing.synthetic import write_export
from soulprint_pipeline_tests.support.browser import Browser
from soulprint_pipeline_tests.support.cli import defaults_under, environment, run_cli
from soulprint_pipeline_tests.support.services import Service, free_port

pytestmark = pytest.mark.ui

REPO = Path(__file__).resolve().parents[2]
WEBSERVER = Path(sys.executable).parent / "dagster-webserver"
USER = "ui-user"
ASSETS = ("raw_export", "conversation_batches", "quick_pass_soulprint", "memory_chunks")
START_TIMEOUT = 90.0  # the webserver answering HTTP (the code location may still be loading)


@dataclass
class Demo:
    """A demo instance served by a running webserver."""

    url: str
    run_id: str
    data: Path

    def stored_rows(self) -> int:
        """Rows in the user's Parquet parts, read back from the lake (one import: one version)."""
        parts = sorted((self.data / "lake" / "conversation_batches" / USER).rglob("*.parquet"))
        assert parts, "the import stored no Parquet parts"
        return sum(pq.ParquetFile(part).metadata.num_rows for part in parts)

    def activity_png(self) -> bytes:
        """The activity picture the import stored beside the soulprint."""
        (picture,) = (self.data / "lake" / "quick_pass_soulprint" / USER).rglob("activity.png")
        return picture.read_bytes()


def _wait_until_serving(service: Service, url: str) -> None:
    """Poll the webserver's ``/server_info`` until it answers; fail with its log if it exits."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            pytest.fail(
                f"dagster-webserver exited ({service.process.returncode}):\n{service.tail()}"
            )
        try:
            if requests.get(f"{url}/server_info", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    pytest.fail(f"dagster-webserver did not answer in {START_TIMEOUT:.0f}s:\n{service.tail()}")


@pytest.fixture(scope="module")
def demo(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """Import a generated export with the console script, then serve its instance.

    Depends on ``browser`` so that, without Chromium, nothing is built before the skip."""
    root = tmp_path_factory.mktemp("ui")
    settings = defaults_under(root)
    home = Path(settings["DAGSTER_HOME"])
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")  # as `make demo` does
    export = root / "export.zip"
    write_export(str(export), fmt="zip", target_bytes=300_000, seed=3)

    imported = run_cli("import", str(export), "--user", USER, cwd=root, env=settings)
    assert imported.returncode == 0, imported.stdout[-3000:] + imported.stderr[-3000:]
    found = re.search(r"^run ([0-9a-f-]{36}) in .*: succeeded$", imported.stdout, re.MULTILINE)
    assert found, imported.stdout[-3000:]

    port = free_port()
    command = [str(WEBSERVER), "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"]
    env = environment(**settings, PYTHONUNBUFFERED="1")
    service = Service.start("dagster-webserver", command, REPO, env, root / "webserver.log")
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until_serving(service, url)
        yield Demo(url=url, run_id=found.group(1), data=Path(settings["SOULPRINT_DATA_DIR"]))
    finally:
        service.stop()


def _value_after(text: str, key: str) -> str:
    """The line that follows ``key``'s own line in a page's text (a metadata table's value)."""
    lines = [line.strip() for line in text.splitlines()]
    assert key in lines, f"no {key!r} on the page"
    return lines[lines.index(key) + 1]


def test_the_asset_graph_shows_the_four_assets_and_their_checks_passing(
    browser: Browser, demo: Demo
) -> None:
    with browser.page(f"{demo.url}/asset-groups", "01-asset-graph"):
        # the node's check summary appears once the location and its latest events have loaded
        text = browser.wait_for_text(*ASSETS, "Passed")
        assert "Join the Dagster community" not in text
    checked = {spec.asset_key.to_user_string() for spec in BATCHES_CHECKS + SOULPRINT_CHECKS}
    assert checked == {"conversation_batches", "quick_pass_soulprint"}
    # each checked asset's node: "Asset checks" then "2 / 2 Passed"
    assert text.count("2 / 2 Passed") == len(checked), text
    assert "Failed" not in text


def test_the_partition_page_shows_the_row_count_and_the_stored_metadata(
    browser: Browser, demo: Demo
) -> None:
    url = f"{demo.url}/assets/conversation_batches?view=partitions&partition={USER}"
    with browser.page(url, "02-conversation-batches-partition"):
        text = browser.wait_for_text(USER, "Materialized", "dagster/row_count", "json_mb_per_s")
    assert int(_value_after(text, "dagster/row_count")) == demo.stored_rows()
    assert _value_after(text, "rows") == _value_after(text, "dagster/row_count")
    for key in ("rows_by_role", "export_size", "json_size", "stored_mb_per_s", "skipped"):
        assert key in text.splitlines(), key
    assert re.fullmatch(r"[\d.]+ KiB", _value_after(text, "json_size"))


def test_the_overview_shows_the_column_schema(browser: Browser, demo: Demo) -> None:
    url = f"{demo.url}/assets/conversation_batches?view=overview"
    with browser.page(url, "03-conversation-batches-overview"):
        text = browser.wait_for_text("Columns", *SCHEMA.names)
    columns = text[text.index("Columns") :]
    for field in SCHEMA:
        assert f"{field.name}\n{field.type}" in columns, field
    assert _value_after(text, "Row count") == str(demo.stored_rows())
    assert _value_after(text, "Owners") == "data"


def test_the_checks_tab_shows_both_checks_passing(browser: Browser, demo: Demo) -> None:
    names = sorted(spec.name for spec in BATCHES_CHECKS)
    url = f"{demo.url}/assets/conversation_batches?view=checks"
    with browser.page(url, "04-conversation-batches-checks"):
        text = browser.wait_for_text(f"Checks ({len(names)})", *names, "Evaluation result")
    for name in names:  # the list on the left: each name, then its status
        assert _value_after(text, name) == "Succeeded", name
    assert _value_after(text, "Evaluation result") == "Passed"
    assert _value_after(text, "Partition") == USER
    assert "This is a blocking asset check." in text


def test_the_run_log_shows_the_progress_observations(browser: Browser, demo: Demo) -> None:
    stages = [DOWNLOADING, PARSING, GENERATING, REMEMBERING, COMPLETE]
    browser.driver.set_window_size(1600, 2400)  # the log is virtualized: rows render when seen
    try:
        # the run's log filtered to observations, as typed in its filter box
        url = f"{demo.url}/runs/{demo.run_id}?logs=type%3AASSET_OBSERVATION"
        with browser.page(url, "05-import-run-log"):
            text = browser.wait_for_text("Success", *(stage.name for stage in stages))
    finally:
        browser.driver.set_window_size(1600, 1200)
    assert "ASSET_OBSERVATION" in text and "STEP_START" not in text  # the filter applied
    # each observation's metadata, a key and its value per line
    shown = [
        (name, int(percent))
        for name, percent in re.findall(r"^stage (.+)\nprogress_percent (\d+)$", text, re.M)
    ]
    assert [name for name, _ in shown][0] == DOWNLOADING.name
    assert shown[-1] == (COMPLETE.name, 100)
    percents = [percent for _, percent in shown]
    assert percents == sorted(percents), shown  # progress never moves backwards
    assert {name for name, _ in shown} == {stage.name for stage in stages}


def test_the_activity_picture_loads_in_the_soulprint_metadata(browser: Browser, demo: Demo) -> None:
    png = demo.activity_png()
    width, height = struct.unpack(">II", png[16:24])  # the PNG's IHDR
    url = f"{demo.url}/assets/quick_pass_soulprint?view=partitions&partition={USER}"
    with browser.page(url, "06-activity-picture"):
        browser.wait_for_text("activity_messages", "[Show Markdown]")
        row = browser.driver.find_element(
            By.XPATH,
            "//tr[td[normalize-space()='activity']]//a[normalize-space()='[Show Markdown]']",
        )
        row.click()
        image = browser.wait(
            "a loaded activity picture",
            lambda driver: driver.execute_script(
                "const img = document.querySelector('[role=dialog] img[alt=activity]');"
                "return img && img.complete && img.naturalWidth > 0"
                " ? [img.naturalWidth, img.naturalHeight, img.src.slice(0, 22)] : null;"
            ),
        )
    assert image == [width, height, "data:image/png;base64,"]
