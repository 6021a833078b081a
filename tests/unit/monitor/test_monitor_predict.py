"""The ml.predict span, the request counters and latency, and sampling that loses nothing."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode

from instrumentation import (
    DuplicatePredictionId,
    ModelMonitor,
    SQLiteStore,
)
from instrumentation.telemetry.instruments import LATENCY_BUCKETS_S
from tests.unit.monitor.monitor_support import (
    BINARY,
    MODEL_ATTRS,
    NO_STATUSES,
    T0,
    Clock,
    attr_key,
    by_attrs,
    inputs,
    metrics,
    predict,
    span_ids,
    spans,
)

# --- ml.predict ---------------------------------------------------------------------------------


def test_predict_span_is_a_child_of_the_server_span_with_exact_attributes(
    monitor: ModelMonitor, tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> None:
    server_tracer = tracer_provider.get_tracer("test-server")
    with server_tracer.start_as_current_span("POST /predict", kind=SpanKind.SERVER) as server:
        records = predict(monitor, [90.0, 20.0], ids=["tx-1", None], regions=["north", None])

    (span,) = spans(span_exporter, "ml.predict")
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
    assert [(r.trace_id, r.span_id) for r in records] == [span_ids(span.context)] * 2
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
    predict(monitor, [90.0, 20.0, 30.0])

    points = metrics(metric_reader)
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

    with pytest.raises(RuntimeError) as raised, monitor.predict(inputs([90.0])):
        raise error

    assert raised.value is error
    (span,) = spans(span_exporter, "ml.predict")
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "model exploded"
    assert dict(span.attributes or {}) == {
        **MODEL_ATTRS,
        "ml.prediction.count": 1,
        "error.type": "RuntimeError",
    }
    assert [e.name for e in span.events] == ["exception"]
    points = metrics(metric_reader)
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
    predict(monitor, [90.0], ids=["tx-1"])
    before = store.sum_aggregates("fraud-test", "v1", since_bucket=0)

    with pytest.raises(DuplicatePredictionId) as raised:
        predict(monitor, [10.0, 20.0], ids=["tx-2", "tx-1"])

    assert raised.value.prediction_id == "tx-1"
    assert store.get_predictions("fraud-test", ["tx-1", "tx-2"]).keys() == {"tx-1"}
    assert store.sum_aggregates("fraud-test", "v1", since_bucket=0) == before
    failed = spans(span_exporter, "ml.predict")[1]
    assert failed.attributes is not None
    assert failed.attributes["error.type"] == "DuplicatePredictionId"
    points = metrics(metric_reader)
    assert by_attrs(points["ml.prediction.errors"]) == {
        attr_key(**MODEL_ATTRS, **{"error.type": "DuplicatePredictionId"}): 1
    }
    assert by_attrs(points["ml.predictions"]) == {attr_key(**MODEL_ATTRS): 1}


def test_outputs_with_the_wrong_row_count_are_rejected(monitor: ModelMonitor) -> None:
    with (
        pytest.raises(ValueError, match=r"^set_outputs: labels has 1 rows, expected 2$"),
        monitor.predict(inputs([1.0, 2.0])) as rec,
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

    records = predict(monitor, [90.0, 20.0])
    clock.advance(60)
    outcome = monitor.feedback([(records[0].prediction_id, "fraud")])

    assert exporter.get_finished_spans() == ()
    stored = store.get_predictions("fraud-test", [r.prediction_id for r in records])
    assert len(stored) == 2
    for record in stored.values():
        assert int(record.trace_id, 16) != 0
        assert int(record.span_id, 16) != 0
    assert outcome.counts == {**NO_STATUSES, "matched": 1}
    points = metrics(metric_reader)
    assert by_attrs(points["ml.predictions"]) == {attr_key(**MODEL_ATTRS): 2}
    assert by_attrs(points["ml.prediction.duration"], "count") == {attr_key(**MODEL_ATTRS): 1}
    assert by_attrs(points["ml.feedback"]) == {
        attr_key(**MODEL_ATTRS, **{"ml.feedback.status": "matched"}): 1
    }
    assert by_attrs(points["ml.label.delay"], "sum") == {attr_key(**MODEL_ATTRS): 60.0}
    window = monitor.snapshot()["windows"]["5m"]
    assert (window["n_predictions"], window["n_labels"]) == (2, 1)
    unsampled.shutdown()
