"""One contract, every store: each test runs against SQLite and against PostgreSQL.

PostgreSQL is a private cluster started once per session (``harness/postgres.py``);
each test gets a schema of its own. Where the server binaries are missing, the
PostgreSQL runs fail (never skip) with :data:`~harness.postgres.POSTGRES_MISSING`:
CI must prove them.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.postgres import PostgresCluster
from instrumentation import SQLiteStore
from instrumentation.store.postgres import PostgresStore
from instrumentation.store.protocol import PredictionStore
from tests.unit.store.contract import Backend

_schemas = itertools.count()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    try:
        cluster = PostgresCluster.start_new()
    except RuntimeError as exc:
        pytest.fail(f"PostgreSQL store tests cannot run: {exc}", pytrace=False)
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        path = tmp_path / "store.db"
        chosen = Backend("sqlite", f"sqlite:///{path}", lambda: SQLiteStore(path))
    else:
        cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
        schema = f"t{next(_schemas)}_{uuid.uuid4().hex[:8]}"
        chosen = Backend(
            "postgresql",
            cluster.url(schema=schema),
            lambda: PostgresStore(cluster.url(), schema=schema, max_connections=4),
        )
    yield chosen
    for store in chosen.opened:
        store.close()


@pytest.fixture
def store(backend: Backend) -> PredictionStore:
    return backend.open()
