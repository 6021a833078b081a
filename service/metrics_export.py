"""Where a worker's metrics go: OTLP as configured, and its own Prometheus scrape endpoint.

The service (not the library) builds the meter provider and installs it globally,
so BentoML's ASGI middleware also emits ``http.server.*`` metrics through it.
"""

from __future__ import annotations

import logging

from opentelemetry.sdk.metrics import MeterProvider

from instrumentation import build_meter_provider
from service import SERVICE_NAME
from service.bentoml_internals import bentoml_worker_index
from service.settings import Settings

logger = logging.getLogger(__name__)


def meter_provider(settings: Settings, instance_id: str) -> MeterProvider:
    """OTLP export as configured, plus this worker's scrape endpoint when one is asked for.

    A scrape port that cannot be bound is logged, not raised: telemetry never takes a
    worker down (Prometheus then shows ``up == 0`` for that endpoint, which the shipped
    ``ModelMonitorTargetDown`` rule alerts on).
    """
    index = bentoml_worker_index()
    endpoint = settings.prometheus_endpoint(index)
    if endpoint is not None:
        try:
            return build_meter_provider(
                settings.otlp,
                instance_id=instance_id,
                default_service_name=SERVICE_NAME,
                prometheus=endpoint,
            )
        except OSError as exc:
            logger.error(
                "MONITOR_PROMETHEUS_PORT=%s: worker %s cannot serve metrics on %s:%s (%s); "
                "it serves requests without a scrape endpoint",
                settings.monitor.prometheus_port,
                index or 1,
                endpoint.host,
                endpoint.port,
                exc.strerror or exc,
            )
    return build_meter_provider(
        settings.otlp, instance_id=instance_id, default_service_name=SERVICE_NAME
    )
