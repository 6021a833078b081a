"""OpenTelemetry providers and exporters from the standard ``OTEL_*`` environment.

The library never installs global providers: :func:`build_meter_provider` returns
one for the caller to pass to :class:`~instrumentation.monitor.ModelMonitor` (and,
if it wishes, to set globally). With no OTLP endpoint configured nothing is
exported and nothing fails. Asked for a :class:`PrometheusEndpoint`, the provider
also serves this process's metrics for Prometheus to scrape.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider

from instrumentation.config import ConfigError
from instrumentation.environment import (
    OTEL_EXPORTER_OTLP_ENDPOINT,
    OTEL_EXPORTER_OTLP_METRICS_ENDPOINT,
    OTEL_EXPORTER_OTLP_METRICS_PROTOCOL,
    OTEL_EXPORTER_OTLP_PROTOCOL,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
    OTEL_METRIC_EXPORT_INTERVAL,
    Variable,
)
from instrumentation.telemetry.prometheus import PrometheusEndpoint, ScrapeEndpointReader

logger = logging.getLogger(__name__)

Protocol = Literal["grpc", "http/protobuf"]
PROTOCOLS: tuple[Protocol, ...] = ("grpc", "http/protobuf")
Signal = Literal["traces", "metrics"]
_SIGNAL_PROTOCOL: dict[Signal, Variable] = {
    "traces": OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
    "metrics": OTEL_EXPORTER_OTLP_METRICS_PROTOCOL,
}
_SIGNAL_ENDPOINT: dict[Signal, Variable] = {
    "traces": OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    "metrics": OTEL_EXPORTER_OTLP_METRICS_ENDPOINT,
}


@dataclass(frozen=True)
class OTLPSettings:
    """Where and how to send telemetry, read from the standard variables."""

    endpoint: str | None
    traces_protocol: Protocol
    traces_endpoint: str | None
    metrics_protocol: Protocol
    metrics_endpoint: str | None
    export_interval_s: float

    @property
    def enabled(self) -> bool:
        """True when some endpoint is configured."""
        return bool(self.traces_endpoint or self.metrics_endpoint)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OTLPSettings:
        """Read ``OTEL_EXPORTER_OTLP_*`` and ``OTEL_METRIC_EXPORT_INTERVAL``; raise on bad ones."""
        traces_protocol = _protocol(env, "traces")
        metrics_protocol = _protocol(env, "metrics")
        base = OTEL_EXPORTER_OTLP_ENDPOINT.raw(env).rstrip("/") or None
        interval_raw = OTEL_METRIC_EXPORT_INTERVAL.raw(env)
        try:
            interval_ms = float(interval_raw)
        except ValueError:
            interval_ms = -1.0
        if not (0 < interval_ms < math.inf):  # also rejects nan, which compares False
            raise ConfigError(
                f"{OTEL_METRIC_EXPORT_INTERVAL.name}={interval_raw!r}: expected milliseconds > 0"
            )
        return cls(
            endpoint=base,
            traces_protocol=traces_protocol,
            traces_endpoint=_signal_endpoint(env, base, traces_protocol, "traces"),
            metrics_protocol=metrics_protocol,
            metrics_endpoint=_signal_endpoint(env, base, metrics_protocol, "metrics"),
            export_interval_s=interval_ms / 1000.0,
        )


def _protocol(env: Mapping[str, str], signal: Signal) -> Protocol:
    """The signal's own ``OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL``, else the general one."""
    variable = _SIGNAL_PROTOCOL[signal]
    if not variable.raw(env):
        variable = OTEL_EXPORTER_OTLP_PROTOCOL
    raw = variable.raw(env)
    protocol = next((p for p in PROTOCOLS if p == raw), None)
    if protocol is None:
        raise ConfigError(f"{variable.name}={raw!r}: expected one of grpc, http/protobuf")
    return protocol


def _signal_endpoint(
    env: Mapping[str, str], base: str | None, protocol: str, signal: Signal
) -> str | None:
    explicit = _SIGNAL_ENDPOINT[signal].raw(env)
    if explicit:
        return explicit
    if base is None:
        return None
    # The OTLP spec: over HTTP the per-signal path is appended to the base endpoint.
    return f"{base}/v1/{signal}" if protocol == "http/protobuf" else base


def new_instance_id() -> str:
    """A per-process ``service.instance.id``: host, pid and a random suffix (pids get reused)."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def build_resource(instance_id: str, *, default_service_name: str | None = None) -> Resource:
    """Resource from ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES`` plus the instance id.

    ``default_service_name`` replaces the SDK's ``unknown_service`` fallback only when
    the environment names no service, so metrics and the serving framework's spans
    carry the same ``service.name``.
    """
    resource = Resource.create({SERVICE_INSTANCE_ID: instance_id})
    name = str(resource.attributes.get(SERVICE_NAME, ""))
    if default_service_name and name.startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: default_service_name}))
    return resource


def _metric_exporter(settings: OTLPSettings) -> MetricExporter:
    if settings.metrics_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter as GrpcExporter,
        )

        endpoint = settings.metrics_endpoint or ""
        return GrpcExporter(endpoint=endpoint, insecure=endpoint.startswith("http://"))
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HttpExporter,
    )

    return HttpExporter(endpoint=settings.metrics_endpoint)


def build_meter_provider(
    settings: OTLPSettings,
    *,
    instance_id: str,
    default_service_name: str | None = None,
    prometheus: PrometheusEndpoint | None = None,
) -> MeterProvider:
    """A MeterProvider exporting over OTLP every ``export_interval_s``, or exporting nothing.

    Export runs in the reader's own thread with the exporter's timeout, so a down
    or slow backend delays only that thread, never a request.

    With ``prometheus``, the provider also serves ``GET /metrics`` on that host and
    port (a :class:`~instrumentation.telemetry.prometheus.ScrapeEndpointReader` with its own
    registry); a port that cannot be bound raises ``OSError`` here, and
    ``provider.shutdown()`` stops the server.
    """
    readers: list[MetricReader] = []
    if prometheus is not None:  # first: if binding fails, no export thread was started
        readers.append(ScrapeEndpointReader(prometheus))
    if settings.metrics_endpoint:
        readers.append(
            PeriodicExportingMetricReader(
                _metric_exporter(settings),
                export_interval_millis=settings.export_interval_s * 1000.0,
            )
        )
    resource = build_resource(instance_id, default_service_name=default_service_name)
    return MeterProvider(metric_readers=readers, resource=resource)


def flush_and_shutdown(
    *,
    meter_provider: MeterProvider,
    tracer_provider: TracerProvider | None = None,
    budget_s: float = 8.0,
) -> bool:
    """Export the last spans and metrics, then shut the meter provider down, within a budget.

    The SDK's own timeouts are not a bound here: against an unreachable or
    blackholed backend a metric flush takes two exporter timeouts (20 s by
    default), longer than a typical grace period. So the work runs in a daemon
    thread and the caller waits at most ``budget_s``; returns False (and logs)
    when the budget ran out and the last interval may be lost.
    """

    def work() -> None:
        try:
            if tracer_provider is not None:
                tracer_provider.force_flush(int(budget_s * 1000))
            meter_provider.shutdown(timeout_millis=budget_s * 1000)
        except Exception:
            logger.exception("telemetry flush on shutdown failed")

    thread = threading.Thread(target=work, name="telemetry-shutdown", daemon=True)
    thread.start()
    thread.join(budget_s)
    if thread.is_alive():
        logger.warning(
            "telemetry backend did not take the last export within %.0fs; it may be lost",
            budget_s,
        )
        return False
    return True
