"""Configuration from the environment: defaults, every bad value named, OTLP endpoints."""

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

import instrumentation.telemetry as telemetry
from instrumentation import (
    ConfigError,
    MonitorConfig,
    OTLPSettings,
    StoreURL,
    Window,
    build_meter_provider,
    new_instance_id,
    open_store,
)
from instrumentation.config import (
    DURATION_HELP,
    STORE_URL_HELP,
    parse_duration,
)
from instrumentation.telemetry import build_resource

# --- MonitorConfig ------------------------------------------------------------------------------


def test_defaults_from_an_empty_environment() -> None:
    config = MonitorConfig.from_env({})

    assert config == MonitorConfig()
    assert config == MonitorConfig(
        workers=2,
        trace_sample_rate=1.0,
        store_url=StoreURL(Path(".monitor/store.db")),
        windows=(Window("5m", 300.0), Window("1h", 3600.0), Window("24h", 86400.0)),
        feedback_token=None,
        prediction_ttl=30 * 86400.0,
        max_stored_predictions=5_000_000,
        max_batch=1000,
        max_group_values=50,
        min_group_samples=30,
        psi_threshold=0.2,
        bucket_seconds=60,
        prometheus_port=None,
        prometheus_host="127.0.0.1",
    )


def test_blank_values_mean_the_default() -> None:
    blank = {
        name: "  "
        for name in (
            "MONITOR_WORKERS",
            "MONITOR_TRACE_SAMPLE_RATE",
            "MONITOR_STORE_URL",
            "MONITOR_WINDOWS",
            "MONITOR_PREDICTION_TTL",
            "MONITOR_MAX_BATCH",
            "MONITOR_PROMETHEUS_PORT",
            "MONITOR_PROMETHEUS_HOST",
        )
    }

    assert MonitorConfig.from_env({**blank, "MONITOR_FEEDBACK_TOKEN": ""}) == MonitorConfig()


def test_every_variable_is_read() -> None:
    config = MonitorConfig.from_env(
        {
            "MONITOR_WORKERS": "4",
            "MONITOR_TRACE_SAMPLE_RATE": "0.25",
            "MONITOR_STORE_URL": "sqlite:////var/lib/monitor/store.db",
            "MONITOR_WINDOWS": "90s, 2h ,1w",
            "MONITOR_FEEDBACK_TOKEN": "s3cret",
            "MONITOR_PREDICTION_TTL": "7d",
            "MONITOR_MAX_STORED_PREDICTIONS": "1000",
            "MONITOR_MAX_BATCH": "64",
            "MONITOR_MAX_GROUP_VALUES": "8",
            "MONITOR_MIN_GROUP_SAMPLES": "0",
            "MONITOR_PSI_THRESHOLD": "0.1",
            "MONITOR_BUCKET_SECONDS": "30",
            "MONITOR_PROMETHEUS_PORT": "9464",
            "MONITOR_PROMETHEUS_HOST": "0.0.0.0",
            "MONITOR_SPOOL_DIR": "/var/spool/monitor",
            "MONITOR_SPOOL_MAX_BYTES": "1048576",
        }
    )

    assert config == MonitorConfig(
        workers=4,
        trace_sample_rate=0.25,
        store_url=StoreURL(Path("/var/lib/monitor/store.db")),
        windows=(Window("90s", 90.0), Window("2h", 7200.0), Window("1w", 604800.0)),
        feedback_token="s3cret",
        prediction_ttl=7 * 86400.0,
        max_stored_predictions=1000,
        max_batch=64,
        max_group_values=8,
        min_group_samples=0,
        psi_threshold=0.1,
        bucket_seconds=30,
        prometheus_port=9464,
        prometheus_host="0.0.0.0",
        spool_dir=Path("/var/spool/monitor"),
        spool_max_bytes=1048576,
    )


def test_the_spool_sits_beside_an_sqlite_store_unless_told() -> None:
    assert MonitorConfig.from_env({}).spool_dir == Path(".monitor/spool")
    sqlite = MonitorConfig.from_env({"MONITOR_STORE_URL": "sqlite:////srv/m/store.db"})
    assert sqlite.spool_dir == Path("/srv/m/spool")
    postgres = MonitorConfig.from_env({"MONITOR_STORE_URL": "postgresql://u@db:5432/monitor"})
    assert postgres.spool_dir == Path(".monitor/spool")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("MONITOR_WORKERS", "0", "MONITOR_WORKERS='0': expected a whole number >= 1"),
        ("MONITOR_WORKERS", "two", "MONITOR_WORKERS='two': expected a whole number >= 1"),
        ("MONITOR_WORKERS", "1.5", "MONITOR_WORKERS='1.5': expected a whole number >= 1"),
        (
            "MONITOR_TRACE_SAMPLE_RATE",
            "1.5",
            "MONITOR_TRACE_SAMPLE_RATE='1.5': expected a number from 0.0 to 1.0",
        ),
        (
            "MONITOR_TRACE_SAMPLE_RATE",
            "nan",
            "MONITOR_TRACE_SAMPLE_RATE='nan': expected a number from 0.0 to 1.0",
        ),
        (
            "MONITOR_TRACE_SAMPLE_RATE",
            "half",
            "MONITOR_TRACE_SAMPLE_RATE='half': expected a number from 0.0 to 1.0",
        ),
        (
            "MONITOR_STORE_URL",
            "mysql://app:hunter2@db/monitor",
            f"MONITOR_STORE_URL='mysql://app:***@db/monitor': {STORE_URL_HELP}",
        ),
        (
            "MONITOR_WINDOWS",
            "5m,5m",
            "MONITOR_WINDOWS='5m,5m': window names must be unique",
        ),
        (
            "MONITOR_WINDOWS",
            "5m,an hour",
            f"MONITOR_WINDOWS='an hour': expected a positive duration, {DURATION_HELP}",
        ),
        (
            "MONITOR_WINDOWS",
            "5m,,1h",
            f"MONITOR_WINDOWS='': expected a positive duration, {DURATION_HELP}",
        ),
        (
            "MONITOR_PREDICTION_TTL",
            "forever",
            "MONITOR_PREDICTION_TTL='forever': expected a positive duration, a whole number "
            "followed by s, m, h, d or w (e.g. 90s, 5m, 1h, 30d)",
        ),
        (
            "MONITOR_PREDICTION_TTL",
            "0d",
            f"MONITOR_PREDICTION_TTL='0d': expected a positive duration, {DURATION_HELP}",
        ),
        (
            "MONITOR_MAX_STORED_PREDICTIONS",
            "0",
            "MONITOR_MAX_STORED_PREDICTIONS='0': expected a whole number >= 1",
        ),
        ("MONITOR_MAX_BATCH", "-3", "MONITOR_MAX_BATCH='-3': expected a whole number >= 1"),
        (
            "MONITOR_MAX_GROUP_VALUES",
            "1e3",
            "MONITOR_MAX_GROUP_VALUES='1e3': expected a whole number >= 1",
        ),
        (
            "MONITOR_MIN_GROUP_SAMPLES",
            "-1",
            "MONITOR_MIN_GROUP_SAMPLES='-1': expected a whole number >= 0",
        ),
        (
            "MONITOR_PSI_THRESHOLD",
            "0",
            "MONITOR_PSI_THRESHOLD='0': expected a number from 1e-06 to 100.0",
        ),
        (
            "MONITOR_BUCKET_SECONDS",
            "0",
            "MONITOR_BUCKET_SECONDS='0': expected a whole number >= 1",
        ),
        (
            "MONITOR_PROMETHEUS_PORT",
            "0",
            "MONITOR_PROMETHEUS_PORT='0': expected a port from 1 to 65534 "
            "(one port per worker, MONITOR_WORKERS=2)",
        ),
        (
            "MONITOR_PROMETHEUS_PORT",
            "http",
            "MONITOR_PROMETHEUS_PORT='http': expected a port from 1 to 65534 "
            "(one port per worker, MONITOR_WORKERS=2)",
        ),
        (
            "MONITOR_PROMETHEUS_PORT",
            "9464.0",
            "MONITOR_PROMETHEUS_PORT='9464.0': expected a port from 1 to 65534 "
            "(one port per worker, MONITOR_WORKERS=2)",
        ),
        (
            "MONITOR_PROMETHEUS_PORT",
            "65535",  # the second worker would need 65536
            "MONITOR_PROMETHEUS_PORT='65535': expected a port from 1 to 65534 "
            "(one port per worker, MONITOR_WORKERS=2)",
        ),
    ],
)
def test_a_bad_value_raises_naming_the_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        MonitorConfig.from_env({variable: value})

    assert str(raised.value) == message
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize(
    ("workers", "port", "message"),
    [
        ("1", "65535", None),
        ("1", "65536", "MONITOR_PROMETHEUS_PORT='65536': expected a port from 1 to 65535"),
        (
            "4",
            "65533",
            "MONITOR_PROMETHEUS_PORT='65533': expected a port from 1 to 65532 "
            "(one port per worker, MONITOR_WORKERS=4)",
        ),
        ("4", "65532", None),
    ],
)
def test_the_prometheus_port_leaves_room_for_every_worker(
    workers: str, port: str, message: str | None
) -> None:
    env = {"MONITOR_WORKERS": workers, "MONITOR_PROMETHEUS_PORT": port}
    if message is None:
        assert MonitorConfig.from_env(env).prometheus_port == int(port)
        return
    with pytest.raises(ConfigError) as raised:
        MonitorConfig.from_env(env)

    assert str(raised.value) == message


def test_a_window_shorter_than_a_bucket_is_refused_naming_both_variables() -> None:
    with pytest.raises(ConfigError) as raised:
        MonitorConfig.from_env({"MONITOR_WINDOWS": "90s,1h", "MONITOR_BUCKET_SECONDS": "120"})

    assert str(raised.value) == (
        "MONITOR_WINDOWS='90s,1h': window 90s is shorter than MONITOR_BUCKET_SECONDS=120"
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("30d", 2_592_000.0),
        ("2w", 1_209_600.0),
        (" 15 m ", 900.0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text, variable="X") == seconds


@pytest.mark.parametrize("text", ["", "0s", "-5m", "1.5h", "5", "5M", "5 min", "m5", "1y"])
def test_bad_durations_name_the_variable(text: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_duration(text, variable="MY_VAR")

    assert str(raised.value) == f"MY_VAR={text!r}: expected a positive duration, {DURATION_HELP}"


# --- StoreURL -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("sqlite:///.monitor/store.db", ".monitor/store.db"),
        ("sqlite:////var/lib/store.db", "/var/lib/store.db"),
    ],
)
def test_store_url_parse(text: str, path: str) -> None:
    assert StoreURL.parse(text) == StoreURL(Path(path))
    assert not StoreURL.parse(text).is_postgres


@pytest.mark.parametrize(
    ("text", "conninfo", "schema", "described"),
    [
        (
            "postgresql://app:s3cret@db.internal:5432/ml?sslmode=require",
            "postgresql://app:s3cret@db.internal:5432/ml?sslmode=require",
            "monitor",
            "postgresql://app:***@db.internal:5432/ml (schema monitor)",
        ),
        (
            "postgres://app@db/ml?schema=fraud_v2&connect_timeout=3",
            "postgres://app@db/ml?connect_timeout=3",
            "fraud_v2",
            "postgres://app@db/ml (schema fraud_v2)",
        ),
        (
            "postgresql:///ml?host=/run/postgresql&password=pw",
            "postgresql:///ml?host=%2Frun%2Fpostgresql&password=pw",
            "monitor",
            "postgresql:///ml (schema monitor)",
        ),
    ],
)
def test_store_url_parses_postgres_urls_for_libpq(
    text: str, conninfo: str, schema: str, described: str
) -> None:
    url = StoreURL.parse(text)

    assert (url.is_postgres, url.path, url.conninfo, url.schema) == (True, None, conninfo, schema)
    assert url.describe() == described
    assert "s3cret" not in repr(url)


@pytest.mark.parametrize(
    ("text", "shown", "problem"),
    [
        (
            "postgresql://u:pw@db:port/ml",
            "postgresql://u:***@db:port/ml",
            "the port is not a number",
        ),
        ("postgresql://u:pw@db:5432", "postgresql://u:***@db:5432", "no database name"),
        ("postgres://u@db/a/b?password=pw", "postgres://u@db/a/b?password=***", "no database name"),
    ],
)
def test_bad_postgres_urls_name_the_variable_and_hide_the_password(
    text: str, shown: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        StoreURL.parse(text)

    assert str(raised.value) == f"MONITOR_STORE_URL={shown!r}: {problem}; {STORE_URL_HELP}"


def test_a_postgres_schema_must_be_a_plain_identifier() -> None:
    with pytest.raises(ConfigError) as raised:
        StoreURL.parse("postgresql://u:pw@db/ml?schema=Fraud;drop")

    assert str(raised.value) == (
        "MONITOR_STORE_URL='postgresql://u:***@db/ml?schema=Fraud;drop': schema 'Fraud;drop' "
        "must be lower-case letters, digits and _ (at most 63, not starting with a digit)"
    )


@pytest.mark.parametrize("text", ["sqlite:///", "sqlite://x.db", "mysql://db", "", "store.db"])
def test_store_url_rejects_other_schemes_naming_the_variable(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^MONITOR_STORE_URL=") as raised:
        StoreURL.parse(text)

    assert str(raised.value) == f"MONITOR_STORE_URL={text!r}: {STORE_URL_HELP}"
    with pytest.raises(ConfigError, match=r"^OTHER_VAR="):
        StoreURL.parse(text, variable="OTHER_VAR")


def test_store_url_describes_an_absolute_path() -> None:
    assert StoreURL.parse("sqlite:////tmp/x/store.db").describe() == "/tmp/x/store.db"
    relative = StoreURL.parse("sqlite:///.monitor/store.db").describe()
    assert relative == str(Path(".monitor/store.db").resolve())


def test_open_store_opens_sqlite(tmp_path: Path) -> None:
    store = open_store(StoreURL.parse(f"sqlite:///{tmp_path}/nested/store.db"))
    assert store.count_predictions("m") == 0
    assert (tmp_path / "nested" / "store.db").exists()
    store.close()


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


def test_a_store_this_version_cannot_open_fails_at_start_up() -> None:
    with pytest.raises(ConfigError) as raised:
        MonitorConfig.from_env({"MONITOR_STORE_URL": "redis://cache:6379/0"})

    assert str(raised.value) == (
        "MONITOR_STORE_URL='redis://cache:6379/0': the redis store is not available in this "
        f"version; {STORE_URL_HELP}"
    )


def test_rollup_after_is_a_duration() -> None:
    assert MonitorConfig.from_env({"MONITOR_ROLLUP_AFTER": "3h"}).rollup_after == 3 * 3600.0
    with pytest.raises(ConfigError) as raised:
        MonitorConfig.from_env({"MONITOR_ROLLUP_AFTER": "soon"})
    assert str(raised.value).startswith("MONITOR_ROLLUP_AFTER='soon': expected a positive duration")
