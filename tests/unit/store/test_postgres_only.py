"""PostgresStore only: migrations under concurrency, URL opening, pool size, shards, eviction."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

import instrumentation.store.postgres.housekeeping as housekeeping
from harness.postgres import PostgresCluster
from instrumentation import StoreURL, open_store
from instrumentation.store.postgres import NEWER_SCHEMA, SCHEMA_VERSION, PostgresStore, pool_size
from instrumentation.store.protocol import Increments
from tests.unit.store.contract import BUCKET, T0, add, count_labels, record


@pytest.fixture
def schema() -> str:
    return f"p_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def opened() -> Iterator[list[PostgresStore]]:
    stores: list[PostgresStore] = []
    yield stores
    for store in stores:
        store.close()


def _query(cluster: PostgresCluster, text: str) -> list[tuple[object, ...]]:
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        return conn.execute(text).fetchall()


def test_replicas_starting_together_create_the_schema_once(
    postgres_cluster: PostgresCluster, schema: str, opened: list[PostgresStore]
) -> None:
    barrier = threading.Barrier(6)

    def start() -> PostgresStore:
        barrier.wait(timeout=30)
        return PostgresStore(postgres_cluster.url(), schema=schema, max_connections=2)

    with ThreadPoolExecutor(6) as pool:
        opened.extend(pool.map(lambda _: start(), range(6)))

    assert _query(postgres_cluster, f"SELECT version FROM {schema}.schema_version") == [
        (SCHEMA_VERSION,)
    ]
    tables = _query(
        postgres_cluster,
        f"SELECT tablename FROM pg_tables WHERE schemaname = '{schema}' ORDER BY 1",
    )
    assert [t for (t,) in tables] == [
        "aggregates",
        "group_values",
        "leases",
        "model_versions",
        "predictions",
        "schema_version",
    ]
    add(opened[0], [record("a")])
    assert set(opened[5].get_predictions("m", ["a"])) == {"a"}


def test_a_schema_newer_than_the_library_is_refused(
    postgres_cluster: PostgresCluster, schema: str, opened: list[PostgresStore]
) -> None:
    opened.append(PostgresStore(postgres_cluster.url(), schema=schema))
    _query(postgres_cluster, f"UPDATE {schema}.schema_version SET version = 99 RETURNING 1")

    with pytest.raises(RuntimeError) as raised:
        PostgresStore(postgres_cluster.url(), schema=schema)

    assert str(raised.value) == NEWER_SCHEMA.format(schema=schema, found=99, known=SCHEMA_VERSION)


def test_two_schemas_are_two_stores(postgres_cluster: PostgresCluster) -> None:
    first = open_store(StoreURL.parse(postgres_cluster.url(schema="ns_one")))
    second = open_store(StoreURL.parse(postgres_cluster.url(schema="ns_two")))
    add(first, [record("same-id")])

    assert second.count_predictions("m") == 0
    add(second, [record("same-id")])  # no clash
    assert first.count_predictions("m") == second.count_predictions("m") == 1
    first.close()
    second.close()


def test_open_store_sizes_the_pool_for_the_workers(postgres_cluster: PostgresCluster) -> None:
    store = open_store(StoreURL.parse(postgres_cluster.url(schema="sized")), workers=4)

    assert isinstance(store, PostgresStore)
    assert store.db.pool.max_size == pool_size(4) == 4
    store.close()
    assert (pool_size(1), pool_size(2), pool_size(16), pool_size(3, connections=60)) == (
        8,
        8,
        2,
        8,
    )


def test_concurrent_connections_write_separate_shards_that_sum_exactly(
    postgres_cluster: PostgresCluster, schema: str, opened: list[PostgresStore]
) -> None:
    replicas = [PostgresStore(postgres_cluster.url(), schema=schema) for _ in range(4)]
    opened.extend(replicas)
    barrier = threading.Barrier(4)

    def write(index: int) -> None:
        barrier.wait(timeout=30)
        for n in range(25):
            add(replicas[index], [record(f"{index}-{n}")])

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(4)))

    shards = _query(postgres_cluster, f"SELECT count(DISTINCT shard) FROM {schema}.aggregates")
    assert shards[0][0] > 1  # the hot cell is spread over several rows ...
    assert replicas[0].sum_aggregates("m", "v1", since_bucket=0) == {'["predictions"]': 100.0}


def test_eviction_goes_in_batches_and_skips_a_row_being_labelled(
    postgres_cluster: PostgresCluster,
    schema: str,
    opened: list[PostgresStore],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(housekeeping, "EVICT_BATCH", 7)
    store = PostgresStore(postgres_cluster.url(), schema=schema)
    opened.append(store)
    add(store, [record(f"p{i:02}", created=T0 + i) for i in range(30)])
    with psycopg.connect(postgres_cluster.url()) as locker:
        # A join in progress holds p00; eviction must neither wait for it nor fail.
        locker.execute(f"SELECT 1 FROM {schema}.predictions WHERE prediction_id = 'p00' FOR UPDATE")
        started = time.monotonic()
        removed = store.evict("m", now=T0 + 1000, retain=100, max_rows=1000)
        took = time.monotonic() - started
        locker.rollback()

    assert (removed, store.count_predictions("m")) == (29, 1)
    assert took < 5.0
    assert store.evict("m", now=T0 + 1000, retain=100, max_rows=1000) == 1
    outcome = store.apply_labels("m", [("p00", "x")], now=T0, ttl=1, aggregate=count_labels)
    assert outcome[0].status == "unknown"


def test_the_password_never_reaches_logs_or_repr() -> None:
    url = StoreURL.parse("postgresql://app:s3cret@db.internal/ml?schema=fraud")

    assert "s3cret" not in url.describe() + repr(url)


def test_a_request_costs_a_bounded_number_of_statements(
    postgres_cluster: PostgresCluster,
    schema: str,
    opened: list[PostgresStore],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = PostgresStore(postgres_cluster.url(), schema=schema)
    opened.append(store)
    add(store, [record("warm", groups={"region": "north"})])  # admits "north", cached
    statements: list[str] = []
    transactions: list[object] = []
    execute, transaction = psycopg.Connection.execute, psycopg.Connection.transaction

    def counted_execute(self: psycopg.Connection[Any], query: Any, *args: Any, **kw: Any) -> Any:
        statements.append(str(query))
        return execute(self, query, *args, **kw)

    def counted_transaction(self: psycopg.Connection[Any], *args: Any, **kw: Any) -> Any:
        transactions.append(self)
        return transaction(self, *args, **kw)

    monkeypatch.setattr(psycopg.Connection, "execute", counted_execute)
    monkeypatch.setattr(psycopg.Connection, "transaction", counted_transaction)
    increments = Increments()
    for minute in range(3):
        for key in range(10):
            increments.add("v1", BUCKET + 60 * minute, ("cell", str(key)), 1.0)
    rows = [record(f"p{i}", groups={"region": "north"}) for i in range(200)]

    store.add_predictions("m", rows, increments, max_group_values=5)

    assert (len(statements), len(transactions)) == (1, 0)  # autocommit: one round trip
    statements.clear()
    store.apply_labels(
        "m", [(f"p{i}", "fraud") for i in range(200)], now=T0, ttl=60, aggregate=count_labels
    )
    assert (len(statements), len(transactions)) == (2, 1)  # locking read; update with cells
    assert store.sum_aggregates("m", "v1", since_bucket=0)['["labels"]'] == 200.0
