"""``MONITOR_STORE_URL``: SQLite paths, PostgreSQL URLs for libpq, every bad value named."""

from __future__ import annotations

from pathlib import Path

import pytest

from instrumentation import (
    ConfigError,
    MonitorConfig,
    StoreURL,
    open_store,
)
from instrumentation.config import (
    STORE_URL_HELP,
)

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


def test_a_store_this_version_cannot_open_fails_at_start_up() -> None:
    with pytest.raises(ConfigError) as raised:
        MonitorConfig.from_env({"MONITOR_STORE_URL": "redis://cache:6379/0"})

    assert str(raised.value) == (
        "MONITOR_STORE_URL='redis://cache:6379/0': the redis store is not available in this "
        f"version; {STORE_URL_HELP}"
    )
