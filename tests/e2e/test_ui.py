"""The page (``GET /ui``) in a real chromium against a real ``bentoml serve``.

It loads without a console error, asks for the read token when one is set, draws
every panel, shows "not enough data" (never 0) before labels, shows the figure
``GET /monitor`` reports once labels arrive (labels sent after the page opened, seen
within one refresh), and draws two versions side by side. Screenshots are kept in
``test-artifacts/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from harness.browser import chromium, console_errors, full_page_screenshot
from harness.serving import REPO, copy_home

from .conftest import StartServer
from .traffic import MODEL, labelled_body, ok_json, save_another_version, shared_store

pytestmark = pytest.mark.e2e

ARTIFACTS = REPO / "test-artifacts"
TOKEN = "page-token"
PANELS = ("traffic", "quality", "classes", "drift", "fairness", "disparities", "versions")
REFRESH_SECONDS = 5.0


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    try:
        with chromium() as driver:
            yield driver
    except RuntimeError as exc:  # never skip: make test installs chromium (make services)
        pytest.fail(str(exc), pytrace=False)


def _until(check: Callable[[], Any], *, timeout: float, message: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(message)


def _refreshes(driver: webdriver.Chrome) -> int:
    return int(driver.find_element(By.TAG_NAME, "body").get_attribute("data-refreshes") or 0)


def _row(driver: webdriver.Chrome, figure: str, version: str) -> Any:
    rows = driver.find_elements(
        By.CSS_SELECTOR, f'#figures tr[data-figure="{figure}"][data-version="{version}"]'
    )
    return rows[0] if rows else None


def _drawn(driver: webdriver.Chrome) -> list[str]:
    return [
        panel
        for panel in PANELS
        if driver.find_element(By.CSS_SELECTOR, f'[data-panel="{panel}"]').get_attribute(
            "data-drawn"
        )
        == "true"
    ]


def test_the_page_draws_the_monitors_figures_and_late_labels_within_one_refresh(
    start_server: StartServer, browser: webdriver.Chrome
) -> None:
    server = start_server({"MONITOR_READ_TOKEN": TOKEN, "MONITOR_WORKERS": "1"})
    auth = {"Authorization": f"Bearer {TOKEN}"}
    body, truth = labelled_body(120, seed=1900)
    with server.client() as client:
        made = ok_json(client.post("/predict", json=body))["predictions"]

    browser.get(f"{server.base_url}/ui")
    form = _until(
        lambda: browser.find_element(By.ID, "token-form").is_displayed(),
        timeout=10,
        message="the page did not ask for the read token",
    )
    assert form
    browser.find_element(By.ID, "token-input").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "#token-form button").click()
    _until(lambda: _refreshes(browser) >= 1, timeout=15, message="the page never drew")
    version = browser.find_element(By.ID, "model-meta").text.split()[2]
    # The one console error: the refused first request that made the page ask.
    refused = console_errors(browser)
    assert len(refused) == 1 and "/monitor - Failed to load resource" in refused[0]["message"]
    assert "401" in refused[0]["message"]

    # Before any label: "not enough data", never a 0.
    accuracy = _row(browser, "accuracy", version)
    assert accuracy.find_elements(By.TAG_NAME, "td")[1].text == "not enough data"
    assert accuracy.get_attribute("data-value") == ""
    assert "not enough data" in browser.find_element(By.ID, "cards").text
    assert _drawn(browser) == list(PANELS)
    # The first load (page, script, styles, uPlot, the figures): within 1.5 MB, all local.
    loaded = browser.execute_script(
        "return performance.getEntries().filter(e => e.name.startsWith('http'))"
        ".map(e => [e.name, e.encodedBodySize || 0])"
    )
    assert all(name.startswith(server.base_url) for name, _ in loaded), loaded
    assert sum(size for _, size in loaded) <= 1_500_000
    full_page_screenshot(browser, ARTIFACTS / "ui-before-labels.png")

    # Labels sent now appear within one refresh (one may be under way as they land).
    seen = _refreshes(browser)
    labels = [
        {"prediction_id": p["prediction_id"], "label": y} for p, y in zip(made, truth, strict=True)
    ]
    with server.client() as client:
        ok_json(client.post("/feedback", json={"labels": labels}, headers=auth))
        sent = time.monotonic()
        _until(
            lambda: _refreshes(browser) >= seen + 2,
            timeout=2 * REFRESH_SECONDS + 5,
            message="the page stopped refreshing",
        )
        snapshot = ok_json(client.get("/monitor", headers=auth))
    assert time.monotonic() - sent <= 2 * REFRESH_SECONDS + 5
    window = browser.find_element(By.ID, "window-select").get_attribute("value")
    expected = snapshot["versions"][version]["windows"][window]
    assert expected["n_labels"] == 120
    shown = _row(browser, "accuracy", version)
    assert float(shown.get_attribute("data-value")) == expected["quality"]["accuracy"]["value"]
    cells = [td.text for td in shown.find_elements(By.TAG_NAME, "td")]
    figure = expected["quality"]["accuracy"]
    assert cells[1] == f"{figure['value']:.3f}"
    assert cells[2] == f"{figure['lower']:.3f} – {figure['upper']:.3f}"
    assert cells[3] == str(figure["n"])
    assert _row(browser, "labels", version).get_attribute("data-value") == "120"
    for feature, drift in expected["drift"]["features"].items():
        row = _row(browser, f"psi {feature}", version)
        assert float(row.get_attribute("data-value")) == drift["psi"]["value"]

    # Hovering a chart shows the point's n and interval.
    chart = browser.find_element(By.CSS_SELECTOR, "#chart-quality .u-over")
    webdriver.ActionChains(browser).move_to_element_with_offset(
        chart, chart.size["width"] // 2 - 2, 0
    ).perform()
    tooltip = _until(
        lambda: browser.find_element(By.ID, "tooltip").text,
        timeout=5,
        message="no tooltip on hover",
    )
    assert "n=" in tooltip and "UTC" in tooltip
    full_page_screenshot(browser, ARTIFACTS / "ui-labelled.png")
    assert console_errors(browser) == []


def test_two_versions_are_drawn_side_by_side(
    tmp_path: Path, trained_home: Path, start_server: StartServer, browser: webdriver.Chrome
) -> None:
    home = copy_home(trained_home, tmp_path)
    v1, v2 = save_another_version(home)
    shared = shared_store(tmp_path)
    shared["MONITOR_WORKERS"] = "1"
    old = start_server({**shared, "MONITOR_MODEL": f"{MODEL}:{v1}"}, home=home)
    body, truth = labelled_body(60, seed=2000)
    with old.client() as client:
        made = ok_json(client.post("/predict", json=body))["predictions"]
    old.stop()
    new = start_server({**shared, "MONITOR_MODEL": f"{MODEL}:{v2}"}, home=home)
    body2, truth2 = labelled_body(60, seed=2001)
    with new.client() as client:
        made2 = ok_json(client.post("/predict", json=body2))["predictions"]
        pairs = [*zip(made, truth, strict=True), *zip(made2, truth2, strict=True)]
        labels = [{"prediction_id": p["prediction_id"], "label": y} for p, y in pairs]
        ok_json(client.post("/feedback", json={"labels": labels}))
        snapshot = ok_json(client.get("/monitor"))

    browser.get(f"{new.base_url}/ui")
    _until(lambda: _refreshes(browser) >= 1, timeout=15, message="the page never drew")

    assert _drawn(browser) == list(PANELS)
    traffic = browser.find_element(By.CSS_SELECTOR, '[data-panel="traffic"]')
    assert traffic.get_attribute("data-series") == "4"  # predictions and labels per version
    key = traffic.find_element(By.CLASS_NAME, "key").text
    assert f"predictions {v1}" in key and f"predictions {v2}" in key
    versions = browser.find_element(By.ID, "versions").text
    assert f"{v2} (serving)" in versions and v1 in versions and f"{v2} − {v1}" in versions
    difference = snapshot["comparison"]["windows"]["5m"]["accuracy"]["value"]
    assert f"{difference:+.3f}" in versions
    # The rollout's anytime interval (what may be watched) is its own row and the card.
    anytime = snapshot["comparison"]["rollout"]["figures"]["accuracy"]
    row = browser.find_element(By.CSS_SELECTOR, '[data-compare^="labels since the rollout"]').text
    assert "anytime 95%" in row and f"{anytime['value']:+.3f}" in row
    assert f"{anytime['n']}" in row and f"{anytime['n_baseline']}" in row
    cards = browser.find_element(By.ID, "cards").text
    assert f"since the rollout: {v2} − {v1}" in cards
    for version in (v1, v2):
        expected = snapshot["versions"][version]["windows"]["5m"]["quality"]["accuracy"]
        shown = _row(browser, "accuracy", version).get_attribute("data-value")
        assert float(shown) == expected["value"]
    full_page_screenshot(browser, ARTIFACTS / "ui-two-versions.png")
    assert console_errors(browser) == []
