"""A real browser for the UI tests: Debian's headless Chromium driven by selenium.

The root ``conftest.py`` registers the ``browser`` fixture (module scope) for every test.

Chromium and its driver come from the system (``apt-get install chromium chromium-driver``,
which ``.ci/run`` does on CI); ``SOULPRINT_TEST_CHROMIUM`` and ``SOULPRINT_TEST_CHROMEDRIVER``
name other binaries. Without them the tests are skipped, except on CI (``CI=true``), where that
is a failure. Selenium is given both paths, so it never looks for (or downloads) a browser.

Screenshots go to ``SOULPRINT_UI_ARTIFACTS`` (default ``artifacts/ui/`` at the repository
root, git-ignored), one PNG per page a test opens, saved whether its assertions pass or fail:
CI keeps that folder as its artifacts.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from soulprint_pipeline_tests.support.postgres import unavailable

REPO = Path(__file__).resolve().parents[2]

#: Longest wait for a page to show what a test expects (the first page also waits for the
#: code location to load).
PAGE_TIMEOUT = 60.0

#: Chromium under root in a container, with no network beyond localhost: no sandbox (it needs
#: user namespaces), no GPU, /tmp rather than a small /dev/shm, and none of the background
#: traffic (component updates, sync, QUIC probes) that would wait on the network.
CHROMIUM_ARGUMENTS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--window-size=1600,1200",
)

#: Dagster's first-visit "Join the Dagster community" dialog (shown on localhost) stays closed
#: once this key holds "1": what its own dismiss button stores (``CommunityNux.tsx``).
DISMISS_COMMUNITY_DIALOG = "window.localStorage.setItem('communityNux', JSON.stringify('1'));"


def artifacts_dir() -> Path:
    """Where the screenshots go (``SOULPRINT_UI_ARTIFACTS``, else ``artifacts/ui/``)."""
    folder = Path(os.environ.get("SOULPRINT_UI_ARTIFACTS") or REPO / "artifacts" / "ui")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def find_chromium() -> tuple[str, str] | None:
    """(chromium, chromedriver) paths, or None if either is missing."""
    browser = shutil.which(os.environ.get("SOULPRINT_TEST_CHROMIUM") or "chromium")
    driver = shutil.which(os.environ.get("SOULPRINT_TEST_CHROMEDRIVER") or "chromedriver")
    return (browser, driver) if browser and driver else None


class Browser:
    """One headless Chromium, with waits that name what they waited for."""

    def __init__(self, driver: webdriver.Chrome, screenshots: Path) -> None:
        self.driver = driver
        self.screenshots = screenshots

    @contextlib.contextmanager
    def page(self, url: str, name: str) -> Iterator[webdriver.Chrome]:
        """Open ``url``; on leaving, save the page as ``{name}.png``, failed assertions or not."""
        self.driver.get(url)
        try:
            yield self.driver
        finally:
            self.driver.save_screenshot(str(self.screenshots / f"{name}.png"))

    def wait(self, what: str, condition: Callable[[webdriver.Chrome], object]) -> object:
        """``condition``'s first truthy value, or a failure naming ``what`` and the page text."""
        try:
            return WebDriverWait(
                self.driver,
                PAGE_TIMEOUT,
                poll_frequency=0.25,
                ignored_exceptions=(StaleElementReferenceException,),  # a re-rendered element
            ).until(condition)
        except TimeoutException:
            pytest.fail(
                f"{self.driver.current_url}: no {what} after {PAGE_TIMEOUT:.0f}s; the page shows:"
                f"\n{self.text()[:3000]}",
                pytrace=False,
            )

    def text(self) -> str:
        """The text of the page as rendered (WebDriver's visible text, which leaves out the
        hidden copies some components keep for measuring), blank lines dropped."""
        text = self.driver.find_element(By.TAG_NAME, "body").text
        return "\n".join(line.strip() for line in text.splitlines() if line.strip())

    def wait_for_text(self, *texts: str) -> str:
        """The page's text once it shows every one of ``texts``."""

        def shown(_: webdriver.Chrome) -> str | None:
            text = self.text()
            return text if all(t in text for t in texts) else None

        return str(self.wait(" and ".join(repr(t) for t in texts), shown))


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """A headless Chromium (fresh profile) with Dagster's community dialog dismissed."""
    found = find_chromium()
    if found is None:
        unavailable(
            "no Chromium for the UI tests: `apt-get install chromium chromium-driver` "
            "(or set SOULPRINT_TEST_CHROMIUM and SOULPRINT_TEST_CHROMEDRIVER)"
        )
        return
    binary, driver_path = found
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in CHROMIUM_ARGUMENTS:
        options.add_argument(argument)
    profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp_path_factory.getbasetemp())
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(options=options, service=DriverService(driver_path))
    try:
        driver.execute_cdp_cmd(
            "Page.addScriptToEvaluateOnNewDocument", {"source": DISMISS_COMMUNITY_DIALOG}
        )
        yield Browser(driver, artifacts_dir())
    finally:
        driver.quit()
