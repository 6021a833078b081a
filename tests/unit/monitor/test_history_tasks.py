"""History of a regressor and of a multiclass model: the last point is ``GET /monitor``'s window."""

from __future__ import annotations

import numpy as np
import pytest
from monitor_support import Clock

from instrumentation import (
    FeatureSpec,
    ModelMonitor,
    ModelSpec,
    MonitorConfig,
    PredictionInput,
    SQLiteStore,
    Window,
)

CONFIG = MonitorConfig(windows=(Window("5m", 300.0),), min_group_samples=5)


def _same(point: dict[str, object], figure: dict[str, object]) -> None:
    assert point["n"] == figure["n"]
    for key in ("value", "lower", "upper"):
        if figure[key] is None:
            assert point[key] is None
        else:
            assert point[key] == pytest.approx(figure[key], rel=0, abs=1e-9)


def test_a_regressors_errors_and_group_mae(store: SQLiteStore, clock: Clock) -> None:
    spec = ModelSpec(
        "price", "v1", "regression", (FeatureSpec("size", "number"),), sensitive_attributes=("r",)
    )
    monitor = ModelMonitor(spec, store, config=CONFIG, clock=clock)
    rng = np.random.default_rng(4)
    for minute in range(4):
        clock.now += 60
        groups = rng.choice(["a", "b", "c"], 20)
        inputs = [PredictionInput({"size": 1.0}, None, {"r": g}) for g in groups]
        with monitor.predict(inputs) as rec:
            records = rec.set_outputs(values=rng.normal(10.0, 2.0, 20).tolist())
        truth = rng.normal(10.0, 2.0, 20)
        monitor.feedback([(r.prediction_id, float(y)) for r, y in zip(records, truth, strict=True)])
        if minute == 1:
            clock.now += 30
            window = monitor.snapshot()["windows"]["5m"]
            ends = int(clock.now) // 60 * 60 + 60  # the end of the bucket it was read in

    history = monitor.history(window=300, step=60, end=clock.now)
    series = history["versions"]["v1"]
    at = [p["t"] for p in series["labels"]].index(ends)
    assert at < len(series["labels"]) - 1  # a past point, not the last
    for name in ("mae", "rmse", "mape", "r2"):
        _same(series["quality"][name][at], window["quality"][name])
    region = series["fairness"]["r"]
    for group, figures in window["fairness"]["r"]["groups"].items():
        _same(region["groups"][group]["mae"][at], figures["mae"])
    _same(
        region["disparities"]["mae_difference"][at],
        window["fairness"]["r"]["disparities"]["mae_difference"],
    )


def test_a_multiclass_models_recall_and_precision(store: SQLiteStore, clock: Clock) -> None:
    classes = ("a", "b", "c")
    spec = ModelSpec("iris", "v1", "multiclass", (FeatureSpec("x", "number"),), classes)
    monitor = ModelMonitor(spec, store, config=CONFIG, clock=clock)
    rng = np.random.default_rng(5)
    scores = rng.dirichlet([1, 1, 1], 30)
    with monitor.predict([PredictionInput({"x": 1.0}) for _ in scores]) as rec:
        records = rec.set_outputs(
            labels=[classes[int(np.argmax(s))] for s in scores], scores=scores.tolist()
        )
    monitor.feedback([(r.prediction_id, str(rng.choice(classes))) for r in records])
    window = monitor.snapshot()["windows"]["5m"]

    series = monitor.history(window=300, step=60)["versions"]["v1"]

    _same(series["quality"]["accuracy"][-1], window["quality"]["accuracy"])
    _same(series["estimated"]["accuracy"][-1], window["estimated"]["accuracy"])
    for name in ("recall", "precision"):
        for cls in classes:
            _same(series["quality"][name][cls][-1], window["quality"][name]["per_class"][cls])
    assert series["fairness"] == {}  # multiclass fairness: per class, in GET /monitor only
