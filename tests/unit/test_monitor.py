"""ModelMonitor against real SDK providers, an in-memory exporter/reader and a real SQLite store.

Names are spelled out as string literals on purpose: they are the public contract that
dashboards and alert rules depend on, so renaming a constant must fail these tests.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import types
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from opentelemetry import trace
from opentelemetry.metrics import NoOpMeter, NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags
from sklearn.metrics import (
    mean_absolute_error,
    mean_absolute_percentage_error,
    r2_score,
    root_mean_squared_error,
)

import instrumentation.instruments as instruments_module
import instrumentation.monitor as monitor_module
from instrumentation import (
    DuplicatePredictionId,
    FeatureSpec,
    ModelMonitor,
    ModelSpec,
    MonitorConfig,
    PredictionInput,
    PredictionRecord,
    SQLiteStore,
    Window,
)
from instrumentation.instruments import LATENCY_BUCKETS_S
from instrumentation.metrics.reference import build_reference_profile

T0 = 1_700_000_040.0
"""A bucket-aligned start time (a multiple of 60 s)."""

BINARY = ModelSpec(
    "fraud-test",
    "v1",
    "binary",
    (FeatureSpec("amount", "number"), FeatureSpec("channel", "category", ("web", "pos"))),
    ("legit", "fraud"),
    sensitive_attributes=("region",),
)
REGRESSION = ModelSpec("price-test", "v7", "regression", (FeatureSpec("size", "number"),))
MODEL_ATTRS = {"ml.model.name": "fraud-test", "ml.model.version": "v1"}
REGRESSION_ATTRS = {"ml.model.name": "price-test", "ml.model.version": "v7"}
NO_STATUSES = {s: 0 for s in ("matched", "duplicate", "conflict", "unknown", "invalid", "expired")}


class Clock:
    """An injected wall clock the test moves by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# --- fixtures: every test gets its own providers, reader, exporter and store ----------------


@pytest.fixture
def span_exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer_provider(span_exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    yield provider
    provider.shutdown()


@pytest.fixture
def metric_reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def meter_provider(metric_reader: InMemoryMetricReader) -> Iterator[MeterProvider]:
    provider = MeterProvider(metric_readers=[metric_reader])
    yield provider
    provider.shutdown()


@pytest.fixture
def store(tmp_path: Any) -> Iterator[SQLiteStore]:
    sqlite = SQLiteStore(tmp_path / "store.db")
    yield sqlite
    sqlite.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def config() -> MonitorConfig:
    return MonitorConfig(prediction_ttl=3600.0)


@pytest.fixture
def monitor(
    store: SQLiteStore,
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    clock: Clock,
    config: MonitorConfig,
) -> ModelMonitor:
    return ModelMonitor(
        BINARY,
        store,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        config=config,
        instance_id="worker-a",
        clock=clock,
    )


@pytest.fixture
def regression_monitor(
    store: SQLiteStore,
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    clock: Clock,
    config: MonitorConfig,
) -> ModelMonitor:
    return ModelMonitor(
        REGRESSION,
        store,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        config=config,
        instance_id="worker-a",
        clock=clock,
    )


@pytest.fixture
def perf_counter(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Patch the monitor's latency clock: each call pops the next tick from the list."""
    ticks: list[float] = []
    fake = types.SimpleNamespace(perf_counter=lambda: ticks.pop(0))
    monkeypatch.setattr(monitor_module, "time", fake)
    return ticks


# --- helpers ----------------------------------------------------------------------------------


def _inputs(
    amounts: Sequence[float],
    *,
    ids: Sequence[str | None] | None = None,
    regions: Sequence[str | None] | None = None,
) -> list[PredictionInput]:
    return [
        PredictionInput(
            {"amount": amount, "channel": "web"},
            id=ids[i] if ids else None,
            groups={"region": regions[i]} if regions and regions[i] is not None else {},
        )
        for i, amount in enumerate(amounts)
    ]


def _predict(
    monitor: ModelMonitor, amounts: Sequence[float], **kwargs: Any
) -> list[PredictionRecord]:
    """A stand-in binary model: P(fraud) = amount / 100."""
    with monitor.predict(_inputs(amounts, **kwargs)) as rec:
        p = [min(a / 100.0, 1.0) for a in amounts]
        labels = ["fraud" if q >= 0.5 else "legit" for q in p]
        return rec.set_outputs(labels=labels, scores=[[1.0 - q, q] for q in p])


def _regress(monitor: ModelMonitor, values: Sequence[float]) -> list[PredictionRecord]:
    inputs = [PredictionInput({"size": float(i)}) for i in range(len(values))]
    with monitor.predict(inputs) as rec:
        return rec.set_outputs(values=values)


def _metrics(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    """Every data point of one collection, by metric name."""
    out: dict[str, list[Any]] = {}
    data = reader.get_metrics_data()
    if data is None:
        return out
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                out.setdefault(metric.name, []).extend(metric.data.data_points)
    return out


def _by_attrs(points: Sequence[Any], field: str = "value") -> dict[frozenset[Any], Any]:
    return {frozenset(p.attributes.items()): getattr(p, field) for p in points}


def _key(**attrs: Any) -> frozenset[Any]:
    return frozenset(attrs.items())


def _spans(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def _hex(context: SpanContext) -> tuple[str, str]:
    return trace.format_trace_id(context.trace_id), trace.format_span_id(context.span_id)


# --- ml.predict ---------------------------------------------------------------------------------


def test_predict_span_is_a_child_of_the_server_span_with_exact_attributes(
    monitor: ModelMonitor, tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> None:
    server_tracer = tracer_provider.get_tracer("test-server")
    with server_tracer.start_as_current_span("POST /predict", kind=SpanKind.SERVER) as server:
        records = _predict(monitor, [90.0, 20.0], ids=["tx-1", None], regions=["north", None])

    (span,) = _spans(span_exporter, "ml.predict")
    server_context = server.get_span_context()
    assert span.kind is SpanKind.INTERNAL
    assert span.parent is not None
    assert span.parent.span_id == server_context.span_id
    assert span.context.trace_id == server_context.trace_id
    assert dict(span.attributes or {}) == {
        **MODEL_ATTRS,
        "ml.prediction.count": 2,
        "ml.prediction.ids": ("tx-1", records[1].prediction_id),
    }
    assert span.status.status_code is StatusCode.UNSET
    # The stored rows point at this span, so a feedback span can link to it later.
    assert [(r.trace_id, r.span_id) for r in records] == [_hex(span.context)] * 2
    assert records[0].prediction_id == "tx-1"
    assert len(records[1].prediction_id) == 32
    assert [r.groups for r in records] == [{"region": "north"}, {"region": "__missing__"}]
    assert [(r.label, r.scores, r.created) for r in records] == [
        ("fraud", (pytest.approx(0.1), 0.9), T0),
        ("legit", (0.8, 0.2), T0),
    ]


def test_predict_records_latency_and_rows_with_model_attributes_only(
    monitor: ModelMonitor, metric_reader: InMemoryMetricReader, perf_counter: list[float]
) -> None:
    perf_counter.extend([10.0, 10.25])
    _predict(monitor, [90.0, 20.0, 30.0])

    points = _metrics(metric_reader)
    (duration,) = points["ml.prediction.duration"]
    assert dict(duration.attributes) == MODEL_ATTRS
    assert (duration.count, duration.sum) == (1, 0.25)
    assert tuple(duration.explicit_bounds) == LATENCY_BUCKETS_S
    (rows,) = points["ml.predictions"]
    assert (dict(rows.attributes), rows.value) == (MODEL_ATTRS, 3)
    assert "ml.prediction.errors" not in points


def test_failed_prediction_reraises_the_same_exception_and_still_records_latency(
    monitor: ModelMonitor,
    store: SQLiteStore,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
    perf_counter: list[float],
) -> None:
    perf_counter.extend([5.0, 5.5])
    error = RuntimeError("model exploded")

    with pytest.raises(RuntimeError) as raised, monitor.predict(_inputs([90.0])):
        raise error

    assert raised.value is error
    (span,) = _spans(span_exporter, "ml.predict")
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "model exploded"
    assert dict(span.attributes or {}) == {
        **MODEL_ATTRS,
        "ml.prediction.count": 1,
        "error.type": "RuntimeError",
    }
    assert [e.name for e in span.events] == ["exception"]
    points = _metrics(metric_reader)
    error_attrs = {**MODEL_ATTRS, "error.type": "RuntimeError"}
    (duration,) = points["ml.prediction.duration"]
    assert (dict(duration.attributes), duration.count, duration.sum) == (error_attrs, 1, 0.5)
    (errors,) = points["ml.prediction.errors"]
    assert (dict(errors.attributes), errors.value) == (error_attrs, 1)
    assert "ml.predictions" not in points
    assert store.count_predictions("fraud-test") == 0


def test_reused_id_fails_the_request_stores_nothing_and_counts_the_error(
    monitor: ModelMonitor,
    store: SQLiteStore,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
) -> None:
    _predict(monitor, [90.0], ids=["tx-1"])
    before = store.sum_aggregates("fraud-test", "v1", since_bucket=0)

    with pytest.raises(DuplicatePredictionId) as raised:
        _predict(monitor, [10.0, 20.0], ids=["tx-2", "tx-1"])

    assert raised.value.prediction_id == "tx-1"
    assert store.get_predictions("fraud-test", ["tx-1", "tx-2"]).keys() == {"tx-1"}
    assert store.sum_aggregates("fraud-test", "v1", since_bucket=0) == before
    failed = _spans(span_exporter, "ml.predict")[1]
    assert failed.attributes is not None
    assert failed.attributes["error.type"] == "DuplicatePredictionId"
    points = _metrics(metric_reader)
    assert _by_attrs(points["ml.prediction.errors"]) == {
        _key(**MODEL_ATTRS, **{"error.type": "DuplicatePredictionId"}): 1
    }
    assert _by_attrs(points["ml.predictions"]) == {_key(**MODEL_ATTRS): 1}


def test_outputs_with_the_wrong_row_count_are_rejected(monitor: ModelMonitor) -> None:
    with (
        pytest.raises(ValueError, match=r"^set_outputs: labels has 1 rows, expected 2$"),
        monitor.predict(_inputs([1.0, 2.0])) as rec,
    ):
        rec.set_outputs(labels=["legit"])
    assert monitor.store.count_predictions("fraud-test") == 0


def test_unsampled_prediction_and_feedback_still_count_and_store(
    store: SQLiteStore,
    meter_provider: MeterProvider,
    metric_reader: InMemoryMetricReader,
    clock: Clock,
) -> None:
    exporter = InMemorySpanExporter()
    unsampled = TracerProvider(sampler=ALWAYS_OFF)
    unsampled.add_span_processor(SimpleSpanProcessor(exporter))
    monitor = ModelMonitor(
        BINARY, store, tracer_provider=unsampled, meter_provider=meter_provider, clock=clock
    )

    records = _predict(monitor, [90.0, 20.0])
    clock.advance(60)
    outcome = monitor.feedback([(records[0].prediction_id, "fraud")])

    assert exporter.get_finished_spans() == ()
    stored = store.get_predictions("fraud-test", [r.prediction_id for r in records])
    assert len(stored) == 2
    for record in stored.values():
        assert int(record.trace_id, 16) != 0
        assert int(record.span_id, 16) != 0
    assert outcome.counts == {**NO_STATUSES, "matched": 1}
    points = _metrics(metric_reader)
    assert _by_attrs(points["ml.predictions"]) == {_key(**MODEL_ATTRS): 2}
    assert _by_attrs(points["ml.prediction.duration"], "count") == {_key(**MODEL_ATTRS): 1}
    assert _by_attrs(points["ml.feedback"]) == {
        _key(**MODEL_ATTRS, **{"ml.feedback.status": "matched"}): 1
    }
    assert _by_attrs(points["ml.label.delay"], "sum") == {_key(**MODEL_ATTRS): 60.0}
    window = monitor.snapshot()["windows"]["5m"]
    assert (window["n_predictions"], window["n_labels"]) == (2, 1)
    unsampled.shutdown()


# --- ml.feedback --------------------------------------------------------------------------------


def test_feedback_span_links_each_matched_prediction_and_counts_everything(
    monitor: ModelMonitor,
    clock: Clock,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
) -> None:
    first = _predict(monitor, [90.0, 20.0])  # one request, one span, two rows
    clock.advance(30)
    second = _predict(monitor, [80.0])
    clock.advance(90)
    ids = [first[0].prediction_id, first[1].prediction_id, second[0].prediction_id]

    outcome = monitor.feedback(
        [(ids[0], "fraud"), (ids[1], "fraud"), (ids[2], "legit"), ("no-such-id", "fraud")]
    )

    assert outcome.results == [
        (ids[0], "matched"),
        (ids[1], "matched"),
        (ids[2], "matched"),
        ("no-such-id", "unknown"),
    ]
    assert outcome.counts == {**NO_STATUSES, "matched": 3, "unknown": 1}
    (span,) = _spans(span_exporter, "ml.feedback")
    assert span.kind is SpanKind.INTERNAL
    assert dict(span.attributes or {}) == {
        **MODEL_ATTRS,
        "ml.feedback.count": 4,
        "ml.feedback.matched_ids": tuple(ids),
        "ml.feedback.links_dropped": 0,
    }
    stored = monitor.store.get_predictions("fraud-test", ids)
    assert [(_hex(link.context), dict(link.attributes or {})) for link in span.links] == [
        ((stored[pid].trace_id, stored[pid].span_id), {"ml.prediction.id": pid}) for pid in ids
    ]
    predict_spans = _spans(span_exporter, "ml.predict")
    assert [_hex(link.context) for link in span.links] == [
        _hex(predict_spans[0].context),
        _hex(predict_spans[0].context),
        _hex(predict_spans[1].context),
    ]

    points = _metrics(metric_reader)
    assert _by_attrs(points["ml.feedback"]) == {
        _key(**MODEL_ATTRS, **{"ml.feedback.status": "matched"}): 3,
        _key(**MODEL_ATTRS, **{"ml.feedback.status": "unknown"}): 1,
    }
    (delay,) = points["ml.label.delay"]
    assert (dict(delay.attributes), delay.count, delay.sum) == (MODEL_ATTRS, 3, 120 + 120 + 90)
    assert (delay.min, delay.max) == (90, 120)
    confusion = "ml.label.actual", "ml.label.predicted"
    assert _by_attrs(points["ml.confusion"]) == {
        _key(**MODEL_ATTRS, **dict(zip(confusion, ("fraud", "fraud"), strict=True))): 1,
        _key(**MODEL_ATTRS, **dict(zip(confusion, ("fraud", "legit"), strict=True))): 1,
        _key(**MODEL_ATTRS, **dict(zip(confusion, ("legit", "fraud"), strict=True))): 1,
    }


def test_feedback_links_and_span_id_lists_are_capped(
    monitor: ModelMonitor, span_exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(monitor_module, "MAX_LINKS_PER_FEEDBACK", 2)
    monkeypatch.setattr(monitor_module, "MAX_IDS_ON_SPAN", 3)
    records = _predict(monitor, [10.0, 20.0, 30.0, 40.0, 50.0])
    ids = [r.prediction_id for r in records]

    outcome = monitor.feedback([(pid, "legit") for pid in ids])

    assert outcome.counts["matched"] == 5
    (predict_span,) = _spans(span_exporter, "ml.predict")
    assert predict_span.attributes is not None
    assert predict_span.attributes["ml.prediction.count"] == 5
    assert predict_span.attributes["ml.prediction.ids"] == tuple(ids[:3])
    (span,) = _spans(span_exporter, "ml.feedback")
    assert dict(span.attributes or {}) == {
        **MODEL_ATTRS,
        "ml.feedback.count": 5,
        "ml.feedback.matched_ids": tuple(ids[:3]),
        "ml.feedback.links_dropped": 3,
    }
    assert [dict(link.attributes or {}) for link in span.links] == [
        {"ml.prediction.id": ids[0]},
        {"ml.prediction.id": ids[1]},
    ]


def test_matched_label_adds_to_aggregates_and_is_stored(
    monitor: ModelMonitor, store: SQLiteStore, clock: Clock
) -> None:
    (record,) = _predict(monitor, [90.0])
    before = store.sum_aggregates("fraud-test", "v1", since_bucket=0)
    clock.advance(5)

    outcome = monitor.feedback([(record.prediction_id, "legit")])

    assert outcome.results == [(record.prediction_id, "matched")]
    after = store.sum_aggregates("fraud-test", "v1", since_bucket=0)
    assert after['["labels"]'] == before.get('["labels"]', 0) + 1
    assert after['["confusion","legit","fraud"]'] == 1
    stored = store.get_predictions("fraud-test", [record.prediction_id])[record.prediction_id]
    assert (stored.feedback, stored.feedback_at) == ("legit", T0 + 5)


def _label_first(label: Any) -> Callable[[ModelMonitor, str], None]:
    def setup(monitor: ModelMonitor, pid: str) -> None:
        assert monitor.feedback([(pid, label)]).results == [(pid, "matched")]

    return setup


def _nothing(monitor: ModelMonitor, pid: str) -> None:
    return None


@pytest.mark.parametrize(
    ("setup", "target", "label", "status", "stored_feedback"),
    [
        pytest.param(_label_first("fraud"), "own", "fraud", "duplicate", "fraud", id="duplicate"),
        pytest.param(_label_first("fraud"), "own", "legit", "conflict", "fraud", id="conflict"),
        pytest.param(_nothing, "no-such-id", "fraud", "unknown", None, id="unknown"),
        pytest.param(_nothing, "own", "maybe", "invalid", None, id="invalid-class"),
        pytest.param(_nothing, "own", True, "invalid", None, id="invalid-bool"),
        pytest.param(_nothing, "own", 1, "invalid", None, id="invalid-int-not-a-class"),
        pytest.param(_nothing, "own", 0.9, "invalid", None, id="invalid-float"),
        pytest.param(_nothing, "own", None, "invalid", None, id="invalid-null"),
    ],
)
def test_feedback_that_does_not_match_leaves_aggregates_unchanged(
    monitor: ModelMonitor,
    store: SQLiteStore,
    metric_reader: InMemoryMetricReader,
    setup: Callable[[ModelMonitor, str], None],
    target: str,
    label: Any,
    status: str,
    stored_feedback: str | None,
) -> None:
    (record,) = _predict(monitor, [90.0])
    pid = record.prediction_id
    setup(monitor, pid)
    before = store.sum_aggregates("fraud-test", "v1", since_bucket=0)
    delays_before = sum(p.count for p in _metrics(metric_reader).get("ml.label.delay", []))
    sent = pid if target == "own" else target

    outcome = monitor.feedback([(sent, label)])

    assert outcome.results == [(sent, status)]
    assert outcome.counts == {**NO_STATUSES, status: 1}
    assert store.sum_aggregates("fraud-test", "v1", since_bucket=0) == before
    assert store.get_predictions("fraud-test", [pid])[pid].feedback == stored_feedback
    points = _metrics(metric_reader)
    assert (
        _by_attrs(points["ml.feedback"])[_key(**MODEL_ATTRS, **{"ml.feedback.status": status})] == 1
    )
    assert sum(p.count for p in points.get("ml.label.delay", [])) == delays_before


def test_label_after_the_ttl_is_expired_and_changes_nothing(
    monitor: ModelMonitor, store: SQLiteStore, clock: Clock
) -> None:
    late, in_time = (r.prediction_id for r in _predict(monitor, [90.0, 10.0]))
    clock.advance(3600)  # exactly the TTL: still in time
    assert monitor.feedback([(in_time, "legit")]).results == [(in_time, "matched")]
    clock.advance(0.5)
    before = store.sum_aggregates("fraud-test", "v1", since_bucket=0)

    outcome = monitor.feedback([(late, "fraud")])

    assert outcome.results == [(late, "expired")]
    assert outcome.counts == {**NO_STATUSES, "expired": 1}
    assert store.sum_aggregates("fraud-test", "v1", since_bucket=0) == before
    assert store.get_predictions("fraud-test", [late])[late].feedback is None


def test_the_same_label_twice_in_one_request_is_matched_then_duplicate(
    monitor: ModelMonitor, store: SQLiteStore
) -> None:
    first, second = _predict(monitor, [90.0, 10.0])
    a, b = first.prediction_id, second.prediction_id

    outcome = monitor.feedback([(a, "fraud"), (a, "fraud"), (b, "legit"), (b, "fraud")])

    assert outcome.results == [(a, "matched"), (a, "duplicate"), (b, "matched"), (b, "conflict")]
    sums = store.sum_aggregates("fraud-test", "v1", since_bucket=0)
    assert sums['["labels"]'] == 2
    assert store.get_predictions("fraud-test", [b])[b].feedback == "legit"


@pytest.mark.parametrize(
    ("label", "status"),
    [
        pytest.param(3, "matched", id="int"),
        pytest.param(3.5, "matched", id="float"),
        pytest.param("3", "invalid", id="string"),
        pytest.param(True, "invalid", id="bool"),
        pytest.param(math.nan, "invalid", id="nan"),
        pytest.param(math.inf, "invalid", id="inf"),
        pytest.param(None, "invalid", id="null"),
        pytest.param(1.2e154, "invalid", id="square-overflows"),
        pytest.param(10**400, "invalid", id="int-beyond-float"),
    ],
)
def test_regression_labels_must_be_finite_numbers(
    regression_monitor: ModelMonitor, store: SQLiteStore, label: Any, status: str
) -> None:
    (record,) = _regress(regression_monitor, [2.0])
    before = store.sum_aggregates("price-test", "v7", since_bucket=0)

    outcome = regression_monitor.feedback([(record.prediction_id, label)])

    assert outcome.results == [(record.prediction_id, status)]
    changed = store.sum_aggregates("price-test", "v7", since_bucket=0) != before
    assert changed is (status == "matched")


def test_the_largest_regression_values_keep_every_window_finite(
    regression_monitor: ModelMonitor, store: SQLiteStore
) -> None:
    # Squares of ±1e100 still sum finitely; past it a value would poison the window.
    with pytest.raises(ValueError, match=r"values\[1\]=1\.2e\+154 is not a finite number"):
        _regress(regression_monitor, [1.0, 1.2e154])
    assert store.count_predictions("price-test") == 0

    records = _regress(regression_monitor, [-1e100] * 4)
    outcome = regression_monitor.feedback([(r.prediction_id, 1e100) for r in records])

    assert {status for _, status in outcome.results} == {"matched"}
    quality = regression_monitor.snapshot()["windows"]["1h"]["quality"]
    assert quality["mae"]["value"] == pytest.approx(2e100, rel=1e-12)
    assert quality["rmse"]["value"] == pytest.approx(2e100, rel=1e-12)


def test_regression_duplicate_and_conflict_compare_numbers(
    regression_monitor: ModelMonitor, store: SQLiteStore
) -> None:
    (record,) = _regress(regression_monitor, [2.0])
    pid = record.prediction_id
    assert regression_monitor.feedback([(pid, 3)]).results == [(pid, "matched")]
    before = store.sum_aggregates("price-test", "v7", since_bucket=0)

    outcome = regression_monitor.feedback([(pid, 3.0), (pid, 4)])

    assert outcome.results == [(pid, "duplicate"), (pid, "conflict")]
    assert store.sum_aggregates("price-test", "v7", since_bucket=0) == before
    assert store.get_predictions("price-test", [pid])[pid].feedback == 3.0


def test_regression_snapshot_quality_equals_sklearn(regression_monitor: ModelMonitor) -> None:
    predicted = [10.0, 20.0, 30.0, 41.5]
    actual = [12.0, 18.0, 33.0, 40.0]
    records = _regress(regression_monitor, predicted)
    regression_monitor.feedback(
        [(r.prediction_id, y) for r, y in zip(records, actual, strict=True)]
    )

    quality = regression_monitor.snapshot()["windows"]["5m"]["quality"]

    assert quality["mae"]["value"] == pytest.approx(mean_absolute_error(actual, predicted), 1e-12)
    assert quality["rmse"]["value"] == pytest.approx(
        root_mean_squared_error(actual, predicted), 1e-12
    )
    assert quality["r2"]["value"] == pytest.approx(r2_score(actual, predicted), 1e-12)
    assert quality["mape"]["value"] == pytest.approx(
        mean_absolute_percentage_error(actual, predicted), 1e-12
    )
    assert quality["mae"]["n"] == 4


# --- telemetry never breaks inference ---------------------------------------------------------


class TelemetryBoom(RuntimeError):
    """Raised by every telemetry double below."""


class RaisingSpan(NonRecordingSpan):
    """A span with a valid context whose every mutator raises."""

    def set_attribute(self, key: str, value: Any) -> None:
        raise TelemetryBoom("set_attribute")

    def set_attributes(self, attributes: Any) -> None:
        raise TelemetryBoom("set_attributes")

    def set_status(self, status: Any, description: str | None = None) -> None:
        raise TelemetryBoom("set_status")

    def record_exception(self, exception: BaseException, *args: Any, **kwargs: Any) -> None:
        raise TelemetryBoom("record_exception")

    def add_link(self, context: SpanContext, attributes: Any = None) -> None:
        raise TelemetryBoom("add_link")


class RaisingTracer(trace.NoOpTracer):
    def __init__(self) -> None:
        self._next = 0

    def start_span(self, name: str, *args: Any, **kwargs: Any) -> trace.Span:
        self._next += 1
        context = SpanContext(
            trace_id=0xABC0 + self._next,
            span_id=0xDEF0 + self._next,
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
        return RaisingSpan(context)

    @contextmanager
    def start_as_current_span(self, name: str, *args: Any, **kwargs: Any) -> Iterator[trace.Span]:
        span = self.start_span(name)
        with trace.use_span(
            span, end_on_exit=False, record_exception=False, set_status_on_exception=False
        ):
            yield span


class RaisingTracerProvider(trace.NoOpTracerProvider):
    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return RaisingTracer()


class RaisingInstrument:
    def add(self, *args: Any, **kwargs: Any) -> None:
        raise TelemetryBoom("add")

    def record(self, *args: Any, **kwargs: Any) -> None:
        raise TelemetryBoom("record")


class RaisingMeter(NoOpMeter):
    def create_counter(self, *args: Any, **kwargs: Any) -> Any:
        return RaisingInstrument()

    def create_histogram(self, *args: Any, **kwargs: Any) -> Any:
        return RaisingInstrument()


class RaisingMeterProvider(NoOpMeterProvider):
    def get_meter(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return RaisingMeter(name)


def test_raising_tracer_and_meter_never_break_predict_or_feedback(
    store: SQLiteStore, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    monitor = ModelMonitor(
        BINARY,
        store,
        tracer_provider=RaisingTracerProvider(),
        meter_provider=RaisingMeterProvider(),
        clock=clock,
    )
    caplog.set_level(logging.ERROR, logger="instrumentation.monitor")

    records = _predict(monitor, [90.0, 20.0], ids=["tx-1", "tx-2"])
    outcome = monitor.feedback([("tx-1", "fraud")])
    error = ValueError("bad model")
    with pytest.raises(ValueError) as raised, monitor.predict(_inputs([1.0])):
        raise error

    assert raised.value is error
    assert [r.prediction_id for r in records] == ["tx-1", "tx-2"]
    assert store.get_predictions("fraud-test", ["tx-1", "tx-2"]).keys() == {"tx-1", "tx-2"}
    assert (records[0].trace_id, records[0].span_id) == (f"{0xABC1:032x}", f"{0xDEF1:016x}")
    assert outcome.results == [("tx-1", "matched")]
    logged = [r.getMessage() for r in caplog.records]
    assert logged == [
        "telemetry error in set_attribute (request unaffected)",
        "telemetry error in _record_request (request unaffected)",
        "telemetry error in _record_feedback (request unaffected)",
        "telemetry error in _record_failure (request unaffected)",
        "telemetry error in _record_request (request unaffected)",
    ]
    assert all(isinstance(r.exc_info[1], TelemetryBoom) for r in caplog.records if r.exc_info)


class RaisingProcessor(SpanProcessor):
    """A span processor that fails when a span starts or ends."""

    def __init__(self, where: str) -> None:
        self.where = where

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        if self.where == "start":
            raise TelemetryBoom("on_start")

    def on_end(self, span: ReadableSpan) -> None:
        if self.where == "end":
            raise TelemetryBoom("on_end")


@pytest.mark.parametrize("where", ["start", "end"])
def test_a_span_processor_that_raises_never_fails_a_committed_request(
    store: SQLiteStore, clock: Clock, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    provider = TracerProvider()
    provider.add_span_processor(RaisingProcessor(where))
    monitor = ModelMonitor(BINARY, store, tracer_provider=provider, clock=clock)

    records = _predict(monitor, [90.0], ids=["tx-1"])
    outcome = monitor.feedback([("tx-1", "fraud")])

    assert [r.prediction_id for r in records] == ["tx-1"]
    assert outcome.results == [("tx-1", "matched")]
    assert store.get_predictions("fraud-test", ["tx-1"])["tx-1"].feedback == "fraud"
    assert any(isinstance(r.exc_info[1], TelemetryBoom) for r in caplog.records if r.exc_info)
    # A failure inside the request still reaches the caller unchanged.
    with pytest.raises(KeyError), monitor.predict(_inputs([1.0])):
        raise KeyError("model")


class FailingExporter(SpanExporter):
    def __init__(self) -> None:
        self.calls = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.calls += 1
        raise ConnectionError("collector is down")

    def shutdown(self) -> None:
        return None


def test_an_exporter_that_raises_does_not_fail_the_prediction(
    store: SQLiteStore, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = FailingExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monitor = ModelMonitor(BINARY, store, tracer_provider=provider, clock=clock)
    caplog.set_level(logging.ERROR)

    (record,) = _predict(monitor, [90.0])

    assert exporter.calls == 1
    assert store.count_predictions("fraud-test") == 1
    assert monitor.feedback([(record.prediction_id, "fraud")]).results == [
        (record.prediction_id, "matched")
    ]
    assert any("Exception while exporting Span" in r.getMessage() for r in caplog.records)
    provider.shutdown()


# --- window gauges and the lease ----------------------------------------------------------------


def test_only_the_lease_holder_exports_window_gauges_equal_to_the_snapshot(
    store: SQLiteStore,
    tracer_provider: TracerProvider,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monotonic = [1000.0]
    monkeypatch.setattr(
        instruments_module, "time", types.SimpleNamespace(monotonic=lambda: monotonic[0])
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
    records = _predict(a, [90.0, 20.0, 80.0, 10.0, 60.0])
    # A label reaching the worker that never saw the prediction: the store joins them.
    b.feedback(
        [
            (r.prediction_id, y)
            for r, y in zip(records, ["fraud", "fraud", "legit", "legit", "fraud"], strict=True)
        ]
    )

    points_a = _metrics(readers["worker-a"])
    points_b = _metrics(readers["worker-b"])

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
        assert _by_attrs(points_a["ml.quality.accuracy" + suffix]) == {
            _key(**MODEL_ATTRS, **{"ml.window": w}): expected[w][field] for w in expected
        }
    macro_f1 = _by_attrs(points_a["ml.quality.f1"])
    assert (
        macro_f1[_key(**MODEL_ATTRS, **{"ml.window": "1h", "ml.average": "macro"})]
        == (snapshot["1h"]["quality"]["f1"]["macro"]["value"])
    )
    assert (
        macro_f1[_key(**MODEL_ATTRS, **{"ml.window": "1h", "ml.class": "fraud"})]
        == (snapshot["1h"]["quality"]["f1"]["per_class"]["fraud"]["value"])
    )

    # Worker A goes quiet: once its lease lapses, worker B takes over the gauges.
    clock.advance(31)
    monotonic[0] += 2
    points_b = _metrics(readers["worker-b"])
    assert len(points_b["ml.quality.accuracy"]) == 3
    monotonic[0] += 2
    assert _metrics(readers["worker-a"]).get("ml.quality.accuracy", []) == []
    for provider in providers.values():
        provider.shutdown()


def test_each_collection_reads_one_gauge_snapshot_even_when_computing_it_is_slow_or_fails(
    monitor: ModelMonitor, metric_reader: InMemoryMetricReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    monotonic = [1000.0]
    monkeypatch.setattr(
        instruments_module, "time", types.SimpleNamespace(monotonic=lambda: monotonic[0])
    )
    records = _predict(monitor, [90.0, 20.0, 80.0, 10.0, 60.0] * 30)
    monitor.feedback([(r.prediction_id, "fraud") for r in records])
    real_reports = monitor.window_reports
    calls: list[str] = []

    def slow_then_failing() -> dict[str, Any]:
        calls.append("computed")
        monotonic[0] += 5.0  # a starved CPU: the computation outlasts the 1 s reuse period
        if len(calls) == 2:
            raise sqlite3.OperationalError("database is locked")
        return real_reports()

    monkeypatch.setattr(monitor, "window_reports", slow_then_failing)

    first = _metrics(metric_reader)
    assert calls == ["computed"]  # one computation served every gauge of the collection
    # The first gauge registered (it refreshes the snapshot) and the last are both there.
    assert {"ml.estimated.accuracy", "ml.quality.recall.upper"} <= set(first)

    # A failed computation drops every window gauge of that collection, not some of them.
    monotonic[0] += 1.0  # the next scrape
    second = _metrics(metric_reader)
    assert len(calls) == 2
    assert not [name for name in second if name.startswith(("ml.quality.", "ml.estimated."))]

    monotonic[0] += 1.0
    assert set(_metrics(metric_reader)) == set(first)


# --- snapshot and housekeeping ------------------------------------------------------------------


def test_snapshot_counts_per_window_and_windows_only_sum_their_buckets(
    monitor: ModelMonitor, clock: Clock
) -> None:
    records = _predict(monitor, [90.0, 20.0, 70.0])
    clock.advance(60)
    monitor.feedback([(records[0].prediction_id, "fraud"), (records[1].prediction_id, "fraud")])

    snapshot = monitor.snapshot()

    assert set(snapshot) == {"model", "stored_predictions", "windows"}
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
    _predict(monitor, [90.0])  # at T0, the start of a bucket

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
        ids.append(_predict(monitor, [amount])[0].prediction_id)
        clock.advance(50)
    clock.now = T0 + 150

    assert monitor.evict_expired() == 2  # over the cap of 2: the two oldest go
    assert set(store.get_predictions("fraud-test", ids)) == {ids[2], ids[3]}
    clock.now = T0 + 300  # ids[2] is exactly 2 x TTL old: kept
    assert monitor.evict_expired() == 0
    clock.now = T0 + 300.5
    assert monitor.evict_expired() == 1
    assert set(store.get_predictions("fraud-test", ids)) == {ids[3]}
    assert _by_attrs(_metrics(metric_reader)["ml.predictions.evicted"]) == {_key(**MODEL_ATTRS): 3}


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
    ids = [r.prediction_id for r in _predict(a, [1.0, 2.0, 3.0, 4.0, 5.0])]

    # Both read 5 rows against a cap of 2; only the lease holder evicts, so 3 go, not 6.
    assert a.housekeeping(lease_seconds=150.0) is True
    assert b.housekeeping(lease_seconds=150.0) is False
    assert len(store.get_predictions("fraud-test", ids)) == 2

    clock.advance(1)
    ids += [r.prediction_id for r in _predict(b, [6.0])]
    clock.advance(99)
    assert b.housekeeping(lease_seconds=150.0) is False  # a's lease still runs
    assert len(store.get_predictions("fraud-test", ids)) == 3
    clock.advance(51)  # a missed its rounds: b takes over
    assert b.housekeeping(lease_seconds=150.0) is True
    kept = store.get_predictions("fraud-test", ids)
    assert len(kept) == 2 and ids[-1] in kept  # the oldest went
    assert a.housekeeping(lease_seconds=150.0) is False


# --- labels that cannot be aggregated never fail the rest of their batch ------------------------


def _multiclass(version: str, classes: tuple[str, ...]) -> ModelSpec:
    return ModelSpec("iris-test", version, "multiclass", (FeatureSpec("x", "number"),), classes)


def _classify(monitor: ModelMonitor, label: str, scores: list[float], pid: str) -> PredictionRecord:
    with monitor.predict([PredictionInput({"x": 1.0}, pid)]) as rec:
        (record,) = rec.set_outputs(labels=[label], scores=[scores])
    return record


def test_a_score_row_accepted_at_prediction_is_accepted_at_label_time(
    store: SQLiteStore, tracer_provider: TracerProvider
) -> None:
    monitor = ModelMonitor(
        _multiclass("v1", ("a", "b", "c")), store, tracer_provider=tracer_provider
    )
    # Sums to 1 + 1e-6 up to rounding: numpy's sum and an exact one disagree here.
    edge = [0.4185635943125683, 0.252860023617907, 0.3285773820695247]
    _classify(monitor, "a", edge, "edge")
    _classify(monitor, "a", [1.0, 0.0, 0.0], "plain")

    outcome = monitor.feedback([("plain", "a"), ("edge", "a")])

    assert outcome.results == [("plain", "matched"), ("edge", "matched")]
    assert monitor.snapshot()["windows"]["5m"]["quality"]["accuracy"]["n"] == 2


def test_a_prediction_of_an_earlier_version_with_other_classes_is_invalid_alone(
    store: SQLiteStore, tracer_provider: TracerProvider
) -> None:
    old = ModelMonitor(_multiclass("v1", ("a", "b", "c")), store, tracer_provider=tracer_provider)
    new = ModelMonitor(
        _multiclass("v2", ("a", "b", "c", "d")), store, tracer_provider=tracer_provider
    )
    _classify(old, "b", [0.2, 0.5, 0.3], "from-v1")
    _classify(new, "d", [0.1, 0.1, 0.1, 0.7], "from-v2")

    outcome = new.feedback([("from-v1", "a"), ("from-v2", "d")])

    assert outcome.results == [("from-v1", "invalid"), ("from-v2", "matched")]
    assert store.get_predictions("iris-test", ["from-v1"])["from-v1"].feedback is None
    assert new.snapshot()["windows"]["5m"]["n_labels"] == 1
    # The version that made it can still take its label.
    assert old.feedback([("from-v1", "a")]).results == [("from-v1", "matched")]


def test_the_estimate_error_compares_the_same_scored_rows(monitor: ModelMonitor) -> None:
    with monitor.predict([PredictionInput({"amount": 1.0, "channel": "web"}, "scored")]) as rec:
        rec.set_outputs(labels=["fraud"], scores=[[0.1, 0.9]])
    with monitor.predict([PredictionInput({"amount": 2.0, "channel": "web"}, "unscored")]) as rec:
        rec.set_outputs(labels=["fraud"])  # a model without probabilities for this row

    monitor.feedback([("scored", "fraud"), ("unscored", "legit")])

    window = monitor.snapshot()["windows"]["5m"]
    assert window["quality"]["accuracy"]["value"] == 0.5  # realised over both rows
    # The estimate covers the scored row only (0.9), and so does the realised side (1.0).
    assert window["estimated"]["error"]["accuracy"] == pytest.approx(0.9 - 1.0, abs=1e-12)


@pytest.mark.parametrize("offset", [0.0, 1e3, 1e7, 1.7e9])
def test_r2_equals_sklearn_for_targets_far_from_zero(
    store: SQLiteStore, tracer_provider: TracerProvider, offset: float
) -> None:
    rng = np.random.default_rng(0)
    training = offset + rng.normal(0.0, 1.0, 500)
    profile = build_reference_profile(
        {"size": training}, numeric=["size"], categorical=[], predicted_value=training
    )
    spec = ModelSpec(
        "price-test",
        "v7",
        "regression",
        (FeatureSpec("size", "number"),),
        sensitive_attributes=("region",),
        reference=profile.to_dict(),
    )
    monitor = ModelMonitor(spec, store, tracer_provider=tracer_provider)
    actual = offset + rng.normal(0.0, 1.0, 200)
    predicted = actual + rng.normal(0.0, 0.3, 200)
    groups = rng.choice(["a", "b"], 200)
    inputs = [PredictionInput({"size": 1.0}, None, {"region": g}) for g in groups]
    with monitor.predict(inputs) as rec:
        records = rec.set_outputs(values=predicted.tolist())
    monitor.feedback([(r.prediction_id, float(y)) for r, y in zip(records, actual, strict=True)])

    window = monitor.snapshot()["windows"]["5m"]
    assert window["quality"]["r2"]["value"] == pytest.approx(
        r2_score(actual, predicted), rel=0, abs=1e-9
    )
    for group in ("a", "b"):
        rows = groups == group
        assert window["fairness"]["region"]["groups"][group]["r2"]["value"] == pytest.approx(
            r2_score(actual[rows], predicted[rows]), rel=0, abs=1e-9
        )
