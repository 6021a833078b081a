"""A real Prometheus scraping both workers of a real server, alerting through a real Alertmanager.

One module-scoped stack: ``bentoml serve`` with 2 workers and ``MONITOR_PROMETHEUS_PORT``
on, Prometheus scraping each worker's endpoint every second and evaluating the shipped
rules (``for:`` shortened, expressions untouched), Alertmanager routing to a webhook in
this process. The fixture drives demo-like traffic once: predictions spread over both
workers, one rejected request, and labels that disagree with the predictions (flipped
truth), with duplicates and unknown ids. Each test then reads that state.

Two versions of the demo model: the fixture saves ``fraud-detector`` a second time, and
before the scraped server (serving the new version) gets its traffic, a second server on
the same SQLite store serves the previous version and gets labels that agree with its
predictions. So the scraped server exports both versions' window gauges and a real
comparison (serving minus previous, far below 0, since the serving version was recorded),
and ``ModelVersionRegression`` fires on its anytime-valid interval.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from harness.backends import write_yaml
from harness.otlp import wait_for
from harness.processes import free_port_run
from harness.serving import REPO, Server, copy_home

from .backends import (
    RULES,
    Prometheus,
    Webhook,
    render_prometheus_config,
    render_rules,
    require_binary,
    shipped_job_name,
    start_alertmanager,
)
from .traffic import MODEL, labelled_body, ok_json, post_concurrently, save_another_version

pytestmark = pytest.mark.e2e

WORKERS = 2
ROWS_PER_REQUEST = 10
MIN_ROWS = 300
"""Rows to predict (and label, flipped): the accuracy CUSUM (0.80 against 0.75) crosses h."""
PREVIOUS_ROWS = 250
"""Rows the previous version predicts (labelled truly): the rollout's anytime interval
excludes 0 by far (ModelVersionRegression has no sample gate: the interval is the gate)."""
REGRESSION_ONLY = frozenset(
    {
        "ml_compare_rollout_mae",
        "ml_compare_rollout_mae_lower",
        "ml_alert_mae_cusum",
    }
)
"""Metrics the rules read that only a regression model exports (the server here serves a
classifier; promtool's MAE cases cover ModelVersionRegression's MAE branch and ModelMaeHigh)."""
UNKNOWN = 12
DUPLICATES = 7
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "model-monitor.json"
DASHBOARD_VARIABLES = {"$__rate_interval": "2m", "$model": MODEL, "$window": "1h"}
"""What Grafana would substitute: a rate window spanning the traffic, the demo model, 1h."""


@dataclass
class Stack:
    server: Server
    prometheus: Prometheus
    webhook: Webhook
    targets: list[str]
    rows: int
    """Rows predicted: the sum over workers of ``ml_predictions_total`` must be exactly this."""
    serving: str
    """The model version the scraped server serves (the newer one)."""
    previous: str
    """The version served before it, on the same store, by an unscraped server."""


def _flip(label: str) -> str:
    return "legit" if label == "fraud" else "fraud"


def _metrics_text(target: str) -> str:
    with httpx.Client(timeout=5.0) as client:
        return client.get(f"http://{target}/metrics").text


class _Traffic:
    """Predictions with flipped truth for labels, as a demo would send them, counted."""

    def __init__(self, server: Server, *, flip: bool = True, seed: int = 5000) -> None:
        self.server = server
        self.flip = flip
        self.rows = 0
        self.matched = 0
        self.labels: dict[str, str] = {}
        self._seed = seed

    def predict(self, requests: int) -> list[str]:
        bodies, truths = [], []
        for _ in range(requests):
            self._seed += 1
            body, truth = labelled_body(ROWS_PER_REQUEST, seed=self._seed)
            bodies.append(body)
            truths.append(truth)
        ids = []
        for response, truth in zip(
            post_concurrently(self.server.base_url, "/predict", bodies), truths, strict=True
        ):
            predictions = ok_json(response)["predictions"]
            for prediction, label in zip(predictions, truth, strict=True):
                self.labels[prediction["prediction_id"]] = _flip(label) if self.flip else label
                ids.append(prediction["prediction_id"])
            self.rows += len(predictions)
        return ids

    def feedback(self, ids: list[str], *, per_request: int) -> None:
        items = [{"prediction_id": pid, "label": self.labels[pid]} for pid in ids]
        batches = [
            {"labels": items[i : i + per_request]} for i in range(0, len(items), per_request)
        ]
        for response in post_concurrently(self.server.base_url, "/feedback", batches):
            self.matched += ok_json(response)["counts"].get("matched", 0)


def _on_every_worker(targets: list[str], series: str) -> bool:
    try:
        return all(f"{series}{{" in _metrics_text(t) for t in targets)
    except httpx.TransportError:  # a worker still starting: /readyz answers with the first
        return False


def _wait_for_every_endpoint(targets: list[str], timeout: float = 60.0) -> None:
    """Block until every worker's scrape endpoint answers: each worker starts on its own."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            for target in targets:
                _metrics_text(target)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"not every worker serves /metrics after {timeout:.0f}s: {targets}")


def _drive_traffic(server: Server, targets: list[str], prometheus: Prometheus) -> int:
    """Warm every worker's series up, let Prometheus see them, then send the bulk.

    ``rate()`` only counts increases between two scrapes of a series, so each
    counter must exist (scraped once) before the traffic that the dashboard's
    rate panels are meant to show.
    """
    traffic = _Traffic(server)
    warm: list[str] = []
    for _ in range(10):
        warm += traffic.predict(4)
        if _on_every_worker(targets, "ml_predictions_total"):
            break
    pending = iter(warm)
    for _ in range(4):  # single-label requests land on either worker
        traffic.feedback([next(pending) for _ in range(8)], per_request=1)
        if _on_every_worker(targets, "ml_label_delay_seconds_count"):
            break
    for series in ("ml_predictions_total", "ml_label_delay_seconds_count"):
        assert _on_every_worker(targets, series), f"{series} missing on a worker"
    # One failing request (a reused id: 409, nothing stored), for the error panels.
    reused, _ = labelled_body(1, seed=1)
    reused["instances"][0]["id"] = warm[0]
    assert httpx.post(f"{server.base_url}/predict", json=reused).status_code == 409
    warmed_up = {
        "sum(ml_predictions_total)": traffic.rows,
        "sum(ml_label_delay_seconds_count)": traffic.matched,
        "sum(ml_prediction_errors_total)": 1,
    }
    wait_for(
        lambda: all(prometheus.value(e) == v for e, v in warmed_up.items()),
        timeout=15.0,
        message=lambda: f"Prometheus has not scraped the warm-up: {warmed_up}",
        interval=0.25,
    )

    bulk = traffic.predict(max(0, MIN_ROWS - traffic.rows) // ROWS_PER_REQUEST + 1)
    traffic.feedback(list(pending) + bulk, per_request=50)
    unknown = [{"prediction_id": f"never-made-{i}", "label": "fraud"} for i in range(UNKNOWN)]
    duplicate = [{"prediction_id": pid, "label": traffic.labels[pid]} for pid in bulk[:DUPLICATES]]
    for body in ({"labels": unknown}, {"labels": duplicate}):
        ok_json(httpx.post(f"{server.base_url}/feedback", json=body))
    return traffic.rows


def _two_versions(trained_home: Path, workdir: Path) -> tuple[Path, str, str]:
    """A BENTOML_HOME with the demo model saved twice: ``(home, previous, newest)``."""
    home = copy_home(trained_home, workdir)
    return (home, *save_another_version(home))


def _serve_previous_version(server: Server) -> None:
    """Predictions of the previous version, labelled with the truth (it was right)."""
    traffic = _Traffic(server, flip=False, seed=9000)
    ids = traffic.predict(PREVIOUS_ROWS // ROWS_PER_REQUEST)
    traffic.feedback(ids, per_request=50)
    assert traffic.matched == PREVIOUS_ROWS
    with server.client() as client:  # computed from the store: every label is in
        accuracy = ok_json(client.get("/monitor"))["windows"]["1h"]["quality"]["accuracy"]
    assert accuracy["n"] == PREVIOUS_ROWS and accuracy["value"] > 0.8, accuracy


@pytest.fixture(scope="module")
def stack(trained_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus_bin = require_binary("prometheus")
    alertmanager_bin = require_binary("prometheus-alertmanager", "alertmanager")
    workdir = tmp_path_factory.mktemp("prometheus-stack")
    first_port = free_port_run(WORKERS)
    targets = [f"127.0.0.1:{first_port + i}" for i in range(WORKERS)]
    env = {
        "MONITOR_PROMETHEUS_PORT": str(first_port),
        # The gauge lease (3 export intervals) comfortably outlives the 1 s scrape interval.
        "OTEL_METRIC_EXPORT_INTERVAL": "2000",
    }
    rules_file = workdir / "rules.yml"
    write_yaml(rules_file, render_rules(for_="0s"))
    home, previous, serving = _two_versions(trained_home, workdir)
    with ExitStack() as stack:
        webhook = stack.enter_context(Webhook())
        server = Server(workdir / "server", home, {**env, "MONITOR_MODEL": f"{MODEL}:{serving}"})
        stack.callback(server.stop)
        server.start()
        # The previous version on the same store, not scraped (no endpoint: it never
        # takes the gauge lease), one worker, its own copy of the home; stopped once done.
        before = Server(
            workdir / "previous",
            home,
            {
                "MONITOR_MODEL": f"{MODEL}:{previous}",
                "MONITOR_STORE_URL": f"sqlite:///{server.store_path}",
                "MONITOR_WORKERS": "1",
            },
        )
        stack.callback(before.stop)
        before.start()
        alertmanager = start_alertmanager(alertmanager_bin, workdir / "alertmanager", webhook.url)
        stack.callback(alertmanager.stop)
        alertmanager.start()
        config = render_prometheus_config(
            targets=targets,
            rules_file=rules_file,
            alertmanager=alertmanager.address,
            interval="1s",
        )
        prometheus = Prometheus(prometheus_bin, workdir / "prometheus", config)
        stack.callback(prometheus.stop)
        prometheus.start()
        # The newer version is recorded (its rollout begins) when its monitor starts:
        # the previous version's labels come after, so they count in the rollout.
        server.wait_ready()
        before.wait_ready()
        _serve_previous_version(before)
        before.stop()
        server.wait_ready()
        alertmanager.wait_ready()
        prometheus.wait_ready()
        _wait_for_every_endpoint(targets)
        rows = _drive_traffic(server, targets, prometheus)
        yield Stack(server, prometheus, webhook, targets, rows, serving, previous)


def _wait_value(prometheus: Prometheus, expr: str, expected: float, timeout: float = 15.0) -> None:
    wait_for(
        lambda: prometheus.value(expr) == expected,
        timeout=timeout,
        message=lambda: f"{expr} = {prometheus.value(expr)}, expected {expected}",
        interval=0.25,
    )


# --- counters summed over workers; gauges from one ------------------------------------------------


def test_counters_from_both_workers_sum_to_what_was_sent(stack: Stack) -> None:
    prometheus = stack.prometheus

    _wait_value(prometheus, "sum(ml_predictions_total)", stack.rows)
    _wait_value(prometheus, 'sum(ml_feedback_total{ml_feedback_status="matched"})', stack.rows)
    _wait_value(prometheus, 'sum(ml_feedback_total{ml_feedback_status="unknown"})', UNKNOWN)
    _wait_value(prometheus, 'sum(ml_feedback_total{ml_feedback_status="duplicate"})', DUPLICATES)
    _wait_value(prometheus, "sum(ml_prediction_errors_total)", 1)

    # Both workers are scraped, each under its own instance and its own service.instance.id.
    per_worker = prometheus.query("sum by (instance) (ml_predictions_total)")
    assert sorted(r["metric"]["instance"] for r in per_worker) == stack.targets
    assert all(float(r["value"][1]) > 0 for r in per_worker)
    up = prometheus.query(f'up{{job="{shipped_job_name()}"}}')
    assert sorted((r["metric"]["instance"], r["value"][1]) for r in up) == [
        (t, "1") for t in stack.targets
    ]
    infos = prometheus.query("target_info")
    assert sorted(r["metric"]["instance"] for r in infos) == stack.targets
    assert len({r["metric"]["service_instance_id"] for r in infos}) == WORKERS
    assert {r["metric"]["service_name"] for r in infos} == {"model_monitor"}

    # Latency: one histogram observation per request, from both workers together.
    requests = prometheus.value("sum(ml_prediction_duration_seconds_count)")
    assert requests == prometheus.value('sum(ml_prediction_duration_seconds_bucket{le="+Inf"})')
    assert requests is not None and requests >= stack.rows / ROWS_PER_REQUEST + 1

    # Window gauges come from exactly one worker (the lease holder), so nothing doubles:
    # one series per model version, each with its own version's labels.
    for version, rows in ((stack.serving, stack.rows), (stack.previous, PREVIOUS_ROWS)):
        selector = f'{{ml_window="1h", ml_model_version="{version}"}}'
        _wait_value(prometheus, f"count(ml_quality_accuracy_samples{selector})", 1)
        _wait_value(prometheus, f"sum(ml_quality_accuracy_samples{selector})", rows)


# --- the accuracy alert, end to end ---------------------------------------------------------


def test_an_accuracy_drop_reaches_the_alertmanager_webhook(stack: Stack) -> None:
    def accuracy_alerts() -> list[dict[str, Any]]:
        return [
            a
            for a in stack.webhook.alerts()
            if a["labels"].get("alertname") == "ModelAccuracyLow" and a["status"] == "firing"
        ]

    (alert, *_) = wait_for(
        accuracy_alerts,
        timeout=30.0,
        message=lambda: (
            f"no ModelAccuracyLow at the webhook; got {stack.webhook.alerts()}; Prometheus "
            f"alerts: {stack.prometheus.api('alerts')}; accuracy "
            f"{stack.prometheus.query('ml_quality_accuracy')}"
        ),
        interval=0.25,
    )
    labels = alert["labels"]
    assert {k: labels[k] for k in ("severity", "job", "ml_model_name", "ml_model_version")} == {
        "severity": "critical",
        "job": shipped_job_name(),
        "ml_model_name": MODEL,
        "ml_model_version": stack.serving,  # the previous version was right
    }
    assert "instance" not in labels  # one alert per model, whichever worker holds the lease
    assert re.fullmatch(
        rf"{MODEL} {stack.serving}: accuracy below its threshold \(CUSUM at \d+\.\d\d of h\)",
        alert["annotations"]["summary"],
    ), alert["annotations"]["summary"]
    cusum = stack.prometheus.value(
        f'max(ml_alert_accuracy_cusum{{ml_model_version="{stack.serving}"}})'
    )
    assert cusum is not None and cusum > 1  # S/h: above its threshold h
    accuracy = stack.prometheus.value(
        f'max(ml_quality_accuracy{{ml_window="1h", ml_model_version="{stack.serving}"}})'
    )
    assert accuracy is not None and accuracy < 0.5  # flipped truth: the model is mostly wrong


COMPARISON = '{__name__=~"ml_compare_rollout_accuracy.*"}'


def test_a_version_regression_reaches_the_alertmanager_webhook(stack: Stack) -> None:
    def regressions() -> list[dict[str, Any]]:
        return [
            a
            for a in stack.webhook.alerts()
            if a["labels"].get("alertname") == "ModelVersionRegression" and a["status"] == "firing"
        ]

    (alert, *others) = wait_for(
        regressions,
        timeout=30.0,
        message=lambda: (
            f"no ModelVersionRegression at the webhook; got {stack.webhook.alerts()}; "
            f"Prometheus alerts: {stack.prometheus.api('alerts')}; comparison "
            f"{stack.prometheus.query(COMPARISON)}"
        ),
        interval=0.25,
    )
    assert all(a["labels"] == alert["labels"] for a in others)  # one alert, maybe resent
    labels = alert["labels"]
    assert {k: v for k, v in labels.items() if k != "alertname"} == {
        "severity": "warning",
        "job": shipped_job_name(),
        "ml_model_name": MODEL,
        "ml_model_version": stack.serving,
        "ml_compare_baseline_version": stack.previous,
        "ml_compare_metric": "accuracy",
    }
    assert re.fullmatch(
        rf"{MODEL} {stack.serving} is worse than {stack.previous}: accuracy -0\.\d{{3}} "
        "since the rollout began",
        alert["annotations"]["summary"],
    ), alert["annotations"]["summary"]
    # Truly labelled before, flipped now: the whole interval lies far below 0.
    upper = stack.prometheus.value("max(ml_compare_rollout_accuracy_upper)")
    assert upper is not None and upper < -0.5


def test_every_rule_evaluates_on_metrics_the_server_exports(stack: Stack) -> None:
    prometheus = stack.prometheus
    _wait_value(prometheus, "sum(ml_prediction_errors_total)", 1)
    rules = yaml.safe_load(RULES.read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert len(exprs) >= 10
    read: set[str] = set()
    for expr in exprs:
        prometheus.query(expr)  # parses and evaluates (an API error fails here)
        # A metric name is followed by its selector or range; label names are not.
        read |= set(re.findall(r"\b([a-z_][a-z0-9_]*)(?=[{\[])", expr))
    assert len(read) >= 15, read
    assert read >= REGRESSION_ONLY, "REGRESSION_ONLY names a metric no rule reads"
    assert {"ml_compare_rollout_accuracy_upper", "ml_alert_accuracy_cusum"} <= read

    def missing() -> list[str]:
        return [
            n
            for n in sorted(read - REGRESSION_ONLY)
            if not prometheus.query(f'count({{__name__="{n}"}})')
        ]

    # Polled: on a starved machine one scrape can time out and mark a target's series stale.
    wait_for(
        lambda: missing() == [],
        timeout=15.0,
        message=lambda: f"rules read metrics the server does not export: {missing()}",
        interval=0.5,
    )


# --- the Grafana dashboard against the same Prometheus -----------------------------------------


def _substitute(expr: str) -> str:
    for variable, value in DASHBOARD_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


def test_every_dashboard_panel_returns_data(stack: Stack) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    prometheus = stack.prometheus
    _wait_value(prometheus, "sum(ml_predictions_total)", stack.rows)
    _wait_value(prometheus, 'count(ml_quality_accuracy_samples{ml_window="1h"})', 2)
    _wait_value(prometheus, 'count(ml_compare_accuracy_baseline_samples{ml_window="1h"})', 1)
    targets = [(p["title"], t) for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(targets) >= 20

    def empty() -> list[str]:
        found = []
        for title, target in targets:
            expr = _substitute(target["expr"])
            result = prometheus.query(expr)
            if not any(math.isfinite(float(r["value"][1])) for r in result):
                found.append(f"{title} [{target['refId']}]: {expr} -> {result}")
        return found

    # Polled, like the rules: one timed-out scrape leaves a target's series stale for a while.
    wait_for(
        lambda: empty() == [],
        timeout=15.0,
        message=lambda: "panels without data:\n" + "\n".join(empty()),
        interval=0.5,
    )

    # The template variables' label_values() queries find the model and the window.
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    for name, expected in (("model", MODEL), ("window", "1h")):
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variables[name]["definition"])
        assert match, variables[name]["definition"]
        selector, label = _substitute(match.group(1)), match.group(2)
        series = prometheus.api("series", **{"match[]": selector})
        assert expected in {s.get(label) for s in series}, (name, selector, series[:3])

    # Rows per worker shows every worker.
    (per_worker,) = [p for p in dashboard["panels"] if p["title"] == "Rows per worker"]
    result = prometheus.query(_substitute(per_worker["targets"][0]["expr"]))
    assert sorted(r["metric"]["instance"] for r in result) == stack.targets

    # Accuracy by model version shows both; the comparison names the serving and the previous.
    (by_version,) = [p for p in dashboard["panels"] if p["title"] == "Accuracy by model version"]
    result = prometheus.query(_substitute(by_version["targets"][0]["expr"]))
    assert sorted(r["metric"]["ml_model_version"] for r in result) == sorted(
        (stack.serving, stack.previous)
    )
    (labels_panel,) = [
        p for p in dashboard["panels"] if p["title"] == "Labels since the rollout began"
    ]
    sides = [prometheus.query(_substitute(t["expr"])) for t in labels_panel["targets"]]
    assert [[float(r["value"][1]) for r in side] for side in sides] == [
        [stack.rows],
        [PREVIOUS_ROWS],
    ]
