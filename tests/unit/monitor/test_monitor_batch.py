"""The ml.predict.batch span: a root of its own trace, linked to every request it served."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import INVALID_SPAN_CONTEXT, StatusCode

from instrumentation import BatchedRequest, ModelMonitor
from instrumentation.telemetry.batch import MAX_LINKS_PER_BATCH
from tests.unit.monitor.monitor_support import MODEL_ATTRS, predict, spans


def test_a_batch_span_is_a_root_linking_each_request_it_served(
    monitor: ModelMonitor, tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> None:
    predict(monitor, [90.0, 20.0])
    predict(monitor, [30.0])
    first, second = (s.context for s in spans(span_exporter, "ml.predict"))
    stale = tracer_provider.get_tracer("dispatcher").start_span("first request ever")
    with (
        trace.use_span(stale, end_on_exit=True),
        monitor.batch([BatchedRequest(first, 2), BatchedRequest(second, 1)]),
    ):
        pass

    (batch,) = spans(span_exporter, "ml.predict.batch")
    assert batch.parent is None  # never the dispatcher's current (stale) span
    others = {first.trace_id, second.trace_id, stale.get_span_context().trace_id}
    assert batch.context.trace_id not in others
    assert dict(batch.attributes or {}) == {
        **MODEL_ATTRS,
        "ml.batch.rows": 3,
        "ml.batch.requests": 2,
        "ml.batch.links_dropped": 0,
    }
    assert [(link.context, dict(link.attributes or {})) for link in batch.links] == [
        (first, {"ml.prediction.count": 2}),
        (second, {"ml.prediction.count": 1}),
    ]


def test_links_are_capped_and_the_rest_counted(
    monitor: ModelMonitor, span_exporter: InMemorySpanExporter
) -> None:
    for _ in range(MAX_LINKS_PER_BATCH + 3):
        predict(monitor, [1.0])
    contexts = [s.context for s in spans(span_exporter, "ml.predict")]
    # A request whose span could not start has no valid context: counted, not linked.
    requests = [BatchedRequest(c, 1) for c in contexts] + [BatchedRequest(INVALID_SPAN_CONTEXT, 1)]
    with monitor.batch(requests):
        pass

    (batch,) = spans(span_exporter, "ml.predict.batch")
    assert [link.context for link in batch.links] == contexts[:MAX_LINKS_PER_BATCH]
    assert batch.attributes is not None
    assert batch.attributes["ml.batch.requests"] == MAX_LINKS_PER_BATCH + 4
    assert batch.attributes["ml.batch.links_dropped"] == 4


def test_a_failed_model_call_marks_the_batch_span_and_propagates(
    monitor: ModelMonitor, span_exporter: InMemorySpanExporter
) -> None:
    predict(monitor, [1.0])
    (request,) = (s.context for s in spans(span_exporter, "ml.predict"))
    error = ValueError("model exploded")
    with pytest.raises(ValueError) as raised, monitor.batch([BatchedRequest(request, 1)]):
        raise error

    assert raised.value is error
    (batch,) = spans(span_exporter, "ml.predict.batch")
    assert batch.status.status_code is StatusCode.ERROR
    assert batch.attributes is not None
    assert batch.attributes["error.type"] == "ValueError"
