"""The recording lifecycle: inputs checked first, outputs taken exactly once, none is an error."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from instrumentation import InvalidInput, ModelMonitor, PredictionInput, SQLiteStore
from instrumentation.recorder import NO_OUTPUTS, NO_OUTPUTS_MESSAGE, SET_OUTPUTS_TWICE_ERROR
from tests.unit.monitor.monitor_support import (
    MODEL_ATTRS,
    attr_key,
    by_attrs,
    inputs,
    metrics,
    spans,
)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        pytest.param(
            PredictionInput({"amount": 1.0}),
            "instances[1].features.channel: required feature is missing",
            id="missing-feature",
        ),
        pytest.param(
            PredictionInput({"amount": "lots", "channel": "web"}),
            "instances[1].features.amount: expected a number, got str",
            id="wrong-type",
        ),
        pytest.param(
            PredictionInput({"amount": 1.0, "channel": "web"}, groups={"planet": "mars"}),
            "instances[1].groups.planet: unknown sensitive attribute; expected: region",
            id="unknown-group",
        ),
    ],
)
def test_invalid_input_raises_before_any_span_count_or_row(
    monitor: ModelMonitor,
    store: SQLiteStore,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
    row: PredictionInput,
    message: str,
) -> None:
    with pytest.raises(InvalidInput) as raised:
        monitor.predict([*inputs([1.0]), row])

    assert str(raised.value) == message
    assert span_exporter.get_finished_spans() == ()
    points = metrics(metric_reader)
    assert "ml.prediction.errors" not in points
    assert "ml.prediction.duration" not in points
    assert store.count_predictions("fraud-test") == 0


def test_a_second_set_outputs_raises_at_once_and_keeps_the_first(
    monitor: ModelMonitor, store: SQLiteStore, metric_reader: InMemoryMetricReader
) -> None:
    with monitor.predict(inputs([90.0], ids=["tx-1"])) as rec:
        first = rec.set_outputs(labels=["fraud"], scores=[[0.1, 0.9]])
        with pytest.raises(RuntimeError) as raised:
            rec.set_outputs(labels=["legit"], scores=[[0.9, 0.1]])

    assert str(raised.value) == SET_OUTPUTS_TWICE_ERROR
    assert SET_OUTPUTS_TWICE_ERROR == (
        "set_outputs: outputs were already recorded for this prediction"
    )
    assert rec.records == first
    stored = store.get_predictions("fraud-test", ["tx-1"])
    assert stored["tx-1"].label == "fraud"
    assert store.count_predictions("fraud-test") == 1
    points = metrics(metric_reader)
    assert by_attrs(points["ml.predictions"]) == {attr_key(**MODEL_ATTRS): 1}
    assert "ml.prediction.errors" not in points


def test_a_block_left_without_outputs_is_recorded_as_an_error(
    monitor: ModelMonitor,
    store: SQLiteStore,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
) -> None:
    with monitor.predict(inputs([90.0])):
        pass  # forgot set_outputs

    (span,) = spans(span_exporter, "ml.predict")
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == NO_OUTPUTS_MESSAGE
    assert dict(span.attributes or {}) == {
        **MODEL_ATTRS,
        "ml.prediction.count": 1,
        "error.type": "NoOutputs",
    }
    assert NO_OUTPUTS == "NoOutputs"
    points = metrics(metric_reader)
    error_attrs = {**MODEL_ATTRS, "error.type": "NoOutputs"}
    assert by_attrs(points["ml.prediction.errors"]) == {attr_key(**error_attrs): 1}
    assert by_attrs(points["ml.prediction.duration"], "count") == {attr_key(**error_attrs): 1}
    assert "ml.predictions" not in points
    assert store.count_predictions("fraud-test") == 0


def test_rejected_outputs_leave_the_recorder_open_for_valid_ones(
    monitor: ModelMonitor, metric_reader: InMemoryMetricReader
) -> None:
    with monitor.predict(inputs([90.0])) as rec:
        with pytest.raises(ValueError, match=r"^set_outputs: labels\[0\]='maybe' is not one of"):
            rec.set_outputs(labels=["maybe"])
        (record,) = rec.set_outputs(labels=["fraud"])

    assert record.label == "fraud"
    points = metrics(metric_reader)
    assert by_attrs(points["ml.predictions"]) == {attr_key(**MODEL_ATTRS): 1}
    assert "ml.prediction.errors" not in points
