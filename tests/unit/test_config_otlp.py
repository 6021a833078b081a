"""OTLP settings from the standard ``OTEL_*`` variables; the meter provider they build."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetricExporter,
)
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter as HttpMetricExporter,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import instrumentation.telemetry.providers as telemetry
from instrumentation import (
    ConfigError,
    OTLPSettings,
    build_meter_provider,
    new_instance_id,
)
from instrumentation.telemetry.providers import build_resource

# --- OTLPSettings -------------------------------------------------------------------------------


def test_otlp_without_an_endpoint_is_disabled() -> None:
    settings = OTLPSettings.from_env({})

    assert settings == OTLPSettings(
        endpoint=None,
        traces_protocol="http/protobuf",
        traces_endpoint=None,
        metrics_protocol="http/protobuf",
        metrics_endpoint=None,
        export_interval_s=60.0,
    )
    assert settings.enabled is False


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"},
            OTLPSettings(
                "http://collector:4318",
                "http/protobuf",
                "http://collector:4318/v1/traces",
                "http/protobuf",
                "http://collector:4318/v1/metrics",
                60.0,
            ),
            id="http-default-appends-signal-paths",
        ),
        pytest.param(
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_METRIC_EXPORT_INTERVAL": "5000",
            },
            OTLPSettings(
                "http://collector:4317",
                "grpc",
                "http://collector:4317",
                "grpc",
                "http://collector:4317",
                5.0,
            ),
            id="grpc-uses-the-base-endpoint",
        ),
        pytest.param(
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://metrics:9090/api/otlp",
            },
            OTLPSettings(
                "http://collector:4318",
                "http/protobuf",
                "http://collector:4318/v1/traces",
                "http/protobuf",
                "http://metrics:9090/api/otlp",
                60.0,
            ),
            id="explicit-signal-endpoint-is-used-as-is",
        ),
        pytest.param(
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://jaeger:4318/v1/traces"},
            OTLPSettings(
                None, "http/protobuf", "http://jaeger:4318/v1/traces", "http/protobuf", None, 60.0
            ),
            id="traces-only",
        ),
        pytest.param(
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
                "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://collector:4317",
            },
            OTLPSettings(
                "http://collector:4318",
                "http/protobuf",
                "http://collector:4318/v1/traces",
                "grpc",
                "http://collector:4317",
                60.0,
            ),
            id="metrics-protocol-leaves-traces-alone",
        ),
    ],
)
def test_otlp_endpoints_per_signal(env: dict[str, str], expected: OTLPSettings) -> None:
    settings = OTLPSettings.from_env(env)

    assert settings == expected
    assert settings.enabled is True


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
            "OTEL_EXPORTER_OTLP_PROTOCOL='http/json': expected one of grpc, http/protobuf",
        ),
        (
            {"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "thrift"},
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL='thrift': expected one of grpc, http/protobuf",
        ),
        (
            {"OTEL_METRIC_EXPORT_INTERVAL": "0"},
            "OTEL_METRIC_EXPORT_INTERVAL='0': expected milliseconds > 0",
        ),
        (
            {"OTEL_METRIC_EXPORT_INTERVAL": "soon"},
            "OTEL_METRIC_EXPORT_INTERVAL='soon': expected milliseconds > 0",
        ),
        (
            {"OTEL_METRIC_EXPORT_INTERVAL": "nan"},
            "OTEL_METRIC_EXPORT_INTERVAL='nan': expected milliseconds > 0",
        ),
        (
            {"OTEL_METRIC_EXPORT_INTERVAL": "inf"},
            "OTEL_METRIC_EXPORT_INTERVAL='inf': expected milliseconds > 0",
        ),
    ],
)
def test_otlp_bad_values_raise_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        OTLPSettings.from_env(env)

    assert str(raised.value) == message


class _ReaderSpy:
    """Stands in for PeriodicExportingMetricReader: records its arguments, keeps metrics."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, float]] = []
        self.readers: list[InMemoryMetricReader] = []

    def __call__(self, exporter: Any, *, export_interval_millis: float) -> InMemoryMetricReader:
        self.calls.append((exporter, export_interval_millis))
        self.readers.append(InMemoryMetricReader())
        return self.readers[-1]


@pytest.fixture
def reader_spy(monkeypatch: pytest.MonkeyPatch, isolated_env: Path) -> _ReaderSpy:
    spy = _ReaderSpy()
    monkeypatch.setattr(telemetry, "PeriodicExportingMetricReader", spy)
    return spy


def _count_one(provider: MeterProvider) -> None:
    provider.get_meter("test").create_counter("test.count").add(1)


def test_no_endpoint_builds_a_provider_that_exports_nothing_without_error(
    reader_spy: _ReaderSpy,
) -> None:
    provider = build_meter_provider(OTLPSettings.from_env({}), instance_id="host-1-abc")

    _count_one(provider)
    assert provider.force_flush(1000) is True
    provider.shutdown()
    assert reader_spy.calls == []


@pytest.mark.parametrize(
    ("env", "exporter_type"),
    [
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, GrpcMetricExporter),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, HttpMetricExporter),
    ],
)
def test_an_endpoint_builds_one_periodic_reader_with_the_instance_id(
    reader_spy: _ReaderSpy, env: dict[str, str], exporter_type: type
) -> None:
    settings = OTLPSettings.from_env(
        {
            **env,
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
            "OTEL_METRIC_EXPORT_INTERVAL": "1500",
        }
    )

    provider = build_meter_provider(settings, instance_id="host-1-abc")
    _count_one(provider)

    ((exporter, interval),) = reader_spy.calls
    assert isinstance(exporter, exporter_type)
    assert interval == 1500.0
    data = reader_spy.readers[0].get_metrics_data()
    assert data is not None
    (resource_metrics,) = data.resource_metrics
    assert resource_metrics.resource.attributes["service.instance.id"] == "host-1-abc"
    provider.shutdown()
    exporter.shutdown()


def test_instance_ids_are_unique_per_call() -> None:
    ids: Sequence[str] = [new_instance_id() for _ in range(3)]

    assert len(set(ids)) == 3
    assert all(str(os.getpid()) in i.split("-") for i in ids)


def test_resource_defaults_service_name_only_when_the_environment_names_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    plain = build_resource("i-1", default_service_name="model_monitor").attributes
    assert (plain["service.name"], plain["service.instance.id"]) == ("model_monitor", "i-1")

    monkeypatch.setenv("OTEL_SERVICE_NAME", "fraud-api")
    named = build_resource("i-1", default_service_name="model_monitor").attributes
    assert named["service.name"] == "fraud-api"
