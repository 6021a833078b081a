"""``MONITOR_*`` configuration: defaults, every variable read, every bad value named."""

from __future__ import annotations

from pathlib import Path

import pytest

from instrumentation import (
    ConfigError,
    MonitorConfig,
    StoreURL,
    Window,
)
from instrumentation.config import (
    DURATION_HELP,
    STORE_URL_HELP,
    parse_duration,
)

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


def test_rollup_after_is_a_duration() -> None:
    assert MonitorConfig.from_env({"MONITOR_ROLLUP_AFTER": "3h"}).rollup_after == 3 * 3600.0
    with pytest.raises(ConfigError) as raised:
        MonitorConfig.from_env({"MONITOR_ROLLUP_AFTER": "soon"})
    assert str(raised.value).startswith("MONITOR_ROLLUP_AFTER='soon': expected a positive duration")
