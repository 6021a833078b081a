"""The scrape endpoint: OTLP-ingestion names, a private registry, a port freed on shutdown."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import prometheus_client
import pytest
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider

from harness.serving import free_port
from instrumentation import OTLPSettings, PrometheusEndpoint, build_meter_provider
from instrumentation.telemetry import gauge_table as gauges
from instrumentation.telemetry import names
from instrumentation.telemetry.prometheus import ScrapeEndpointReader


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def provider(port: int) -> Iterator[MeterProvider]:
    """A provider serving its metrics on ``port`` (and exporting nothing over OTLP)."""
    built = build_meter_provider(
        OTLPSettings.from_env({}),
        instance_id="host-1-abc",
        default_service_name="model_monitor",
        prometheus=PrometheusEndpoint("127.0.0.1", port),
    )
    yield built
    built.shutdown()


def scrape(port: int) -> str:
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5.0)
    assert response.status_code == 200
    return response.text


def samples(text: str) -> dict[str, float]:
    """``name{labels}`` → value of every sample line, labels without the scope ones."""
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            found[series.replace(',otel_scope_name="instrumentation"', "")] = float(value)
    return found


def test_names_are_the_ones_prometheus_otlp_ingestion_gives(
    provider: MeterProvider, port: int
) -> None:
    meter = provider.get_meter(names.INSTRUMENTATION_SCOPE)
    attrs = {names.ATTR_MODEL_NAME: "m", names.ATTR_MODEL_VERSION: "v1"}
    meter.create_counter(names.METRIC_PREDICTIONS, unit="{prediction}").add(3, attrs)
    meter.create_histogram(
        names.METRIC_PREDICTION_DURATION, unit="s", explicit_bucket_boundaries_advisory=[0.1]
    ).record(0.05, attrs)

    def accuracy(options: CallbackOptions) -> list[Observation]:
        return [Observation(0.75, {**attrs, names.ATTR_WINDOW: "1h"})]

    def accuracy_samples(options: CallbackOptions) -> list[Observation]:
        return [Observation(200, {**attrs, names.ATTR_WINDOW: "1h"})]

    accuracy_figure = gauges.QUALITY_ACCURACY
    meter.create_observable_gauge(
        accuracy_figure.value.name, callbacks=[accuracy], unit=accuracy_figure.value.unit
    )
    meter.create_observable_gauge(
        accuracy_figure.samples.name,
        callbacks=[accuracy_samples],
        unit=accuracy_figure.samples.unit,
    )

    text = scrape(port)

    assert "# TYPE ml_predictions_total counter" in text
    assert "# TYPE ml_prediction_duration_seconds histogram" in text
    model = 'ml_model_name="m",ml_model_version="v1"'
    scope = 'otel_scope_schema_url="",otel_scope_version=""'
    values = samples(text)
    assert values[f"ml_predictions_total{{{model},{scope}}}"] == 3.0
    assert values[f'ml_prediction_duration_seconds_bucket{{le="0.1",{model},{scope}}}'] == 1.0
    assert values[f'ml_prediction_duration_seconds_bucket{{le="+Inf",{model},{scope}}}'] == 1.0
    assert values[f'ml_quality_accuracy{{{model},ml_window="1h",{scope}}}'] == 0.75
    assert values[f'ml_quality_accuracy_samples{{{model},ml_window="1h",{scope}}}'] == 200.0
    (target_info,) = [line for line in text.splitlines() if line.startswith("target_info{")]
    assert 'service_instance_id="host-1-abc"' in target_info
    assert 'service_name="model_monitor"' in target_info


def test_each_endpoint_has_its_own_registry(provider: MeterProvider, port: int) -> None:
    """Two providers in one process (or a framework's own metrics) never collide."""
    second_port = free_port()
    second = build_meter_provider(
        OTLPSettings.from_env({}),
        instance_id="host-1-def",
        prometheus=PrometheusEndpoint("127.0.0.1", second_port),
    )
    try:
        for built, rows in ((provider, 1), (second, 5)):
            built.get_meter("t").create_counter(names.METRIC_PREDICTIONS).add(rows)

        first_text = scrape(port)
        second_text = scrape(second_port)
    finally:
        second.shutdown()

    def predictions(text: str) -> list[float]:
        return [v for k, v in samples(text).items() if k.startswith("ml_predictions_total{")]

    assert predictions(first_text) == [1.0]
    assert predictions(second_text) == [5.0]
    assert 'service_instance_id="host-1-abc"' in first_text
    assert 'service_instance_id="host-1-def"' in second_text
    # Nothing was registered in prometheus_client's global registry (BentoML's /metrics).
    assert prometheus_client.REGISTRY.get_sample_value("ml_predictions_total") is None


def test_shutdown_stops_serving_and_frees_the_port() -> None:
    reader = ScrapeEndpointReader(PrometheusEndpoint("127.0.0.1", 0))
    provider = MeterProvider(metric_readers=[reader])
    assert reader.url == f"http://127.0.0.1:{reader.port}/metrics"
    scrape(reader.port)

    provider.shutdown()

    with pytest.raises(httpx.TransportError):
        httpx.get(reader.url, timeout=2.0)
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind
        sock.bind(("127.0.0.1", reader.port))  # nothing listens there any more
        sock.listen()


def test_a_taken_port_raises_at_construction() -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]

        with pytest.raises(OSError):
            build_meter_provider(
                OTLPSettings.from_env({}),
                instance_id="i",
                prometheus=PrometheusEndpoint("127.0.0.1", port),
            )


def test_ipv6_hosts_are_bracketed_in_the_url() -> None:
    reader = ScrapeEndpointReader.__new__(ScrapeEndpointReader)
    reader.host, reader.port = "::1", 9464

    assert reader.url == "http://[::1]:9464/metrics"
