"""``GET /monitor`` in process: its shape, and quality equal to scikit-learn for every task."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from api_helpers import (
    CLASSES,
    MODEL,
    REPO,
    instances_of,
    predict_ok,
    status_counts,
    stored_model,
)
from service_roundtrip import roundtrip, service_env
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    confusion_matrix,
    log_loss,
    mean_absolute_error,
    mean_absolute_percentage_error,
    precision_recall_fscore_support,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)
from starlette.testclient import TestClient


def test_monitor_snapshot_shape(client: TestClient, trained_home: Path) -> None:
    empty = client.get("/monitor")
    assert empty.status_code == 200
    body = empty.json()

    assert set(body) == {
        "model",
        "stored_predictions",
        "spooled_requests",
        "windows",
        "versions",
        "alerts",
    }
    # One version serving and no other: its windows are the serving windows, nothing to compare.
    assert body["versions"] == {body["model"]["version"]: {"windows": body["windows"]}}
    assert body["spooled_requests"] == 0
    assert body["model"] == {
        "name": MODEL,
        "version": stored_model(trained_home, MODEL)[1].version,
        "task": "binary",
    }
    assert body["stored_predictions"] == 0  # every test starts on its own store
    assert list(body["windows"]) == ["5m", "1h", "24h"]
    for window in body["windows"].values():
        assert {"n_predictions", "n_labels", "quality"} <= set(window)
        assert (window["n_predictions"], window["n_labels"]) == (0, 0)
        assert window["quality"]["accuracy"] == {
            "value": None,
            "n": 0,
            "lower": None,
            "upper": None,
        }

    predict_ok(client, instances_of(3))
    after = client.get("/monitor").json()
    assert after["stored_predictions"] == 3
    assert [w["n_predictions"] for w in after["windows"].values()] == [3, 3, 3]


def _close(actual: float | None, expected: float) -> bool:
    """Equal to 1e-9, where sklearn's NaN (undefined) must be reported as None."""
    if math.isnan(expected):
        return actual is None
    return actual is not None and abs(actual - expected) <= 1e-9


def _assert_classifier_quality(out: dict[str, Any], classes: list[str], task: str) -> None:
    y = out["labels"]
    predictions = out["predictions"]
    y_pred = [p["label"] for p in predictions]
    proba = np.array([[p["scores"][c] for c in classes] for p in predictions])
    n = len(y)
    assert out["feedback_counts"] == status_counts(matched=n)
    window = out["snapshot"]["windows"]["5m"]
    assert (window["n_predictions"], window["n_labels"]) == (n, n)
    quality = window["quality"]

    assert _close(quality["accuracy"]["value"], accuracy_score(y, y_pred))
    assert quality["accuracy"]["n"] == n
    assert quality["confusion_matrix"] == {
        "classes": classes,
        "counts": confusion_matrix(y, y_pred, labels=classes).tolist(),
    }
    per_class = precision_recall_fscore_support(y, y_pred, labels=classes, zero_division=np.nan)
    for index, key in enumerate(("precision", "recall", "f1")):
        for cls, expected in zip(classes, per_class[index], strict=True):
            assert _close(quality[key]["per_class"][cls]["value"], expected), (key, cls)
        for average in ("macro", "micro", "weighted"):
            expected = precision_recall_fscore_support(
                y, y_pred, labels=classes, average=average, zero_division=np.nan
            )[index]
            assert _close(quality[key][average]["value"], expected), (key, average)

    ordered = sorted(classes)  # sklearn's column order for string labels
    proba_sorted = proba[:, [classes.index(c) for c in ordered]]
    assert _close(quality["log_loss"]["value"], log_loss(y, proba_sorted, labels=ordered))
    if task == "binary":
        brier = brier_score_loss(y, proba[:, 1], pos_label=classes[1])
        auc = roc_auc_score([t == classes[1] for t in y], proba[:, 1])
    else:
        brier = brier_score_loss(y, proba_sorted, labels=ordered)
        auc = roc_auc_score(y, proba_sorted, multi_class="ovr", labels=ordered)
    assert _close(quality["brier_score"]["value"], brier)
    roc = quality["roc_auc"]
    assert roc["n"] == n
    assert abs(roc["value"] - auc) <= roc["max_error"] + 1e-12
    assert roc["max_error"] < 0.01  # the bound is tight enough to mean something


def test_binary_quality_through_the_api_equals_sklearn(client: TestClient) -> None:
    out = roundtrip(client, model=MODEL, n=600, seed=2024)

    assert {p["label"] for p in out["predictions"]} == set(CLASSES)  # both classes predicted
    _assert_classifier_quality(out, CLASSES, "binary")


def _roundtrip_in_child(trained_home: Path, tmp_path: Path, model: str, n: int) -> dict[str, Any]:
    """A child process imports ``service.service`` serving ``model`` (chosen at import)."""
    result = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("service_roundtrip.py")), model, str(n), "7"],
        cwd=REPO,
        env={**service_env(trained_home, tmp_path, model=model), "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def test_multiclass_quality_through_the_api_equals_sklearn(
    trained_home: Path, tmp_path: Path
) -> None:
    out = _roundtrip_in_child(trained_home, tmp_path, "iris-classifier", 300)

    assert out["snapshot"]["model"]["task"] == "multiclass"
    _assert_classifier_quality(out, ["setosa", "versicolor", "virginica"], "multiclass")


def test_regression_quality_through_the_api_equals_sklearn(
    trained_home: Path, tmp_path: Path
) -> None:
    out = _roundtrip_in_child(trained_home, tmp_path, "diabetes-regressor", 300)

    y = out["labels"]
    predictions = out["predictions"]
    assert all(p["label"] is None and p["scores"] is None for p in predictions)
    values = [p["value"] for p in predictions]
    assert out["feedback_counts"] == status_counts(matched=300)
    window = out["snapshot"]["windows"]["5m"]
    assert (window["n_predictions"], window["n_labels"]) == (300, 300)
    quality = window["quality"]
    for key, reference in (
        ("mae", mean_absolute_error),
        ("rmse", root_mean_squared_error),
        ("mape", mean_absolute_percentage_error),
        ("r2", r2_score),
    ):
        assert quality[key]["value"] == pytest.approx(reference(y, values), rel=1e-9), key
        assert quality[key]["n"] == 300


def test_any_two_versions_can_be_compared(client: TestClient) -> None:
    predict_ok(client, instances_of(3))
    version = client.get("/monitor").json()["model"]["version"]

    same = client.get("/monitor", params={"compare": f"{version},{version}"})
    bad = client.get("/monitor", params={"compare": version})

    assert same.status_code == 200, same.text
    comparison = same.json()["comparison"]
    assert (comparison["version"], comparison["baseline"]) == (version, version)
    assert set(comparison["windows"]["5m"]) == {"accuracy", "recall", "precision", "selection_rate"}
    assert bad.status_code == 400
    assert bad.json() == {"error": "compare: expected two model versions, 'version,baseline'"}
