"""Window gauges: one lease holder exports them, one snapshot per collection."""

from __future__ import annotations

import sqlite3
import types
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.metrics import NoOpMeter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

import instrumentation.telemetry.window_gauges as window_gauges_module
from instrumentation import ModelMonitor, SQLiteStore
from instrumentation.telemetry.gauge_points import gauge_points
from instrumentation.telemetry.gauge_table import QUALITY_ACCURACY
from instrumentation.telemetry.window_gauges import COMPUTE_FAILED_LOG, WindowGauges
from tests.unit.monitor.monitor_support import (
    BINARY,
    MODEL_ATTRS,
    Clock,
    attr_key,
    by_attrs,
    metrics,
    predict,
)

# --- window gauges and the lease ----------------------------------------------------------------


def test_only_the_lease_holder_exports_window_gauges_equal_to_the_snapshot(
    store: SQLiteStore,
    tracer_provider: TracerProvider,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monotonic = [1000.0]
    monkeypatch.setattr(
        window_gauges_module, "time", types.SimpleNamespace(monotonic=lambda: monotonic[0])
    )
    readers = {"worker-a": InMemoryMetricReader(), "worker-b": InMemoryMetricReader()}
    providers = {w: MeterProvider(metric_readers=[r]) for w, r in readers.items()}
    a, b = (
        ModelMonitor(
            BINARY,
            store,
            tracer_provider=tracer_provider,
            meter_provider=providers[worker],
            instance_id=worker,
            clock=clock,
            gauge_lease_seconds=30.0,
        )
        for worker in ("worker-a", "worker-b")
    )
    records = predict(a, [90.0, 20.0, 80.0, 10.0, 60.0])
    # A label reaching the worker that never saw the prediction: the store joins them.
    b.feedback(
        [
            (r.prediction_id, y)
            for r, y in zip(records, ["fraud", "fraud", "legit", "legit", "fraud"], strict=True)
        ]
    )

    points_a = metrics(readers["worker-a"])
    points_b = metrics(readers["worker-b"])

    assert points_b.get("ml.quality.accuracy", []) == []
    snapshot = a.snapshot()["windows"]
    expected = {name: snapshot[name]["quality"]["accuracy"] for name in ("5m", "1h", "24h")}
    assert expected["5m"]["value"] == 3 / 5
    for suffix, field in (
        ("", "value"),
        (".lower", "lower"),
        (".upper", "upper"),
        (".samples", "n"),
    ):
        assert by_attrs(points_a["ml.quality.accuracy" + suffix]) == {
            attr_key(**MODEL_ATTRS, **{"ml.window": w}): expected[w][field] for w in expected
        }
    macro_f1 = by_attrs(points_a["ml.quality.f1"])
    assert (
        macro_f1[attr_key(**MODEL_ATTRS, **{"ml.window": "1h", "ml.average": "macro"})]
        == (snapshot["1h"]["quality"]["f1"]["macro"]["value"])
    )
    assert (
        macro_f1[attr_key(**MODEL_ATTRS, **{"ml.window": "1h", "ml.class": "fraud"})]
        == (snapshot["1h"]["quality"]["f1"]["per_class"]["fraud"]["value"])
    )

    # Worker A goes quiet: once its lease lapses, worker B takes over the gauges.
    clock.advance(31)
    monotonic[0] += 2
    points_b = metrics(readers["worker-b"])
    assert len(points_b["ml.quality.accuracy"]) == 3
    monotonic[0] += 2
    assert metrics(readers["worker-a"]).get("ml.quality.accuracy", []) == []
    for provider in providers.values():
        provider.shutdown()


def test_each_collection_reads_one_gauge_snapshot_even_when_computing_it_is_slow_or_fails(
    monitor: ModelMonitor, store: SQLiteStore, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monotonic = [1000.0]
    monkeypatch.setattr(
        window_gauges_module, "time", types.SimpleNamespace(monotonic=lambda: monotonic[0])
    )
    records = predict(monitor, [90.0, 20.0, 80.0, 10.0, 60.0] * 30)
    monitor.feedback([(r.prediction_id, "fraud") for r in records])
    calls: list[str] = []

    def slow_then_failing() -> dict[str, Any]:
        calls.append("computed")
        monotonic[0] += 5.0  # a starved CPU: the computation outlasts the 1 s reuse period
        if len(calls) == 2:
            raise sqlite3.OperationalError("database is locked")
        return monitor.window_reports()

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    WindowGauges(
        provider.get_meter("test"),
        store,
        lease="gauges:fraud-test",
        holder="worker-a",
        points=lambda: gauge_points(slow_then_failing()),
        attributes=MODEL_ATTRS,
        clock=clock,
        lease_seconds=30.0,
    )

    first = metrics(reader)
    assert calls == ["computed"]  # one computation served every gauge of the collection
    # Gauges from both ends of the table are there.
    assert {"ml.estimated.accuracy", "ml.quality.recall.upper"} <= set(first)

    # A failed computation drops every window gauge of that collection, not some of them.
    monotonic[0] += 1.0  # the next scrape
    second = metrics(reader)
    assert len(calls) == 2
    assert not [name for name in second if name.startswith(("ml.quality.", "ml.estimated."))]

    monotonic[0] += 1.0
    assert set(metrics(reader)) == set(first)
    provider.shutdown()


# --- one snapshot per collection, whatever order the callbacks run in ---------------------------


class CountingReports:
    """Window reports whose accuracy is the number of computations so far (1, 2, ...)."""

    def __init__(self) -> None:
        self.computed = 0

    def __call__(self) -> dict[str, Any]:
        self.computed += 1
        k = self.computed
        accuracy = {"value": k / 10, "n": k, "lower": k / 100, "upper": k / 1000}
        return {"5m": {"quality": {"accuracy": accuracy}}}


def _gauges(
    store: SQLiteStore,
    reports: Callable[[], dict[str, Any]],
    clock: Clock,
    holder: str = "worker-a",
) -> WindowGauges:
    return WindowGauges(
        NoOpMeter("test"),
        store,
        lease="gauges:fraud-test",
        holder=holder,
        points=lambda: gauge_points(reports()),
        attributes=MODEL_ATTRS,
        clock=clock,
        lease_seconds=30.0,
        gauges=QUALITY_ACCURACY.gauges,
    )


def test_any_callback_order_gets_one_computation_per_collection(
    store: SQLiteStore, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monotonic = [1000.0]
    monkeypatch.setattr(
        window_gauges_module, "time", types.SimpleNamespace(monotonic=lambda: monotonic[0])
    )
    reports = CountingReports()
    gauges = _gauges(store, reports, clock)
    names = [g.name for g in QUALITY_ACCURACY.gauges]
    expected = {
        "ml.quality.accuracy": 10,  # k / 10 → k, scaled back to the computation count
        "ml.quality.accuracy.lower": 100,
        "ml.quality.accuracy.upper": 1000,
        "ml.quality.accuracy.samples": 1,
    }
    orders = [names, names[::-1], [names[2], names[0], names[3], names[1]]]

    for collection, order in enumerate(orders, start=1):
        monotonic[0] += 2.0
        seen = {}
        for name in order:
            (observation,) = gauges.observe(name)
            assert dict(observation.attributes or {}) == {**MODEL_ATTRS, "ml.window": "5m"}
            seen[name] = round(observation.value * expected[name])
        # Every gauge of the collection read the same computation, the collection's own.
        assert seen == dict.fromkeys(order, collection)
        assert reports.computed == collection

    # A second reader collecting within REUSE_SECONDS reuses the snapshot.
    monotonic[0] += 0.5
    assert [gauges.observe(n)[0].value for n in names[::-1]] == [3.0, 0.003, 0.03, 0.3]
    assert reports.computed == 3


def test_a_process_without_the_lease_observes_nothing_and_computes_nothing(
    store: SQLiteStore, clock: Clock
) -> None:
    assert store.try_lease("gauges:fraud-test", "worker-a", now=clock(), duration=30.0)
    reports = CountingReports()
    gauges = _gauges(store, reports, clock, holder="worker-b")

    assert [gauges.observe(g.name) for g in QUALITY_ACCURACY.gauges] == [[], [], [], []]
    assert reports.computed == 0


def test_a_failed_computation_is_logged_never_raised(
    store: SQLiteStore, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    def failing() -> dict[str, Any]:
        raise sqlite3.OperationalError("database is locked")

    gauges = _gauges(store, failing, clock)

    assert gauges.observe("ml.quality.accuracy") == []
    (record,) = [r for r in caplog.records if r.name == "instrumentation.telemetry.window_gauges"]
    assert record.getMessage() == COMPUTE_FAILED_LOG
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], sqlite3.OperationalError)
