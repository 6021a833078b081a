"""Old aggregates roll up into hour buckets without changing any window they still cover."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from instrumentation import MonitorConfig, PredictionInput, SQLiteStore, Window
from instrumentation.monitor import ModelMonitor
from instrumentation.spec import FeatureSpec, ModelSpec
from instrumentation.store.base import Increments

HOUR = 3600
T0 = 1_800_000_000 - 1_800_000_000 % HOUR  # an hour-aligned start


def _fill(store: SQLiteStore, *, minutes: int, seed: int) -> None:
    rng = random.Random(seed)
    increments = Increments()
    for minute in range(minutes):
        for key in (("predictions",), ("confusion", "a", "b"), ("log_loss",)):
            increments.add("v1", T0 + 60 * minute, key, rng.choice([1.0, 2.0, 0.5]))
    with store._transaction() as cur:  # the store's own write path, as a request would use it
        store._apply(cur, "m", increments)


def test_rollup_keeps_every_hour_aligned_window_and_recent_window_exact(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    _fill(store, minutes=5 * 60, seed=1)
    cutoff = T0 + 3 * HOUR
    hour_aligned = [T0 + h * HOUR for h in range(6)]
    recent = [cutoff + 60 * m for m in range(0, 120, 7)]
    before = {s: store.sum_aggregates("m", "v1", since_bucket=s) for s in hour_aligned + recent}

    removed = store.compact_aggregates("m", drop_before=0, rollup_before=cutoff, rollup_width=HOUR)

    assert removed == 3 * 59 * 3  # 3 hours × 59 non-aligned minutes × 3 keys merged away
    after = {s: store.sum_aggregates("m", "v1", since_bucket=s) for s in before}
    for since, sums in before.items():
        assert after[since] == pytest.approx(sums, abs=1e-9), since
    rows = store._conn.execute("SELECT COUNT(DISTINCT bucket) FROM aggregates").fetchone()[0]
    assert rows == 3 + 2 * 60  # three hour buckets, then the last two hours by the minute

    assert (
        store.compact_aggregates("m", drop_before=0, rollup_before=cutoff, rollup_width=HOUR) == 0
    )


def test_buckets_older_than_drop_before_are_deleted(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    _fill(store, minutes=3 * 60, seed=2)
    kept = store.sum_aggregates("m", "v1", since_bucket=T0 + HOUR)

    store.compact_aggregates("m", drop_before=T0 + HOUR, rollup_before=T0, rollup_width=HOUR)

    assert store.sum_aggregates("m", "v1", since_bucket=0) == pytest.approx(kept, abs=1e-9)


class Clock:
    def __init__(self) -> None:
        self.now = float(T0)

    def __call__(self) -> float:
        return self.now


def test_monitor_compaction_leaves_snapshots_unchanged(tmp_path: Path) -> None:
    spec = ModelSpec("m", "v1", "binary", (FeatureSpec("x", "number"),), ("no", "yes"))
    clock = Clock()
    config = MonitorConfig(
        windows=(Window("5m", 300.0), Window("1h", 3600.0), Window("6h", 21600.0))
    )
    monitor = ModelMonitor(spec, SQLiteStore(tmp_path / "s.db"), config=config, clock=clock)
    rng = random.Random(3)
    for step in range(4 * 60 // 5):  # four hours, every five minutes
        clock.now = T0 + 300 * step + 7
        p = rng.random()
        with monitor.predict([PredictionInput({"x": p})]) as rec:
            (record,) = rec.set_outputs(labels=["yes" if p > 0.5 else "no"], scores=[[1 - p, p]])
        monitor.feedback([(record.prediction_id, rng.choice(["no", "yes"]))])
    clock.now = T0 + 4 * HOUR + 30
    before = monitor.snapshot()

    assert monitor.compact_aggregates() > 0
    after = monitor.snapshot()
    # Equal up to float summation order (sums of floats are merged in another order).
    assert _flat(after).keys() == _flat(before).keys()
    for path, value in _flat(before).items():
        expected = pytest.approx(value, abs=1e-9) if isinstance(value, float) else value
        assert _flat(after)[path] == expected, path


def _flat(node: Any, path: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        return {
            k: v for key, child in node.items() for k, v in _flat(child, f"{path}/{key}").items()
        }
    if isinstance(node, list):
        return {
            k: v for i, child in enumerate(node) for k, v in _flat(child, f"{path}/{i}").items()
        }
    return {path: node}
