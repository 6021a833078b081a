"""After a deploy, late labels of the old version count on the old version's series."""

from __future__ import annotations

import dataclasses

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

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
