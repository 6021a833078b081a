"""The monitor's compaction leaves every window it still covers unchanged.

The stores' own roll-up and drop rules are in the contract suite
(``tests/unit/store/test_contract_aggregates.py``).
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sklearn.metrics import accuracy_score

from instrumentation import MonitorConfig, PredictionInput, SQLiteStore, Window
from instrumentation.monitor import ModelMonitor
from instrumentation.spec import FeatureSpec, ModelSpec

HOUR = 3600
T0 = 1_800_000_000 - 1_800_000_000 % HOUR  # an hour-aligned start


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
    # Equal up to float summation order (sums of floats are merged in another order), but
    # for the CUSUMs: over merged hour buckets they restart only at hour starts, never higher.
    assert _flat(after).keys() == _flat(before).keys()
    for path, value in _flat(before).items():
        if path.startswith("/alerts/") and path.endswith(("/value", "/statistic")):
            assert _flat(after)[path] <= value + 1e-12, path
            continue
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


def test_a_window_reports_the_span_it_sums_and_counts_exactly_that_span(tmp_path: Path) -> None:
    """Past ``rollup_after`` a window starts at the hour its old edge's buckets merge into.

    Its ``from``/``to`` say so, before and after compaction alike, and its counts are
    the stored rows (and sklearn's accuracy those rows' labels) of exactly ``[from, to)``.
    """
    spec = ModelSpec("m", "v1", "binary", (FeatureSpec("x", "number"),), ("no", "yes"))
    clock = Clock()
    config = MonitorConfig(windows=(Window("5m", 300.0), Window("24h", 86400.0)))
    store = SQLiteStore(tmp_path / "s.db")
    monitor = ModelMonitor(spec, store, config=config, clock=clock)
    rng = random.Random(5)
    for step in range(400):  # ~27 hours, every four minutes
        clock.now = T0 + 240 * step + 7
        p = rng.random()
        with monitor.predict([PredictionInput({"x": p})]) as rec:
            (record,) = rec.set_outputs(labels=["yes" if p > 0.5 else "no"], scores=[[1 - p, p]])
        if rng.random() < 0.7:
            monitor.feedback([(record.prediction_id, rng.choice(["no", "yes"]))])
    clock.now = T0 + 27 * HOUR - 1234.5  # the day's old edge falls mid-hour
    before = monitor.snapshot()["windows"]

    assert monitor.compact_aggregates() > 0
    windows = monitor.snapshot()["windows"]

    # The span does not move when compaction runs (floats equal up to summation order).
    assert _flat(windows).keys() == _flat(before).keys()
    for path, value in _flat(before).items():
        expected = pytest.approx(value, abs=1e-9) if isinstance(value, float) else value
        assert _flat(windows)[path] == expected, path
    day = windows["24h"]
    start, end = (_epoch(day["from"]), _epoch(day["to"]))
    assert (start % HOUR, end) == (0, T0 + 27 * HOUR - 1200)
    assert 23 * HOUR < end - start <= 24 * HOUR
    oldest_summed = store.db.reader().execute(
        "SELECT MIN(bucket) FROM aggregates WHERE model='m' AND version='v1' AND bucket>=?",
        (T0 + 3 * HOUR - 1234,),  # anywhere inside the hour before `from`
    )
    assert oldest_summed.fetchone() == (start,)  # a merged hour bucket, the first summed
    rows = (
        store.db.reader()
        .execute("SELECT created, label, feedback, feedback_at FROM predictions WHERE model='m'")
        .fetchall()
    )
    made = [r for r in rows if start <= r[0] < end]
    labelled = [r for r in rows if r[3] is not None and start <= r[3] < end]
    assert day["n_predictions"] == len(made) < len(rows)
    assert day["n_labels"] == len(labelled)
    assert day["quality"]["accuracy"]["value"] == pytest.approx(
        accuracy_score([json.loads(r[2]) for r in labelled], [r[1] for r in labelled]),
        abs=1e-9,
    )
    short = windows["5m"]  # not compacted: starts at the first bucket inside it
    assert (_epoch(short["from"]), _epoch(short["to"])) == (end - 300, end)


def _epoch(iso: str) -> int:
    return int(datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())
