"""The monitor's compaction leaves every window it still covers unchanged.

The stores' own roll-up and drop rules are in the contract suite
(``tests/unit/store/test_contract_aggregates.py``).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

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
