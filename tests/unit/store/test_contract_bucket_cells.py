"""Every store: each bucket's cells for a history, the same figures a window sums."""

from __future__ import annotations

import pytest

from instrumentation.store.protocol import Increments
from tests.unit.store.contract import Backend, count_labels, record

HOUR = 3600
H0 = 1_800_000_000 - 1_800_000_000 % HOUR


def _written(buckets: list[int]) -> tuple[Increments, dict[int, dict[str, float]]]:
    increments = Increments()
    expected: dict[int, dict[str, float]] = {}
    for n, bucket in enumerate(buckets):
        for key, amount in ((("predictions",), 1.0 + n), (("confusion", "a", "b"), 0.5)):
            increments.add("v1", bucket, key, amount)
        expected[bucket] = {'["predictions"]': 1.0 + n, '["confusion","a","b"]': 0.5}
    return increments, expected


def test_bucket_cells_gives_each_bucket_of_a_range_its_cells_and_nothing_else(
    backend: Backend,
) -> None:
    reader, writer = backend.open(), backend.open()  # two workers (or replicas)
    buckets = [H0 + 60 * m for m in (0, 1, 2, 5, 9)]
    increments, expected = _written(buckets)
    writer.add_predictions("m", [record("p")], increments, max_group_values=9)
    writer.add_predictions(
        "m", [record("q")], Increments({("v2", H0, ("x",)): 1.0}), max_group_values=9
    )

    # Every bucket (markers and the stored-rows counter are not cells), then ranges.
    assert reader.bucket_cells("m", "v1", since_bucket=0) == expected
    assert reader.bucket_cells("m", "v1", since_bucket=H0 + 60, until_bucket=H0 + 60 * 9) == {
        b: expected[b] for b in buckets[1:4]
    }
    assert reader.bucket_cells("m", "v1", since_bucket=H0 + 60 * 10) == {}
    assert reader.bucket_cells("m", "v2", since_bucket=0) == {H0: {'["x"]': 1.0}}

    # A label joins into its own bucket; summed, the buckets are the window.
    writer.apply_labels("m", [("p", "fraud")], now=H0 + 60 * 5 + 1, ttl=1e9, aggregate=count_labels)
    per_bucket = reader.bucket_cells("m", "v1", since_bucket=H0 + 60)
    assert per_bucket[H0 + 60 * 5] == {
        **expected[H0 + 60 * 5],
        '["labels"]': 1.0,
        '["confusion","fraud","fraud"]': 1.0,
    }
    summed: dict[str, float] = {}
    for cells in per_bucket.values():
        for key, value in cells.items():
            summed[key] = summed.get(key, 0.0) + value
    assert summed == pytest.approx(reader.sum_aggregates("m", "v1", since_bucket=H0 + 60))


def test_bucket_cells_follow_compaction(backend: Backend) -> None:
    store = backend.open()
    buckets = [H0 + 60 * m for m in range(0, 180, 30)]
    increments, _ = _written(buckets)
    store.add_predictions("m", [record("p")], increments, max_group_values=9)
    assert len(store.bucket_cells("m", "v1", since_bucket=0)) == 6

    store.compact_aggregates(
        "m", drop_before=H0 + 60, rollup_before=H0 + 3 * HOUR, rollup_width=HOUR
    )

    assert store.bucket_cells("m", "v1", since_bucket=0) == {
        H0: {'["predictions"]': 2.0, '["confusion","a","b"]': 0.5},  # minute 30, rolled up
        H0 + HOUR: {'["predictions"]': 3.0 + 4.0, '["confusion","a","b"]': 1.0},
        H0 + 2 * HOUR: {'["predictions"]': 5.0 + 6.0, '["confusion","a","b"]': 1.0},
    }
