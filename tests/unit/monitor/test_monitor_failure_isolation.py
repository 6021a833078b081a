"""Telemetry never breaks inference: raising tracers, meters, span processors and exporters."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.metrics import NoOpMeter, NoOpMeterProvider
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from instrumentation import (
    ModelMonitor,
    SQLiteStore,
)
from tests.unit.monitor.monitor_support import (
    BINARY,
    Clock,
    inputs,
    predict,
)

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

    records = predict(monitor, [90.0, 20.0], ids=["tx-1", "tx-2"])
    outcome = monitor.feedback([("tx-1", "fraud")])
    error = ValueError("bad model")
    with pytest.raises(ValueError) as raised, monitor.predict(inputs([1.0])):
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

    records = predict(monitor, [90.0], ids=["tx-1"])
    outcome = monitor.feedback([("tx-1", "fraud")])

    assert [r.prediction_id for r in records] == ["tx-1"]
    assert outcome.results == [("tx-1", "matched")]
    assert store.get_predictions("fraud-test", ["tx-1"])["tx-1"].feedback == "fraud"
    assert any(isinstance(r.exc_info[1], TelemetryBoom) for r in caplog.records if r.exc_info)
    # A failure inside the request still reaches the caller unchanged.
    with pytest.raises(KeyError), monitor.predict(inputs([1.0])):
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

    (record,) = predict(monitor, [90.0])

    assert exporter.calls == 1
    assert store.count_predictions("fraud-test") == 1
    assert monitor.feedback([(record.prediction_id, "fraud")]).results == [
        (record.prediction_id, "matched")
    ]
    assert any("Exception while exporting Span" in r.getMessage() for r in caplog.records)
    provider.shutdown()
