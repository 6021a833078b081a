"""PostgresStore after a server restart: the pool's dead connections never reach a caller.

A fast restart ends every session; the pool still holds their connections. The
checkout check (free while a socket is quiet) finds each dead one before a
statement is sent on it, so the first calls after the restart succeed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from harness.postgres import PostgresCluster
from instrumentation.store.postgres import PostgresStore
from instrumentation.store.postgres.connection import connection_lost
from tests.unit.store.contract import T0, add, count_labels, record


@pytest.fixture
def restartable() -> Iterator[PostgresCluster]:
    """A cluster of this test's own: restarting the session's would disturb other tests."""
    with PostgresCluster.start_new() as cluster:
        yield cluster


@pytest.mark.parametrize("first", ["label", "predict"])
def test_every_pooled_connection_dead_after_a_restart_is_replaced_before_use(
    restartable: PostgresCluster, first: str
) -> None:
    store = PostgresStore(restartable.url(), min_connections=4, max_connections=4)
    try:
        add(store, [record(f"p{i}") for i in range(4)])
        restartable.stop_server()
        restartable.start()

        # Writes first: neither is retried once sent, so the dead connection must
        # be found before it is used.
        def label() -> None:
            outcomes = store.apply_labels(
                "m", [("p0", "fraud")], now=T0 + 1, ttl=60, aggregate=count_labels
            )
            assert [o.status for o in outcomes] == ["matched"]

        def predict() -> None:
            add(store, [record("p4")])

        for call in (label, predict) if first == "label" else (predict, label):
            call()
        assert set(store.get_predictions("m", ["p0", "p1"])) == {"p0", "p1"}
        assert store.count_predictions("m") == 5
        assert store.sum_aggregates("m", "v1", since_bucket=0)['["labels"]'] == 1.0
    finally:
        store.close()


def test_a_lost_connection_is_told_from_an_exhausted_pool() -> None:
    from psycopg_pool import PoolTimeout

    assert connection_lost(psycopg.errors.AdminShutdown("terminating connection"))
    assert connection_lost(psycopg.OperationalError("server closed the connection unexpectedly"))
    assert not connection_lost(PoolTimeout("couldn't get a connection after 10.00 sec"))
    assert not connection_lost(psycopg.errors.UniqueViolation("duplicate key"))


def test_a_deadlock_victim_runs_again_but_a_sent_write_never_does(
    postgres_cluster: PostgresCluster,
) -> None:
    store = PostgresStore(postgres_cluster.url(), schema=f"d_{uuid.uuid4().hex[:12]}")
    calls: list[bool] = []

    def victim(conn: object, sent: list[bool]) -> str:
        calls.append(sent[0])
        if len(calls) == 1:
            raise psycopg.errors.DeadlockDetected("deadlock detected")
        return "done"

    def committing(conn: object, sent: list[bool]) -> str:
        sent[0] = True
        raise psycopg.errors.AdminShutdown("terminating connection")

    try:
        assert store.db.retrying(victim) == "done"
        assert calls == [False, False]
        with pytest.raises(psycopg.errors.AdminShutdown):
            store.db.retrying(committing)
    finally:
        store.close()
