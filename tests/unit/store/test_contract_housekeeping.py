"""Every store: eviction by age and by row cap, and a lease held by exactly one holder."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from instrumentation.store.protocol import PredictionStore
from tests.unit.store.contract import T0, Backend, add, record


def test_evict_by_retention_returns_the_count_removed(store: PredictionStore) -> None:
    add(store, [record(f"p{i}", created=T0 + 10 * i) for i in range(5)])  # T0 .. T0+40

    removed = store.evict("m", now=T0 + 125, retain=100, max_rows=100)

    assert removed == 3  # created before T0 + 25
    assert set(store.get_predictions("m", [f"p{i}" for i in range(5)])) == {"p3", "p4"}
    assert store.evict("m", now=T0 + 125, retain=100, max_rows=100) == 0


def test_evict_by_row_cap_drops_the_oldest(store: PredictionStore) -> None:
    add(store, [record(f"p{i}", created=T0 + 10 * (4 - i)) for i in range(5)])
    add(store, [record("o")], model="other")

    removed = store.evict("m", now=T0 + 50, retain=1000, max_rows=2)

    assert removed == 3
    assert set(store.get_predictions("m", [f"p{i}" for i in range(5)])) == {"p0", "p1"}
    assert store.count_predictions("other") == 1


def test_the_row_cap_keeps_the_newest_rows_even_when_a_batch_shares_one_time(
    store: PredictionStore,
) -> None:
    add(store, [record(f"p{i}", created=T0) for i in range(5)])  # one batch: one time

    assert store.evict("m", now=T0, retain=1000, max_rows=2) == 3
    assert set(store.get_predictions("m", [f"p{i}" for i in range(5)])) == {"p3", "p4"}


def test_a_lease_is_held_until_it_expires_and_the_holder_can_renew(
    store: PredictionStore,
) -> None:
    assert store.try_lease("gauges", "A", now=100.0, duration=10.0) is True
    assert store.try_lease("gauges", "B", now=105.0, duration=10.0) is False
    assert store.try_lease("gauges", "A", now=108.0, duration=10.0) is True  # until 118
    assert store.try_lease("gauges", "B", now=115.0, duration=10.0) is False
    assert store.try_lease("gauges", "B", now=118.5, duration=10.0) is True
    assert store.try_lease("gauges", "A", now=119.0, duration=10.0) is False
    assert store.try_lease("other", "A", now=119.0, duration=10.0) is True


def test_a_free_lease_taken_by_two_replicas_at_once_has_one_holder(backend: Backend) -> None:
    replicas = [backend.open(), backend.open(), backend.open()]
    barrier = threading.Barrier(len(replicas))
    rounds = 25

    def contend(index: int) -> list[bool]:
        won: list[bool] = []
        for r in range(rounds):
            barrier.wait(timeout=30)
            # Each round starts after the last one's lease expired: the lease is free.
            won.append(
                replicas[index].try_lease("gauges", f"R{index}", now=100.0 * r, duration=50.0)
            )
        return won

    with ThreadPoolExecutor(len(replicas)) as pool:
        results = list(pool.map(contend, range(len(replicas))))

    assert [sum(round_) for round_ in zip(*results, strict=True)] == [1] * rounds
    winner = [results[i][-1] for i in range(len(replicas))].index(True)
    # The holder renews; the others still cannot take it.
    assert replicas[winner].try_lease("gauges", f"R{winner}", now=2410.0, duration=50.0)
    loser = (winner + 1) % len(replicas)
    assert not replicas[loser].try_lease("gauges", f"R{loser}", now=2420.0, duration=50.0)
