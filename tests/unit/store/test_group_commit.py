"""SQLite group commit: concurrent writes share a transaction, each fails or commits as its own."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from instrumentation import SQLiteStore, StoreUnavailable
from instrumentation.store.protocol import DuplicatePredictionId, PredictionRecord
from tests.unit.store.contract import BUCKET, T0, add, count_labels, predictions, record


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    sqlite = SQLiteStore(tmp_path / "store.db", checkpoint_seconds=None)
    yield sqlite
    sqlite.close()


def _queued_together(store: SQLiteStore, calls: list[Callable[[], Any]]) -> list[Any]:
    """Run ``calls`` on threads that all queue while the write lock is held, then release it.

    Returns each call's result or the exception it raised, in order.
    """
    results: list[Any] = [None] * len(calls)

    def call(i: int) -> None:
        try:
            results[i] = calls[i]()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(calls))]
    with store.db.lock:  # a leader busy with an earlier transaction
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while len(store.db.committer._pending) < len(calls) and time.monotonic() < deadline:
            time.sleep(0.001)
        assert len(store.db.committer._pending) == len(calls)
    for thread in threads:
        thread.join(10)
    return results


def test_concurrent_requests_share_one_transaction_and_each_is_durable_on_return(
    store: SQLiteStore,
) -> None:
    before = store.db.committer.transactions
    batches = [[record(f"r{i}-{j}") for j in range(3)] for i in range(8)]
    results = _queued_together(store, [lambda b=b: add(store, b) for b in batches])

    assert all(isinstance(r, list) and len(r) == 3 for r in results)
    assert store.db.committer.transactions - before == 1  # one commit for eight requests
    other = SQLiteStore(store.path, checkpoint_seconds=None)  # another worker's view
    ids = [r.prediction_id for b in batches for r in b]
    assert set(other.get_predictions("m", ids)) == set(ids)
    assert other.sum_aggregates("m", "v1", since_bucket=0) == {'["predictions"]': 24.0}
    other.close()


def test_a_reused_id_fails_only_its_own_request_in_a_shared_transaction(
    store: SQLiteStore,
) -> None:
    add(store, [record("taken")])
    batches: list[list[PredictionRecord]] = [
        [record("a1"), record("a2")],
        [record("b1"), record("taken"), record("b2")],  # nothing of it may stay
        [record("c1")],
        [record("d1"), record("d1")],  # reused within the request
        [record("e1")],
    ]
    results = _queued_together(store, [lambda b=b: add(store, b) for b in batches])

    assert isinstance(results[1], DuplicatePredictionId)
    assert results[1].prediction_id == "taken"
    assert isinstance(results[3], DuplicatePredictionId)
    assert results[3].prediction_id == "d1"
    assert [len(r) for i, r in enumerate(results) if i not in (1, 3)] == [2, 1, 1]
    stored = store.get_predictions("m", ["a1", "a2", "b1", "b2", "c1", "d1", "e1", "taken"])
    assert set(stored) == {"a1", "a2", "c1", "e1", "taken"}
    # The failed requests' cells were rolled back with their rows.
    assert store.sum_aggregates("m", "v1", since_bucket=0) == {'["predictions"]': 5.0}


def test_labels_and_predictions_share_a_transaction_and_a_label_counts_once(
    store: SQLiteStore,
) -> None:
    add(store, [record("p1"), record("p2")])
    results = _queued_together(
        store,
        [
            lambda: store.apply_labels(
                "m", [("p1", "fraud")], now=T0, ttl=60, aggregate=count_labels
            ),
            lambda: store.apply_labels(
                "m", [("p1", "fraud")], now=T0, ttl=60, aggregate=count_labels
            ),
            lambda: add(store, [record("p3")]),
        ],
    )

    statuses = sorted(r[0].status for r in results[:2])
    assert statuses == ["duplicate", "matched"]
    sums = store.sum_aggregates("m", "v1", since_bucket=BUCKET)
    assert sums['["labels"]'] == 1.0
    assert sums['["predictions"]'] == 3.0


def test_a_full_disk_fails_every_request_of_the_transaction_and_stores_none(
    store: SQLiteStore,
) -> None:
    add(store, [record("first")])
    (pages,) = store.db.conn.execute("PRAGMA page_count").fetchone()
    store.db.conn.execute(f"PRAGMA max_page_count={pages}")  # the disk is full
    big = [
        [record(f"p{i}-{j}", groups={"region": "x" * 100}) for j in range(400)] for i in range(4)
    ]
    results = _queued_together(
        store,
        [
            lambda b=b: store.add_predictions("m", b, predictions(400), max_group_values=9)
            for b in big
        ],
    )

    assert all(isinstance(r, StoreUnavailable) for r in results), results
    assert all(isinstance(r.__cause__, sqlite3.OperationalError) for r in results), results
    assert store.count_predictions("m") == 1
    store.db.conn.execute("PRAGMA max_page_count=1000000")
    add(store, [record("after")])  # the store is usable again
    assert store.count_predictions("m") == 2
