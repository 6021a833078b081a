"""After a deploy, late labels of the old version count on the old version's series."""

from __future__ import annotations

import dataclasses

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from sklearn.metrics import accuracy_score

from instrumentation import ModelMonitor, MonitorConfig, SQLiteStore
from tests.unit.monitor.monitor_support import BINARY, Clock, by_attrs, metrics, predict

V1 = {"ml.model.name": "fraud-test", "ml.model.version": "v1"}
V2 = {"ml.model.name": "fraud-test", "ml.model.version": "v2"}


def test_counters_carry_the_version_of_the_prediction_they_count(
    store: SQLiteStore,
    tracer_provider: TracerProvider,
    meter_provider: object,
    metric_reader: InMemoryMetricReader,
    clock: Clock,
    config: MonitorConfig,
) -> None:
    old = ModelMonitor(BINARY, store, tracer_provider=tracer_provider, clock=clock, config=config)
    predict(old, [90.0, 10.0], ids=["a", "b"])  # v1 predicts fraud, legit
    new = ModelMonitor(
        dataclasses.replace(BINARY, version="v2"),
        store,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,  # type: ignore[arg-type]  # the fixture's MeterProvider
        clock=clock,
        config=config,
    )
    predict(new, [80.0], ids=["c"])
    clock.advance(30.0)

    new.feedback([("a", "fraud"), ("b", "fraud"), ("c", "legit"), ("a", "fraud"), ("x", "legit")])

    points = metrics(metric_reader)
    assert by_attrs(points["ml.confusion"]) == {
        frozenset({**V1, "ml.label.actual": "fraud", "ml.label.predicted": "fraud"}.items()): 1,
        frozenset({**V1, "ml.label.actual": "fraud", "ml.label.predicted": "legit"}.items()): 1,
        frozenset({**V2, "ml.label.actual": "legit", "ml.label.predicted": "fraud"}.items()): 1,
    }
    assert by_attrs(points["ml.feedback"]) == {
        frozenset({**V1, "ml.feedback.status": "matched"}.items()): 2,
        frozenset({**V1, "ml.feedback.status": "duplicate"}.items()): 1,
        frozenset({**V2, "ml.feedback.status": "matched"}.items()): 1,
        frozenset({**V2, "ml.feedback.status": "unknown"}.items()): 1,  # no prediction: serving
    }
    assert by_attrs(points["ml.label.delay"], "count") == {
        frozenset(V1.items()): 2,
        frozenset(V2.items()): 1,
    }


def test_each_version_keeps_its_own_figures_after_a_deploy(
    store: SQLiteStore, tracer_provider: TracerProvider, clock: Clock, config: MonitorConfig
) -> None:
    old = ModelMonitor(BINARY, store, tracer_provider=tracer_provider, clock=clock, config=config)
    v1 = predict(old, [90.0, 10.0, 80.0, 30.0], ids=["a", "b", "c", "d"])
    clock.advance(60.0)
    new = ModelMonitor(
        dataclasses.replace(BINARY, version="v2"),
        store,
        tracer_provider=tracer_provider,
        clock=clock,
        config=config,
    )
    v2 = predict(new, [70.0, 20.0], ids=["e", "f"])
    clock.advance(60.0)
    truth = {"a": "fraud", "b": "fraud", "c": "legit", "d": "legit", "e": "fraud", "f": "legit"}

    new.feedback(list(truth.items()))  # v1's labels arrive after v2 is serving
    snapshot = new.snapshot()

    assert list(snapshot["versions"]) == ["v2", "v1"]  # newest first
    assert snapshot["windows"] == snapshot["versions"]["v2"]["windows"]
    for version, records in (("v1", v1), ("v2", v2)):
        window = snapshot["versions"][version]["windows"]["5m"]
        predicted = [r.label for r in records]
        actual = [truth[r.prediction_id] for r in records]
        assert window["n_labels"] == len(records)
        assert window["quality"]["accuracy"]["value"] == pytest.approx(
            accuracy_score(actual, predicted), abs=1e-9
        )
    comparison = snapshot["comparison"]
    assert (comparison["version"], comparison["baseline"]) == ("v2", "v1")
    accuracy = comparison["windows"]["5m"]["accuracy"]
    assert accuracy["value"] == pytest.approx(1.0 - 0.5, abs=1e-12)  # v2 2/2 right, v1 2/4
    assert (accuracy["n"], accuracy["n_baseline"]) == (2, 4)
    assert accuracy["lower"] < accuracy["value"] < accuracy["upper"]


def test_gauges_carry_each_versions_figures_and_the_comparison(
    store: SQLiteStore, tracer_provider: TracerProvider, clock: Clock, config: MonitorConfig
) -> None:
    old = ModelMonitor(BINARY, store, tracer_provider=tracer_provider, clock=clock, config=config)
    predict(old, [90.0, 10.0], ids=["a", "b"])
    clock.advance(60.0)  # v2 is deployed later
    new = ModelMonitor(
        dataclasses.replace(BINARY, version="v2"),
        store,
        tracer_provider=tracer_provider,
        clock=clock,
        config=config,
    )
    predict(new, [70.0], ids=["c"])
    new.feedback([("a", "fraud"), ("b", "fraud"), ("c", "fraud")])

    points = new.gauge_points()

    accuracy = {
        attrs["ml.model.version"]: value
        for name, value, attrs in points
        if name == "ml.quality.accuracy" and attrs["ml.window"] == "5m"
    }
    assert accuracy == {"v1": 0.5, "v2": 1.0}
    (compare,) = [
        (value, attrs)
        for name, value, attrs in points
        if name == "ml.compare.accuracy" and attrs["ml.window"] == "5m"
    ]
    assert compare == (
        0.5,
        {"ml.model.version": "v2", "ml.compare.baseline_version": "v1", "ml.window": "5m"},
    )


def test_the_rollout_comparison_counts_the_baseline_since_the_new_version_was_recorded(
    store: SQLiteStore, tracer_provider: TracerProvider, clock: Clock, config: MonitorConfig
) -> None:
    old = ModelMonitor(BINARY, store, tracer_provider=tracer_provider, clock=clock, config=config)
    predict(old, [90.0, 10.0, 80.0, 30.0], ids=["a", "b", "c", "d"])  # fraud legit fraud legit
    old.feedback([("a", "fraud"), ("b", "fraud")])  # before v2: one right, one wrong
    clock.advance(60.0)
    new = ModelMonitor(
        dataclasses.replace(BINARY, version="v2"),
        store,
        tracer_provider=tracer_provider,
        clock=clock,
        config=config,
    )
    predict(new, [70.0, 20.0, 60.0], ids=["e", "f", "g"])
    new.feedback([("c", "fraud"), ("d", "legit"), ("e", "fraud"), ("f", "fraud"), ("g", "fraud")])

    comparison = new.snapshot()["comparison"]
    rollout = comparison["rollout"]
    accuracy = rollout["figures"]["accuracy"]

    assert set(comparison) == {"version", "baseline", "windows", "rollout"}
    assert rollout["alpha"] == 0.05 and rollout["since"] is not None
    # v2: 2 of 3 right; v1 since v2 was recorded: c and d, both right (a and b are before).
    assert (accuracy["n"], accuracy["n_baseline"]) == (3, 2)
    assert accuracy["value"] == pytest.approx(2 / 3 - 1.0, abs=1e-12)
    assert -1.0 <= accuracy["lower"] < accuracy["value"] < accuracy["upper"] <= 1.0
    window = comparison["windows"]["5m"]["accuracy"]  # the window holds all four of v1's
    assert (window["n"], window["n_baseline"]) == (3, 4)
    assert set(rollout["figures"]) == {"accuracy", "recall", "precision", "selection_rate"}
    points = {
        (name, attrs.get("ml.class")): value
        for name, value, attrs in new.gauge_points()
        if name.startswith("ml.compare.rollout.accuracy")
    }
    assert points == {
        ("ml.compare.rollout.accuracy", None): accuracy["value"],
        ("ml.compare.rollout.accuracy.lower", None): accuracy["lower"],
        ("ml.compare.rollout.accuracy.upper", None): accuracy["upper"],
        ("ml.compare.rollout.accuracy.samples", None): 3.0,
        ("ml.compare.rollout.accuracy.baseline.samples", None): 2.0,
    }
