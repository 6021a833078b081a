"""The monitor's tracer and meter are named as OpenTelemetry's own instrumentations name theirs."""

from __future__ import annotations

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import instrumentation
from instrumentation import ModelMonitor
from tests.unit.monitor.monitor_support import predict

SCOPE = ("instrumentation", instrumentation.__version__, "https://opentelemetry.io/schemas/1.26.0")


def test_spans_and_metrics_carry_the_package_name_version_and_schema_url(
    monitor: ModelMonitor, span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader
) -> None:
    predict(monitor, [10.0])

    (span,) = span_exporter.get_finished_spans()
    scope = span.instrumentation_scope
    assert scope is not None
    assert (scope.name, scope.version, scope.schema_url) == SCOPE
    data = metric_reader.get_metrics_data()
    assert data is not None
    scopes = {
        (m.scope.name, m.scope.version, m.scope.schema_url)
        for resource in data.resource_metrics
        for m in resource.scope_metrics
    }
    assert scopes == {SCOPE}
