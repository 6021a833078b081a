"""Windows, the snapshot and housekeeping (eviction, compaction, its lease)."""

from __future__ import annotations

import pytest
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from instrumentation import (
    ModelMonitor,
    MonitorConfig,
    SQLiteStore,
    Window,
)
from tests.unit.monitor.monitor_support import (
    BINARY,
    MODEL_ATTRS,
    T0,
    Clock,
    attr_key,
    by_attrs,
    metrics,
    predict,
)

# --- snapshot and housekeeping ------------------------------------------------------------------


def test_snapshot_counts_per_window_and_windows_only_sum_their_buckets(
    monitor: ModelMonitor, clock: Clock
) -> None:
    records = predict(monitor, [90.0, 20.0, 70.0])
    clock.advance(60)
    monitor.feedback([(records[0].prediction_id, "fraud"), (records[1].prediction_id, "fraud")])

    snapshot = monitor.snapshot()

    assert set(snapshot) == {
        "model",
        "stored_predictions",
        "spooled_requests",
        "windows",
        "versions",
        "alerts",
    }
    # Two labels, one right: the accuracy CUSUM (0.80 against 0.75, h 9.5) has barely moved.
    cusum = snapshot["alerts"]["v1"]["accuracy_cusum"]
    assert (cusum["n"], cusum["h"], cusum["threshold"], cusum["worse"]) == (2, 9.5, 0.8, 0.75)
    assert cusum["value"] == pytest.approx(cusum["statistic"] / 9.5)
    # One version serving and no other: its windows are the serving windows, nothing to compare.
    assert snapshot["versions"] == {snapshot["model"]["version"]: {"windows": snapshot["windows"]}}
    assert snapshot["spooled_requests"] == 0
    assert snapshot["model"] == {"name": "fraud-test", "version": "v1", "task": "binary"}
    assert snapshot["stored_predictions"] == 3
    assert list(snapshot["windows"]) == ["5m", "1h", "24h"]
    for window in snapshot["windows"].values():
        assert {"n_predictions", "n_labels", "quality"} <= set(window)
        assert (window["n_predictions"], window["n_labels"]) == (3, 2)
        assert window["quality"]["accuracy"] == {
            "value": 0.5,
            "n": 2,
            "lower": pytest.approx(0.094531205734),
            "upper": pytest.approx(0.905468794266),
        }
        assert window["quality"]["confusion_matrix"] == {
            "classes": ["legit", "fraud"],
            "counts": [[0, 0], [1, 1]],
        }

    clock.advance(6 * 60)  # past 5 minutes after both buckets
    later = monitor.snapshot()["windows"]

    assert (later["5m"]["n_predictions"], later["5m"]["n_labels"]) == (0, 0)
    assert later["5m"]["quality"]["accuracy"] == {
        "value": None,
        "n": 0,
        "lower": None,
        "upper": None,
    }
    assert (later["1h"]["n_predictions"], later["1h"]["n_labels"]) == (3, 2)
    assert later["1h"]["quality"]["accuracy"]["value"] == 0.5
    assert (later["24h"]["n_predictions"], later["24h"]["n_labels"]) == (3, 2)


@pytest.mark.parametrize(
    ("bucket_seconds", "window"),
    [(60, Window("5m", 300.0)), (10, Window("30s", 30.0))],
)
def test_a_window_never_counts_data_older_than_itself(
    store: SQLiteStore,
    tracer_provider: TracerProvider,
    clock: Clock,
    bucket_seconds: int,
    window: Window,
) -> None:
    config = MonitorConfig(windows=(window,), bucket_seconds=bucket_seconds)
    monitor = ModelMonitor(
        BINARY, store, tracer_provider=tracer_provider, config=config, clock=clock
    )
    predict(monitor, [90.0])  # at T0, the start of a bucket

    def counted_at(now: float) -> int:
        clock.now = now
        return int(monitor.snapshot()["windows"][window.name]["n_predictions"])

    assert counted_at(T0 + window.seconds - 1) == 1
    assert counted_at(T0 + window.seconds) == 0


def test_evict_expired_applies_the_row_cap_then_retention_and_counts_them(
    store: SQLiteStore,
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    metric_reader: InMemoryMetricReader,
    clock: Clock,
) -> None:
    monitor = ModelMonitor(
        BINARY,
        store,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        config=MonitorConfig(prediction_ttl=100.0, max_stored_predictions=2),
        clock=clock,
    )
    ids = []
    for amount in (1.0, 2.0, 3.0, 4.0):  # created at T0, T0+50, T0+100, T0+150
        ids.append(predict(monitor, [amount])[0].prediction_id)
        clock.advance(50)
    clock.now = T0 + 150

    assert monitor.evict_expired() == 2  # over the cap of 2: the two oldest go
    assert set(store.get_predictions("fraud-test", ids)) == {ids[2], ids[3]}
    clock.now = T0 + 300  # ids[2] is exactly 2 x TTL old: kept
    assert monitor.evict_expired() == 0
    clock.now = T0 + 300.5
    assert monitor.evict_expired() == 1
    assert set(store.get_predictions("fraud-test", ids)) == {ids[3]}
    assert by_attrs(metrics(metric_reader)["ml.predictions.evicted"]) == {
        attr_key(**MODEL_ATTRS): 3
    }


def test_housekeeping_runs_in_one_process_at_a_time_and_passes_on_when_it_goes_quiet(
    store: SQLiteStore, tracer_provider: TracerProvider, clock: Clock
) -> None:
    a, b = (
        ModelMonitor(
            BINARY,
            store,
            tracer_provider=tracer_provider,
            meter_provider=NoOpMeterProvider(),
            config=MonitorConfig(max_stored_predictions=2),
            instance_id=worker,
            clock=clock,
        )
        for worker in ("worker-a", "worker-b")
    )
    ids = [r.prediction_id for r in predict(a, [1.0, 2.0, 3.0, 4.0, 5.0])]

    # Both read 5 rows against a cap of 2; only the lease holder evicts, so 3 go, not 6.
    assert a.housekeeping(lease_seconds=150.0) is True
    assert b.housekeeping(lease_seconds=150.0) is False
    assert len(store.get_predictions("fraud-test", ids)) == 2

    clock.advance(1)
    ids += [r.prediction_id for r in predict(b, [6.0])]
    clock.advance(99)
    assert b.housekeeping(lease_seconds=150.0) is False  # a's lease still runs
    assert len(store.get_predictions("fraud-test", ids)) == 3
    clock.advance(51)  # a missed its rounds: b takes over
    assert b.housekeeping(lease_seconds=150.0) is True
    kept = store.get_predictions("fraud-test", ids)
    assert len(kept) == 2 and ids[-1] in kept  # the oldest went
    assert a.housekeeping(lease_seconds=150.0) is False
