"""A Prometheus scrape endpoint for one process's metrics, under OTLP-ingestion names.

Scraping OpenTelemetry's ``PrometheusMetricReader`` gives the names Prometheus' own
OTLP ingestion gives (``ml_predictions_total``, ``ml_prediction_duration_seconds_bucket``,
``target_info``), so the same rules and dashboards work whichever way metrics arrive.

Each process serves its own endpoint from a private ``CollectorRegistry`` (the
serving framework may own the global one), and Prometheus scrapes every process:
counters are per process, so ``sum`` across them is exact. Usage::

    reader = ScrapeEndpointReader(PrometheusEndpoint("127.0.0.1", 9464))
    provider = MeterProvider(metric_readers=[reader])
    # record metrics; Prometheus scrapes http://127.0.0.1:9464/metrics
    provider.shutdown()  # also stops the HTTP server
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from prometheus_client import CollectorRegistry, start_http_server


@dataclass(frozen=True)
class PrometheusEndpoint:
    """Where one process serves ``GET /metrics`` for Prometheus to scrape.

    ``port`` 0 lets the OS pick one (read it back from :attr:`ScrapeEndpointReader.port`).
    """

    host: str
    port: int


class ScrapeEndpointReader(PrometheusMetricReader):
    """A ``PrometheusMetricReader`` that serves its own HTTP endpoint from a private registry.

    Metrics are collected at scrape time (observable gauges run their callbacks
    then). Binding happens in the constructor, so a taken port raises ``OSError``
    at start-up; :meth:`shutdown` (called by ``MeterProvider.shutdown``) stops the
    server and frees the port.
    """

    def __init__(self, endpoint: PrometheusEndpoint) -> None:
        self.registry = CollectorRegistry()
        super().__init__(registry=self.registry)
        try:
            self._server, self._thread = start_http_server(
                endpoint.port, addr=endpoint.host, registry=self.registry
            )
        except OSError:
            super().shutdown()
            raise
        self.host = endpoint.host
        self.port = int(self._server.server_port)

    @property
    def url(self) -> str:
        """The scrape URL of this endpoint."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Unregister from the private registry and stop serving."""
        super().shutdown(timeout_millis=timeout_millis, **kwargs)
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout_millis / 1000.0)
