"""A canary judged end to end: two served versions, one store, a real Prometheus and Alertmanager.

``bentoml serve`` runs the newest version of the demo model (scraped, one worker) and,
beside it on the same SQLite store, the previous version (not scraped). Prometheus
evaluates the shipped rules every second (``for:`` shortened, expressions untouched)
and Alertmanager routes to a webhook in this process.

First the canary is **equal**: both versions are the same trained model and get the
same requests with the true labels, so their difference since the rollout began is
exactly 0, and over the whole phase (every evaluation, after the gauges show all
labels) the webhook receives no ``ModelVersionRegression``. Then the canary turns
**worse** (its labels flipped): the anytime interval since the rollout began falls
below 0 and the webhook receives the alert. Loopback only; about a minute.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.backends import write_yaml
from harness.otlp import wait_for
from harness.processes import free_port_run
from harness.serving import Server, copy_home

from .backends import (
    Prometheus,
    Webhook,
    render_prometheus_config,
    render_rules,
    require_binary,
    start_alertmanager,
)
from .traffic import MODEL, labelled_body, ok_json, post_concurrently, save_another_version

pytestmark = pytest.mark.e2e

ROWS_PER_REQUEST = 10
REQUESTS = 30
"""Requests a phase sends to each version (300 rows)."""
QUIET_SECONDS = 10.0
"""Evaluations watched (one a second) once every equal label shows in the gauges."""
ROLLOUT = "ml_compare_rollout_accuracy"
ROLLOUT_SERIES = '{__name__=~"ml_compare_rollout_accuracy.*"}'


@dataclass
class Canary:
    canary: Server
    baseline: Server
    prometheus: Prometheus
    webhook: Webhook
    canary_version: str
    baseline_version: str


def _flip(label: str) -> str:
    return "legit" if label == "fraud" else "fraud"


def _send(server: Server, seeds: range, *, flip: bool) -> None:
    """The same generated requests whatever the server; labels true (or flipped)."""
    bodies, truths = zip(
        *(labelled_body(ROWS_PER_REQUEST, seed=seed) for seed in seeds), strict=True
    )
    items = []
    for response, truth in zip(
        post_concurrently(server.base_url, "/predict", list(bodies), threads=4), truths, strict=True
    ):
        for prediction, label in zip(ok_json(response)["predictions"], truth, strict=True):
            items.append(
                {
                    "prediction_id": prediction["prediction_id"],
                    "label": _flip(label) if flip else label,
                }
            )
    response = httpx.post(f"{server.base_url}/feedback", json={"labels": items}, timeout=30.0)
    assert ok_json(response)["counts"]["matched"] == len(items)


def _regressions(webhook: Webhook) -> list[dict[str, Any]]:
    return [a for a in webhook.alerts() if a["labels"].get("alertname") == "ModelVersionRegression"]


@pytest.fixture(scope="module")
def rollout(trained_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Canary]:
    prometheus_bin = require_binary("prometheus")
    alertmanager_bin = require_binary("prometheus-alertmanager", "alertmanager")
    workdir = tmp_path_factory.mktemp("rollout-alerts")
    home = copy_home(trained_home, workdir)
    baseline_version, canary_version = save_another_version(home)
    port = free_port_run(1)
    rules_file = workdir / "rules.yml"
    write_yaml(rules_file, render_rules(for_="0s"))
    with ExitStack() as stack:
        webhook = stack.enter_context(Webhook())
        canary = Server(
            workdir / "canary",
            home,
            {
                "MONITOR_MODEL": f"{MODEL}:{canary_version}",
                "MONITOR_WORKERS": "1",
                "MONITOR_PROMETHEUS_PORT": str(port),
                "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            },
        )
        stack.callback(canary.stop)
        canary.start()
        baseline = Server(
            workdir / "baseline",
            home,
            {
                "MONITOR_MODEL": f"{MODEL}:{baseline_version}",
                "MONITOR_STORE_URL": f"sqlite:///{canary.store_path}",
                "MONITOR_WORKERS": "1",
            },
        )
        stack.callback(baseline.stop)
        alertmanager = start_alertmanager(alertmanager_bin, workdir / "alertmanager", webhook.url)
        stack.callback(alertmanager.stop)
        alertmanager.start()
        config = render_prometheus_config(
            targets=[f"127.0.0.1:{port}"],
            rules_file=rules_file,
            alertmanager=alertmanager.address,
            interval="1s",
        )
        prometheus = Prometheus(prometheus_bin, workdir / "prometheus", config)
        stack.callback(prometheus.stop)
        prometheus.start()
        canary.wait_ready()  # the canary's version is recorded: its rollout has begun
        baseline.start()
        baseline.wait_ready()
        alertmanager.wait_ready()
        prometheus.wait_ready()
        yield Canary(canary, baseline, prometheus, webhook, canary_version, baseline_version)


def _gauge(prometheus: Prometheus, name: str) -> float | None:
    return prometheus.value(f"max({name})")


def test_an_equal_canary_stays_quiet_and_a_worse_one_reaches_the_webhook(
    rollout: Canary,
) -> None:
    prometheus, webhook = rollout.prometheus, rollout.webhook
    equal = range(7000, 7000 + REQUESTS)
    _send(rollout.canary, equal, flip=False)
    _send(rollout.baseline, equal, flip=False)
    rows = float(REQUESTS * ROWS_PER_REQUEST)
    wait_for(
        lambda: (
            (
                _gauge(prometheus, f"{ROLLOUT}_samples"),
                _gauge(prometheus, f"{ROLLOUT}_baseline_samples"),
            )
            == (rows, rows)
        ),
        timeout=30.0,
        message=lambda: f"rollout gauges: {prometheus.query(ROLLOUT_SERIES)}",
        interval=0.25,
    )
    assert _gauge(prometheus, ROLLOUT) == 0.0  # the same model on the same rows
    lower, upper = _gauge(prometheus, f"{ROLLOUT}_lower"), _gauge(prometheus, f"{ROLLOUT}_upper")
    assert lower is not None and upper is not None and lower < 0 < upper
    deadline = time.monotonic() + QUIET_SECONDS
    while time.monotonic() < deadline:  # every evaluation of the equal phase, one a second
        assert prometheus.query('ALERTS{alertname="ModelVersionRegression"}') == []
        time.sleep(0.5)
    assert _regressions(webhook) == []

    worse = range(8000, 8000 + REQUESTS)
    _send(rollout.canary, worse, flip=True)  # the canary is now wrong on these rows
    _send(rollout.baseline, worse, flip=False)

    (alert, *_) = wait_for(
        lambda: [a for a in _regressions(webhook) if a["status"] == "firing"],
        timeout=60.0,
        message=lambda: (
            f"no ModelVersionRegression at the webhook; got {webhook.alerts()}; rollout "
            f"{prometheus.query(ROLLOUT_SERIES)}"
        ),
        interval=0.25,
    )
    assert {k: alert["labels"][k] for k in ("ml_model_version", "ml_compare_baseline_version")} == {
        "ml_model_version": rollout.canary_version,
        "ml_compare_baseline_version": rollout.baseline_version,
    }
    assert alert["labels"]["ml_compare_metric"] == "accuracy"
    upper = _gauge(prometheus, f"{ROLLOUT}_upper")
    assert upper is not None and upper < 0
