"""The monitoring page during the demo: its address, and screenshots of it phase by phase.

``--screenshots DIR`` opens the page in a headless chromium (Debian's, as the page's
tests use: ``make services`` installs it) and saves it at the end of each phase,
once the page has refreshed with that phase's figures.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.common.by import By

from demo.report import LIVE_WINDOW
from harness.browser import chromium, full_page_screenshot

PAGE_RANGE_SECONDS = 300
"""The page's time range in the demo: the whole run fits in it."""


def page_url(base_url: str) -> str:
    """The page's address, showing the demo's live window over its whole run."""
    return f"{base_url}/ui?window={LIVE_WINDOW}&range={PAGE_RANGE_SECONDS}"


class PageShots:
    """A headless chromium on the page; :meth:`take` saves it after its next refresh."""

    def __init__(self, stack: contextlib.ExitStack, url: str, out: Path) -> None:
        self.out = out
        self.driver: webdriver.Chrome = stack.enter_context(chromium(width=1440, height=1000))
        self.driver.get(url)
        self.taken: list[Path] = []
        self._wait_for(1)

    def _refreshes(self) -> int:
        body = self.driver.find_element(By.TAG_NAME, "body")
        return int(body.get_attribute("data-refreshes") or 0)

    def _wait_for(self, count: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while self._refreshes() < count and time.monotonic() < deadline:
            time.sleep(0.2)

    def take(self, name: str) -> Path:
        """The page after a refresh started now, as ``<out>/page-<n>-<name>.png``.

        The refresh is asked for (not waited for, up to 5 s), so traffic hardly pauses.
        """
        deadline = time.monotonic() + 10.0
        while self.driver.execute_script("return state.refreshing") and (
            time.monotonic() < deadline
        ):
            time.sleep(0.05)
        count = self._refreshes()
        self.driver.execute_script("refresh()")
        self._wait_for(count + 1)
        path = self.out / f"page-{len(self.taken) + 1}-{name}.png"
        self.taken.append(full_page_screenshot(self.driver, path))
        return path
