"""A headless Debian chromium driven by selenium: for the page's tests and the demo's screenshots.

``deploy/install-services.sh`` installs ``chromium`` and ``chromium-driver`` (no
browser build is downloaded: selenium is pointed at both binaries). Each browser
gets a fresh profile directory and collects the page's console messages
(``goog:loggingPrefs``), so a test can assert there was no error.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM: Final = "/usr/bin/chromium"
CHROMEDRIVER: Final = "/usr/bin/chromedriver"
CHROMIUM_MISSING: Final = (
    "chromium and chromedriver are needed (Debian: apt-get install -y --no-install-recommends "
    "chromium chromium-driver; `make services` installs them)"
)

HEADLESS_FLAGS: Final = (
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@contextmanager
def chromium(*, width: int = 1440, height: int = 1000) -> Iterator[webdriver.Chrome]:
    """A headless chromium with a fresh profile; quit and its profile removed on exit.

    Raises:
        RuntimeError: :data:`CHROMIUM_MISSING` when either binary is absent.
    """
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        raise RuntimeError(CHROMIUM_MISSING)
    profile = Path(tempfile.mkdtemp(prefix="chromium-profile-"))
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in HEADLESS_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    """The console's SEVERE entries since the last call (chromium hands each out once)."""
    entries: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]  # selenium leaves get_log unannotated
    return [entry for entry in entries if entry.get("level") == "SEVERE"]


def full_page_screenshot(driver: webdriver.Chrome, path: Path) -> Path:
    """The whole page (the window grown to the document's height for the shot) as a PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    size = driver.get_window_size()
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(size["width"], max(height + 40, size["height"]))
    driver.save_screenshot(str(path))
    driver.set_window_size(size["width"], size["height"])
    return path
