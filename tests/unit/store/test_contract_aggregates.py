"""Every store: aggregate cells add up across calls and replicas; windows and compaction exact."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from instrumentation.store.protocol import Increments, PredictionStore
from tests.unit.store.contract import Backend, count_labels, predictions, record

HOUR = 3600
H0 = 1_800_000_000 - 1_800_000_000 % HOUR  # an hour-aligned start


def test_sum_aggregates_filters_by_bucket_version_and_model(store: PredictionStore) -> None:
    store.add_predictions("m", [record("a")], predictions(1, bucket=10), max_group_values=9)
    store.add_predictions("m", [record("b")], predictions(2, bucket=11), max_group_values=9)
    store.add_predictions("m", [record("c")], predictions(4, "v2", 11), max_group_values=9)
    store.add_predictions("x", [record("d")], predictions(8, bucket=11), max_group_values=9)

    assert store.sum_aggregates("m", "v1", since_bucket=10) == {'["predictions"]': 3.0}
    assert store.sum_aggregates("m", "v1", since_bucket=11) == {'["predictions"]': 2.0}
    assert store.sum_aggregates("m", "v1", since_bucket=12) == {}
    assert store.sum_aggregates("m", "v2", since_bucket=0) == {'["predictions"]': 4.0}


def test_buckets_add_up_across_calls_and_replicas(backend: Backend) -> None:
    replicas = [backend.open() for _ in range(3)]
    rng = random.Random(7)
    expected: dict[int, dict[str, float]] = {}
    for n in range(30):
        increments = Increments()
        for _ in range(4):
            bucket = H0 + 60 * rng.randrange(5)
            key = rng.choice([("predictions",), ("confusion", "a", "b"), ("score", "sum")])
            amount = rng.choice([0.5, 1.0, 2.25])
            increments.add("v1", bucket, key, amount)
        for (_, bucket, key), amount in increments.cells.items():
            cell = f"[{','.join(f'{chr(34)}{k}{chr(34)}' for k in key)}]"
            expected.setdefault(bucket, {}).setdefault(cell, 0.0)
            expected[bucket][cell] += amount
        replicas[n % 3].add_predictions("m", [record(f"p{n}")], increments, max_group_values=9)

    for since in [H0 + 60 * i for i in range(6)]:
        want: dict[str, float] = {}
        for bucket, cells in expected.items():
            if bucket >= since:
                for cell, amount in cells.items():
                    want[cell] = want.get(cell, 0.0) + amount
        for replica in replicas:
            assert replica.sum_aggregates("m", "v1", since_bucket=since) == pytest.approx(want)


def _fill(backend: Backend, *, minutes: int, seed: int) -> None:
    """Three cells a minute, written half by one replica, half by another."""
    rng = random.Random(seed)
    halves = [Increments(), Increments()]
    for minute in range(minutes):
        for key in (("predictions",), ("confusion", "a", "b"), ("log_loss",)):
            amount = rng.choice([1.0, 2.0, 0.5])
            halves[0].add("v1", H0 + 60 * minute, key, amount / 2)
            halves[1].add("v1", H0 + 60 * minute, key, amount / 2)
    for i, half in enumerate(halves):
        backend.open().add_predictions("m", [record(f"fill-{i}")], half, max_group_values=9)


def test_rollup_keeps_every_hour_aligned_window_and_the_recent_window_exact(
    backend: Backend,
) -> None:
    _fill(backend, minutes=5 * 60, seed=1)
    store = backend.open()
    cutoff = H0 + 3 * HOUR
    hour_aligned = [H0 + h * HOUR for h in range(6)]
    recent = [cutoff + 60 * m for m in range(0, 120, 7)]
    before = {s: store.sum_aggregates("m", "v1", since_bucket=s) for s in hour_aligned + recent}

    removed = store.compact_aggregates("m", drop_before=0, rollup_before=cutoff, rollup_width=HOUR)

    assert removed == 3 * 59 * 3  # 3 hours × 59 non-aligned minutes × 3 keys merged away
    after = {s: store.sum_aggregates("m", "v1", since_bucket=s) for s in before}
    for since, sums in before.items():
        assert after[since] == pytest.approx(sums, abs=1e-9), since
    assert (
        store.compact_aggregates("m", drop_before=0, rollup_before=cutoff, rollup_width=HOUR) == 0
    )


def test_buckets_older_than_drop_before_are_deleted(backend: Backend) -> None:
    _fill(backend, minutes=3 * 60, seed=2)
    store = backend.open()
    kept = store.sum_aggregates("m", "v1", since_bucket=H0 + HOUR)

    removed = store.compact_aggregates(
        "m", drop_before=H0 + HOUR, rollup_before=H0, rollup_width=HOUR
    )

    assert removed == 60 * 3
    assert store.sum_aggregates("m", "v1", since_bucket=0) == pytest.approx(kept, abs=1e-9)


def test_replicas_writing_the_same_cells_at_once_lose_no_increment(backend: Backend) -> None:
    replicas = [backend.open() for _ in range(4)]
    barrier = threading.Barrier(len(replicas))
    keys = [("predictions",), ("confusion", "a", "b"), ("score", "sum"), ("drift", "f", "1")]

    def write(index: int) -> None:
        barrier.wait(timeout=30)
        for n in range(20):
            increments = Increments()
            # Each replica walks the same cells in another order: the store sorts them.
            for key in keys if index % 2 else keys[::-1]:
                for minute in range(3):
                    increments.add("v1", H0 + 60 * minute, key, 1.0)
            replicas[index].add_predictions(
                "m", [record(f"{index}-{n}")], increments, max_group_values=9
            )
            replicas[index].apply_labels(
                "m", [(f"{index}-{n}", "fraud")], now=H0, ttl=1e9, aggregate=count_labels
            )

    with ThreadPoolExecutor(len(replicas)) as pool:
        list(pool.map(write, range(len(replicas))))

    sums = replicas[0].sum_aggregates("m", "v1", since_bucket=0)
    assert sums['["labels"]'] == 80.0
    assert sums['["predictions"]'] == sums['["drift","f","1"]'] == 4 * 20 * 3.0
