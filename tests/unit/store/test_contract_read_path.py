"""Every store: the read path that keeps ``GET /monitor`` flat in the traffic.

The stored-rows counter equals the rows stored whatever wrote or evicted them, and a
window summed from a process's cached buckets equals a fresh read (a store object
with an empty cache) after late labels, late predictions and compaction, while
re-reading only the buckets that changed.
"""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from instrumentation.store.protocol import (
    DuplicatePredictionId,
    Increments,
    PredictionStore,
)
from tests.unit.store.contract import T0, Backend, add, count_labels, record

HOUR = 3600
H0 = 1_800_000_000 - 1_800_000_000 % HOUR


def _stored(store: PredictionStore, ids: list[str]) -> int:
    """Rows stored, counted independently of the counter: by looking each id up."""
    return len(store.get_predictions("m", ids))


def test_the_stored_rows_count_follows_inserts_reused_ids_evictions_and_concurrent_writers(
    backend: Backend,
) -> None:
    replicas = [backend.open(), backend.open()]
    threads, batches = 4, 15
    barrier = threading.Barrier(threads)

    def write(worker: int) -> list[str]:
        barrier.wait()
        ids = []
        for n in range(batches):
            batch = [record(f"w{worker}-{n}-{i}", created=T0 + n) for i in range(1 + n % 3)]
            add(replicas[worker % 2], batch)
            ids += [r.prediction_id for r in batch]
        return ids

    with ThreadPoolExecutor(threads) as pool:
        ids = [pid for part in pool.map(write, range(threads)) for pid in part]
    with pytest.raises(DuplicatePredictionId):  # nothing of a rejected batch is counted
        add(replicas[0], [record("fresh"), record(ids[0])])
    add(replicas[1], [record("other-model")], model="other")

    assert len(ids) == threads * batches * 2  # 1, 2, 3 rows a batch, in turn
    for store in (*replicas, backend.open()):
        assert store.count_predictions("m") == _stored(store, ids) == len(ids)
        assert store.count_predictions("other") == 1

    removed = replicas[0].evict("m", now=T0 + 10.5, retain=5, max_rows=1000)  # age
    removed += replicas[1].evict("m", now=T0 + 10.5, retain=1000, max_rows=7)  # cap
    assert removed == len(ids) - 7
    for store in (*replicas, backend.open()):
        assert store.count_predictions("m") == _stored(store, ids) == 7
    assert replicas[0].count_predictions("nothing-stored") == 0


def _cells(rng: random.Random, buckets: list[int]) -> Increments:
    increments = Increments()
    for bucket in buckets:
        for key in (("predictions",), ("confusion", "a", "b"), ("log_loss",)):
            increments.add("v1", bucket, key, rng.choice([0.5, 1.0, 2.0]))
    return increments


def test_a_cached_window_equals_a_fresh_read_after_late_writes_and_compaction(
    backend: Backend,
) -> None:
    rng = random.Random(11)
    reader, writer = backend.open(), backend.open()  # two workers (or replicas)
    minutes = [H0 + 60 * m for m in range(4 * 60)]
    for start in range(0, len(minutes), 40):
        batch = [record(f"p{start}-{i}", created=minutes[start]) for i in range(3)]
        writer.add_predictions(
            "m", batch, _cells(rng, minutes[start : start + 40]), max_group_values=9
        )
    windows = [H0, H0 + 90 * 60, H0 + 3 * HOUR + 60 * 17]

    def agree() -> None:
        fresh = backend.open()  # an empty cache: every bucket read from the store
        for since in windows:
            cached = reader.sum_aggregates("m", "v1", since_bucket=since)
            assert cached == pytest.approx(
                fresh.sum_aggregates("m", "v1", since_bucket=since), abs=1e-9
            )
            assert {'["predictions"]', '["confusion","a","b"]', '["log_loss"]'} <= cached.keys()

    agree()
    read = reader._windows.reread  # type: ignore[attr-defined]  # both stores have one

    # A late label into a closed bucket (through the join), and a late prediction (a
    # spool replay) into another one: two buckets changed, no other.
    writer.apply_labels(
        "m", [("p0-0", "fraud")], now=H0 + 60 * 7 + 1, ttl=1e9, aggregate=count_labels
    )
    writer.add_predictions("m", [record("late")], _cells(rng, [H0 + 60 * 101]), max_group_values=9)
    agree()
    assert reader._windows.reread - read == 2  # type: ignore[attr-defined]
    assert reader.sum_aggregates("m", "v1", since_bucket=H0)['["labels"]'] == 1.0

    writer.compact_aggregates(
        "m", drop_before=H0 + HOUR, rollup_before=H0 + 3 * HOUR, rollup_width=HOUR
    )
    agree()
    writer.add_predictions(
        "m", [record("later")], _cells(rng, [H0 + 2 * HOUR]), max_group_values=9
    )  # rolled
    agree()
