"""An OTLP/gRPC receiver inside the test process, bound to 127.0.0.1 only.

oteltest's sinks bind 0.0.0.0, which test servers must not do, so this builds the
gRPC server itself around the generated OTLP servicer bases and keeps every
request exactly as it was sent (resources, links, attributes, data points).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, Metric
from opentelemetry.proto.trace.v1.trace_pb2 import Span

SERVICE_INSTANCE_ID = "service.instance.id"
CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE

T = TypeVar("T")

Attributes = dict[str, Any]


def value_of(value: AnyValue) -> Any:
    """The Python value of an OTLP ``AnyValue`` (arrays become lists)."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [value_of(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    return getattr(value, kind) if kind else None


def attributes(pairs: Iterable[KeyValue]) -> Attributes:
    """OTLP ``KeyValue`` list as a dict."""
    return {kv.key: value_of(kv.value) for kv in pairs}


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, sink: OTLPReceiver) -> None:
        self._sink = sink

    def Export(self, request: Any, context: Any) -> Any:  # the gRPC method's name
        self._sink._add(self._sink._traces, request)
        return trace_service_pb2.ExportTraceServiceResponse()


class _MetricsService(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, sink: OTLPReceiver) -> None:
        self._sink = sink

    def Export(self, request: Any, context: Any) -> Any:  # the gRPC method's name
        self._sink._add(self._sink._metrics, request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


class OTLPReceiver:
    """Collects OTLP trace and metric export requests; use as a context manager."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._traces: list[Any] = []
        self._metrics: list[Any] = []
        self._server = grpc.server(ThreadPoolExecutor(max_workers=4, thread_name_prefix="otlp"))
        # The generated gRPC modules are untyped.
        add_traces = trace_service_pb2_grpc.add_TraceServiceServicer_to_server
        add_metrics = metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server
        add_traces(_TraceService(self), self._server)  # type: ignore[no-untyped-call]  # generated
        add_metrics(_MetricsService(self), self._server)  # type: ignore[no-untyped-call]  # generated
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        if not self.port:
            raise RuntimeError("could not bind an OTLP receiver port on 127.0.0.1")

    @property
    def endpoint(self) -> str:
        """Value for ``OTEL_EXPORTER_OTLP_ENDPOINT`` (with ``OTEL_EXPORTER_OTLP_PROTOCOL=grpc``)."""
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> OTLPReceiver:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(grace=None).wait(5)

    def _add(self, requests: list[Any], request: Any) -> None:
        with self._lock:
            requests.append(request)

    def clear(self) -> None:
        """Forget everything received so far."""
        with self._lock:
            self._traces.clear()
            self._metrics.clear()

    def spans(self) -> list[tuple[Attributes, Span]]:
        """Every span received, with its resource's attributes."""
        with self._lock:
            requests = list(self._traces)
        return [
            (attributes(rs.resource.attributes), span)
            for request in requests
            for rs in request.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        ]

    def metrics(self, name: str) -> list[tuple[Attributes, Metric]]:
        """Every exported instance of metric ``name``, with its resource's attributes."""
        with self._lock:
            requests = list(self._metrics)
        return [
            (attributes(rm.resource.attributes), metric)
            for request in requests
            for rm in request.resource_metrics
            for sm in rm.scope_metrics
            for metric in sm.metrics
            if metric.name == name
        ]

    def metric_points(self, name: str) -> list[tuple[Attributes, Any]]:
        """Every data point of metric ``name`` received, with its resource's attributes."""
        return [
            (resource, point)
            for resource, metric in self.metrics(name)
            for point in getattr(metric, str(metric.WhichOneof("data"))).data_points
        ]

    def gauge_exports(self, prefix: str) -> list[tuple[Attributes, dict[GaugeKey, float]]]:
        """Each process's collections of gauges named ``prefix…``, oldest first.

        One entry per exported resource that carried such a gauge: its resource
        attributes and ``{gauge_key(name, attributes): value}``. Every point of one
        collection comes from one computation, so an entry is a consistent snapshot.
        """
        with self._lock:
            requests = list(self._metrics)
        exports: list[tuple[Attributes, dict[GaugeKey, float]]] = []
        for request in requests:
            for rm in request.resource_metrics:
                values: dict[GaugeKey, float] = {}
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        if (
                            not metric.name.startswith(prefix)
                            or metric.WhichOneof("data") != "gauge"
                        ):
                            continue
                        for point in metric.gauge.data_points:
                            key = gauge_key(metric.name, attributes(point.attributes))
                            values[key] = float(getattr(point, point.WhichOneof("value")))
                if values:
                    exports.append((attributes(rm.resource.attributes), values))
        return exports

    def counter_total(self, name: str) -> float:
        """Sum over every exporting process and attribute set of a cumulative counter's last value.

        The OTLP exporter's default temporality is cumulative, so a stream's latest
        (largest) point is its total; streams are told apart by ``service.instance.id``.
        """
        latest: dict[tuple[Any, ...], float] = {}
        for resource, metric in self.metrics(name):
            assert metric.WhichOneof("data") == "sum", f"{name} is not a counter"
            assert metric.sum.aggregation_temporality == CUMULATIVE, f"{name} is not cumulative"
            for point in metric.sum.data_points:
                stream = (
                    resource.get(SERVICE_INSTANCE_ID),
                    tuple(sorted((k, str(v)) for k, v in attributes(point.attributes).items())),
                )
                value = float(getattr(point, point.WhichOneof("value")))
                latest[stream] = max(latest.get(stream, 0.0), value)
        return sum(latest.values())


GaugeKey = tuple[str, frozenset[tuple[str, Any]]]
"""A gauge series: its metric name and its data point's attributes."""


def gauge_key(name: str, attrs: Attributes) -> GaugeKey:
    """The :data:`GaugeKey` of metric ``name`` with data point attributes ``attrs``."""
    return name, frozenset(attrs.items())


def span_index(
    spans: list[tuple[Attributes, Span]],
) -> dict[tuple[str, str], tuple[Attributes, Span]]:
    """Spans by ``(trace id hex, span id hex)``."""
    return {(span.trace_id.hex(), span.span_id.hex()): (res, span) for res, span in spans}


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    message: str | Callable[[], str],
    interval: float = 0.1,
) -> T:
    """Poll ``probe`` until it returns something truthy (returned), or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() >= deadline:
            detail = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout:.0f}s: {detail}")
        time.sleep(interval)
