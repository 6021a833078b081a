"""The Grafana dashboard and its provisioning hang together (Grafana itself cannot run here).

Every panel's PromQL is evaluated against a real Prometheus in
tests/e2e/test_prometheus.py; these check the structure Grafana needs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "deploy" / "grafana"
DASHBOARD_FILE = GRAFANA / "dashboards" / "model-monitor.json"
DASHBOARD: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
PANELS = [p for p in DASHBOARD["panels"] if p["type"] != "row"]
VARIABLES = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__range"}


def exprs() -> list[str]:
    return [t["expr"] for p in PANELS for t in p["targets"]]


def test_identity_and_variables() -> None:
    assert DASHBOARD["uid"] == "model-monitor"
    assert DASHBOARD["title"] == "Model monitor"
    assert isinstance(DASHBOARD["schemaVersion"], int)
    assert VARIABLES["datasource"]["type"] == "datasource"
    assert VARIABLES["datasource"]["query"] == "prometheus"
    for name in ("model", "window"):
        assert VARIABLES[name]["type"] == "query"
        assert VARIABLES[name]["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert VARIABLES[name]["definition"].startswith("label_values(")
    assert VARIABLES["window"]["current"]["value"] == "1h"  # the window the alert rules read


def test_panels_have_unique_ids_and_fit_the_grid_without_overlapping() -> None:
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in DASHBOARD["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        covered = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not covered & cells, f"{panel['title']} overlaps another panel"
        cells |= covered


@pytest.mark.parametrize("panel", PANELS, ids=[p["title"] for p in PANELS])
def test_every_panel_queries_the_chosen_prometheus(panel: dict[str, Any]) -> None:
    assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    assert panel["targets"], "a panel without a query"
    ref_ids = [t["refId"] for t in panel["targets"]]
    assert len(ref_ids) == len(set(ref_ids))
    for target in panel["targets"]:
        assert target["datasource"] == panel["datasource"]
        assert target["expr"].strip()
        used = set(re.findall(r"\$(\w+)", target["expr"]))
        assert used <= set(VARIABLES) | GRAFANA_BUILTINS, used
        # Model-scoped: a Prometheus that scrapes several models shows one at a time.
        assert 'ml_model_name="$model"' in target["expr"]
        # Window figures exist per model version: never max() two versions into one line.
        if re.search(r"\bml_(quality|estimated|fairness|drift)_", target["expr"]):
            assert target["expr"].startswith("max by (ml_model_version"), target["expr"]


@pytest.mark.parametrize(
    ("topic", "pattern"),
    [
        ("latency p50/p99", r"histogram_quantile\(0\.99, .*ml_prediction_duration_seconds_bucket"),
        ("throughput", r"rate\(ml_predictions_total\{"),
        ("errors", r"rate\(ml_prediction_errors_total\{"),
        ("accuracy", r"ml_quality_accuracy\{"),
        ("accuracy interval", r"ml_quality_accuracy_lower\{"),
        ("F1 per class", r"max by \(ml_model_version, ml_class\) \(ml_quality_f1\{"),
        (
            "fairness by attribute",
            r"by \(ml_model_version, ml_sensitive_attribute.*ml_fairness_equalized_odds_diff",
        ),
        ("drift by feature", r"max by \(ml_model_version, ml_feature\) \(ml_drift_psi\{"),
        ("feedback by status", r"by \(ml_feedback_status\) \(rate\(ml_feedback_total\{"),
        ("label delay", r"ml_label_delay_seconds_bucket\{"),
        ("accuracy per model version", r"max by \(ml_model_version\) \(ml_quality_accuracy\{"),
        ("version difference", r"ml_compare_baseline_version\) \(ml_compare_accuracy\{"),
        ("its interval", r"ml_compare_accuracy_upper\{"),
        ("anytime interval since the rollout", r"ml_compare_rollout_accuracy_upper\{"),
        ("labels of the newer version", r"ml_compare_rollout_accuracy_samples\{"),
        ("labels of the previous version", r"ml_compare_rollout_accuracy_baseline_samples\{"),
        ("accuracy CUSUM", r"ml_alert_accuracy_cusum\{"),
    ],
)
def test_the_dashboard_covers(topic: str, pattern: str) -> None:
    assert any(re.search(pattern, e) for e in exprs()), topic


def test_the_model_versions_row_holds_the_version_panels() -> None:
    rows = [p for p in DASHBOARD["panels"] if p["type"] == "row"]
    (row,) = [r for r in rows if r["title"].startswith("Model versions")]
    below = [r["gridPos"]["y"] for r in rows if r["gridPos"]["y"] > row["gridPos"]["y"]]
    end = min(below, default=10**6)
    inside = [p for p in PANELS if row["gridPos"]["y"] < p["gridPos"]["y"] < end]
    versioned = [p for p in inside if any("ml_model_version" in t["expr"] for t in p["targets"])]
    assert len(versioned) == len(inside) >= 3, [p["title"] for p in inside]
    compared = " ".join(t["expr"] for p in inside for t in p["targets"])
    for metric in (
        "ml_quality_accuracy",
        "ml_compare_accuracy",
        "ml_compare_accuracy_lower",
        "ml_compare_accuracy_upper",
        "ml_compare_rollout_accuracy",
        "ml_compare_rollout_accuracy_lower",
        "ml_compare_rollout_accuracy_upper",
        "ml_compare_rollout_accuracy_samples",
        "ml_compare_rollout_accuracy_baseline_samples",
        "ml_alert_accuracy_cusum",
    ):
        assert f"({metric}{{" in compared, metric


def test_provisioning_points_at_the_datasource_the_dashboard_uses() -> None:
    (source,) = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"]
    assert source["type"] == "prometheus"
    assert source["uid"] == "prometheus"
    (provider,) = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "model-monitor.yml").read_text()
    )["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].startswith("/")
