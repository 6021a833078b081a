"""PostgreSQL group commit: inserts that arrive together share one statement, each its own fate."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from harness.postgres import PostgresCluster
from instrumentation.store.postgres import PostgresStore
from instrumentation.store.protocol import DuplicatePredictionId
from tests.unit.store.contract import add, record


@pytest.fixture
def store(postgres_cluster: PostgresCluster) -> Iterator[PostgresStore]:
    opened = PostgresStore(postgres_cluster.url(), schema=f"g_{uuid.uuid4().hex[:12]}")
    yield opened
    opened.close()


def _queued_together(store: PostgresStore, calls: list[Callable[[], Any]]) -> list[Any]:
    """Run ``calls`` on threads that all queue behind a busy leader, then let them go.

    Returns each call's result or the exception it raised, in order.
    """
    results: list[Any] = [None] * len(calls)

    def call(i: int) -> None:
        try:
            results[i] = calls[i]()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(calls))]
    group = store._predictions.group
    with group._cond:
        group._in_flight = group._limit  # leaders busy with earlier statements
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while len(group._pending) < len(calls) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(group._pending) == len(calls)
    with group._cond:
        group._in_flight = 0
        group._cond.notify_all()
    for thread in threads:
        thread.join()
    return results


def test_requests_that_arrive_together_share_one_statement(store: PostgresStore) -> None:
    add(store, [record("warm")])  # group values admitted: the one-statement path
    before = store._predictions.group.statements

    results = _queued_together(
        store, [lambda i=i: add(store, [record(f"p{i}.{j}") for j in range(3)]) for i in range(8)]
    )

    assert all(isinstance(r, list) and len(r) == 3 for r in results), results
    assert store._predictions.group.statements - before == 1
    assert store.count_predictions("m") == 1 + 8 * 3
    assert store.sum_aggregates("m", "v1", since_bucket=0)['["predictions"]'] == 1 + 8 * 3


def test_a_reused_id_fails_its_own_request_only(store: PostgresStore) -> None:
    add(store, [record("taken")])

    results = _queued_together(
        store,
        [
            lambda: add(store, [record("a1"), record("a2")]),
            lambda: add(store, [record("b1"), record("taken")]),
            lambda: add(store, [record("c1")]),
        ],
    )

    assert isinstance(results[1], DuplicatePredictionId)
    assert results[1].prediction_id == "taken"
    assert [len(results[0]), len(results[2])] == [2, 1]
    assert set(store.get_predictions("m", ["a1", "a2", "b1", "c1"])) == {"a1", "a2", "c1"}
    assert store.count_predictions("m") == 4
