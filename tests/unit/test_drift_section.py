"""The drift flag waits for enough predictions: PSI of a handful of rows is noise."""

from __future__ import annotations

from pathlib import Path

import pytest

from instrumentation import (
    FeatureSpec,
    ModelMonitor,
    ModelSpec,
    MonitorConfig,
    PredictionInput,
    SQLiteStore,
)
from instrumentation.metrics.reference import build_reference_profile

T0 = 1_700_000_040.0


def _monitor(tmp_path: Path, *, min_samples: int) -> ModelMonitor:
    profile = build_reference_profile(
        {"x": [float(i % 100) for i in range(1000)]}, numeric=["x"], categorical=[]
    )
    spec = ModelSpec(
        "drift-test",
        "v1",
        "regression",
        (FeatureSpec("x", "number"),),
        reference=profile.to_dict(),
    )
    config = MonitorConfig(min_drift_samples=min_samples)
    return ModelMonitor(spec, SQLiteStore(tmp_path / "s.db"), config=config, clock=lambda: T0)


def _predict(monitor: ModelMonitor, values: list[float]) -> None:
    with monitor.predict([PredictionInput({"x": v}) for v in values]) as rec:
        rec.set_outputs(values=[0.0] * len(values))


@pytest.mark.parametrize(("rows", "drifted"), [(5, None), (150, True)])
def test_drift_flag_needs_min_samples(tmp_path: Path, rows: int, drifted: bool | None) -> None:
    monitor = _monitor(tmp_path, min_samples=100)
    _predict(monitor, [500.0] * rows)  # far outside the reference: PSI is large either way

    report = monitor.snapshot()["windows"]["5m"]["drift"]["features"]["x"]

    assert report["psi"]["value"] > 1.0
    assert report["psi"]["n"] == rows
    assert report["drifted"] is drifted
    assert report.get("insufficient_data", False) is (drifted is None)


def test_an_empty_window_is_undefined_not_insufficient(tmp_path: Path) -> None:
    monitor = _monitor(tmp_path, min_samples=100)

    report = monitor.snapshot()["windows"]["5m"]["drift"]["features"]["x"]

    assert (report["psi"]["value"], report["drifted"]) == (None, None)
    assert "insufficient_data" not in report
