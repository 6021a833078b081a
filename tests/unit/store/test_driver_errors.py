"""Driver errors leave an engine as the store's own, the driver's error as their cause."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from instrumentation import MonitorError, SQLiteStore, StoreError, StoreUnavailable
from instrumentation.store.postgres import PostgresStore
from instrumentation.store.postgres.connection import is_unavailable as postgres_unavailable
from instrumentation.store.sqlite.connection import is_unavailable as sqlite_unavailable


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (sqlite3.OperationalError("database is locked"), True),
        (sqlite3.OperationalError("database or disk is full"), True),
        (sqlite3.DatabaseError("file is not a database"), True),  # damaged: exactly this class
        (sqlite3.IntegrityError("NOT NULL constraint failed"), False),  # a bug
        (sqlite3.ProgrammingError("closed"), False),
    ],
)
def test_sqlite_errors_are_classified_by_kind(error: sqlite3.Error, unavailable: bool) -> None:
    assert sqlite_unavailable(error) is unavailable


def test_postgres_errors_are_classified_by_kind() -> None:
    assert postgres_unavailable(psycopg.OperationalError("connection refused"))
    assert postgres_unavailable(psycopg.InterfaceError("connection closed"))
    assert not postgres_unavailable(psycopg.errors.UndefinedColumn("no such column"))


def test_a_file_that_is_not_a_database_is_unavailable_with_the_driver_error_as_cause(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store.db"
    path.write_bytes(b"not a database " * 512)

    with pytest.raises(StoreUnavailable) as raised:
        SQLiteStore(path, checkpoint_seconds=None)

    assert isinstance(raised.value.__cause__, sqlite3.DatabaseError)
    assert isinstance(raised.value, StoreError) and isinstance(raised.value, MonitorError)


def test_an_unreachable_server_is_unavailable_with_the_driver_error_as_cause() -> None:
    with pytest.raises(StoreUnavailable) as raised:
        PostgresStore("postgresql://monitor@127.0.0.1:1/none", timeout=1.0)

    assert isinstance(raised.value.__cause__, psycopg.OperationalError)
