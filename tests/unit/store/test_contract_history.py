"""``history``: each point equals the window ``GET /monitor`` reported then, on every store.

A simulated hour of traffic and late labels for two model versions (the second
deployed part-way), with drift and a group whose rates move. Each minute a snapshot
is taken; at the end one history over the hour must give, point by point, the figures
those snapshots gave for the same window (and a one-minute window gives the counts
per step). ``bucket_cells`` itself is part of the store contract: every bucket's
cells, no markers, no counter.
"""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pytest

from instrumentation import (
    FeatureSpec,
    ModelMonitor,
    ModelSpec,
    MonitorConfig,
    PredictionInput,
    Window,
    build_reference_profile,
)
from instrumentation.aggregates.history import MAX_POINTS, STEP_ERROR, TOO_MANY_POINTS
from instrumentation.store.keys import decode_key
from instrumentation.store.protocol import PredictionStore

T0 = 1_800_000_000 - 1_800_000_000 % 3600  # hour-aligned
MINUTES = 40
WINDOW = 600  # the 10m window

CONFIG = MonitorConfig(
    windows=(Window("1m", 60.0), Window("10m", 600.0), Window("1h", 3600.0)),
    min_group_samples=5,
    min_drift_samples=10,
)


def _spec(version: str) -> ModelSpec:
    rng = np.random.default_rng(0)
    amounts = rng.normal(100.0, 20.0, 500)
    profile = build_reference_profile(
        {"amount": amounts, "channel": rng.choice(["web", "pos"], 500).tolist()},
        numeric=["amount"],
        categorical=["channel"],
        predicted_label=np.where(amounts > 100, "fraud", "legit").tolist(),
    )
    return ModelSpec(
        "hist-test",
        version,
        "binary",
        (FeatureSpec("amount", "number"), FeatureSpec("channel", "category", ("web", "pos"))),
        ("legit", "fraud"),
        sensitive_attributes=("region",),
        reference=profile.to_dict(),
    )


class Clock:
    def __init__(self) -> None:
        self.now = float(T0)

    def __call__(self) -> float:
        return self.now


def _traffic(
    monitor: ModelMonitor, rng: random.Random, minute: int, waiting: list[tuple[str, str]]
) -> None:
    """A few predictions of this minute; labels for some of the earlier ones."""
    rows = []
    truths = []
    for _ in range(rng.randint(0, 12)):
        shift = 30.0 if minute > 25 else 0.0  # drift part-way
        amount = rng.gauss(100.0 + shift, 20.0)
        region = rng.choice(["north", "south", "east"])
        features = {"amount": amount, "channel": "web"}
        rows.append(PredictionInput(features, groups={"region": region}))
        truths.append("fraud" if rng.random() < 0.4 else "legit")
    if rows:
        with monitor.predict(rows) as rec:
            scores = [rng.random() for _ in rows]
            records = rec.set_outputs(
                labels=["fraud" if p > 0.5 else "legit" for p in scores],
                scores=[[1 - p, p] for p in scores],
            )
        waiting += [(r.prediction_id, y) for r, y in zip(records, truths, strict=True)]
    rng.shuffle(waiting)
    ready = waiting[: rng.randint(0, len(waiting))]
    del waiting[: len(ready)]
    if ready:
        monitor.feedback(ready)


@pytest.fixture
def simulated(store: PredictionStore) -> tuple[ModelMonitor, list[tuple[int, dict[str, Any]]]]:
    clock = Clock()
    old = ModelMonitor(_spec("v1"), store, config=CONFIG, clock=clock)
    new = ModelMonitor(_spec("v2"), store, config=CONFIG, clock=clock)
    rng = random.Random(7)
    waiting: dict[str, list[tuple[str, str]]] = {"v1": [], "v2": []}
    snapshots = []
    for minute in range(MINUTES):
        clock.now = T0 + 60 * minute + 5
        _traffic(old, rng, minute, waiting["v1"])  # v1 keeps serving and taking labels
        if minute >= 15:
            clock.now += 10
            _traffic(new, rng, minute, waiting["v2"])
        clock.now = T0 + 60 * minute + 30
        snapshots.append((T0 + 60 * (minute + 1), new.snapshot()))
    return new, snapshots


def _same(point: dict[str, Any], figure: dict[str, Any] | None, where: str) -> None:
    figure = figure or {"value": None, "lower": None, "upper": None, "n": 0}
    assert point["n"] == figure["n"], where
    for key in ("value", "lower", "upper"):
        expected = figure.get(key)
        if expected is None:
            assert point[key] is None, (where, key)
        else:
            assert point[key] == pytest.approx(expected, rel=0, abs=1e-9), (where, key)


def _leaf(tree: dict[str, Any], *path: str) -> dict[str, Any] | None:
    node: Any = tree
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def test_every_point_equals_the_snapshot_of_its_window(
    simulated: tuple[ModelMonitor, list[tuple[int, dict[str, Any]]]],
) -> None:
    monitor, snapshots = simulated
    history = monitor.history(window=WINDOW, step=60, start=T0 + 60, end=T0 + 60 * MINUTES)

    assert [p["t"] for p in history["versions"]["v2"]["labels"]] == [t for t, _ in snapshots]
    assert list(history["versions"]) == list(snapshots[-1][1]["versions"])  # as GET /monitor
    checked = 0
    for version, series in history["versions"].items():
        for i, (t, snapshot) in enumerate(snapshots):
            windows = _leaf(snapshot, "versions", version, "windows")
            if windows is None:  # not deployed yet: nothing to show, not zeros
                assert series["quality"]["accuracy"][i]["value"] is None
                assert series["predictions"][i]["value"] == 0
                continue
            window, minute = windows["10m"], windows["1m"]
            at = f"{version} t={t}"
            assert series["predictions"][i]["value"] == minute["n_predictions"], at
            assert series["labels"][i]["value"] == minute["n_labels"], at
            _same(series["quality"]["accuracy"][i], window["quality"]["accuracy"], at)
            for cls in ("legit", "fraud"):
                for name in ("recall", "precision"):
                    figure = window["quality"][name]["per_class"][cls]
                    _same(series["quality"][name][cls][i], figure, f"{at} {name} {cls}")
            _same(series["estimated"]["accuracy"][i], window["estimated"]["accuracy"], at)
            for feature in ("amount", "channel"):
                figure = window["drift"]["features"][feature]["psi"]
                _same(series["drift"]["psi"][feature][i], figure, f"{at} psi {feature}")
            region = series["fairness"]["region"]
            for group, rates in region["groups"].items():
                for name in ("selection_rate", "tpr"):
                    figure = _leaf(window, "fairness", "region", "groups", group, name)
                    if figure is None:  # too few rows, or none yet: undefined, with its n
                        assert rates[name][i]["value"] is None, (at, group)
                    else:
                        _same(rates[name][i], figure, f"{at} {group} {name}")
            disparities = window["fairness"]["region"]["disparities"]
            for name, path in (
                ("demographic_parity_difference", ("between_groups",)),
                ("equalized_odds_difference", ("worst_case", "between_groups")),
            ):
                figure = _leaf(disparities, name, *path)
                _same(region["disparities"][name][i], figure, f"{at} {name}")
            checked += 1
    assert checked == 2 * MINUTES  # the serving v2 is reported before its first prediction
    before = history["versions"]["v2"]["quality"]["accuracy"][:15]
    assert [p["value"] for p in before] == [None] * 15  # "not enough data", never 0
    assert history["versions"]["v2"]["drift"]["psi_threshold"] == CONFIG.psi_threshold


def test_history_says_how_far_back_its_buckets_are_kept(
    simulated: tuple[ModelMonitor, list[tuple[int, dict[str, Any]]]],
) -> None:
    monitor, _ = simulated
    history = monitor.history(window=WINDOW, step=60)

    now = T0 + 60 * (MINUTES - 1) + 30
    assert history["retention"] == {
        "bucket_seconds": 60,
        "rollup_seconds": 3600,
        "exact_since": (now - CONFIG.rollup_after) // 3600 * 3600,
        "kept_since": (now - 3600 - 3600) // 60 * 60,
    }
    # By default: one window back from the end of the current bucket.
    assert history["to"] == T0 + 60 * MINUTES
    assert history["from"] == T0 + 60 * MINUTES - WINDOW


def test_a_step_that_is_not_whole_buckets_or_too_many_points_is_refused(
    simulated: tuple[ModelMonitor, list[tuple[int, dict[str, Any]]]],
) -> None:
    monitor, _ = simulated
    with pytest.raises(ValueError, match="whole multiples") as caught:
        monitor.history(window=WINDOW, step=90)
    assert str(caught.value) == STEP_ERROR.format(width=60)
    with pytest.raises(ValueError) as caught:
        monitor.history(window=WINDOW, step=60, start=T0 - 60 * MAX_POINTS, end=T0)
    assert str(caught.value) == TOO_MANY_POINTS.format(n=MAX_POINTS + 1, max=MAX_POINTS)


def test_bucket_cells_are_each_buckets_cells_without_markers(
    simulated: tuple[ModelMonitor, list[tuple[int, dict[str, Any]]]], store: PredictionStore
) -> None:
    buckets = store.bucket_cells("hist-test", "v1", since_bucket=T0, until_bucket=T0 + 600)

    assert sorted(buckets) == [b for b in range(T0, T0 + 600, 60) if b in buckets]
    assert all(T0 <= b < T0 + 600 for b in buckets)
    kinds = {decode_key(key)[0] for cells in buckets.values() for key in cells}
    assert "predictions" in kinds and "writes" not in kinds and "stored_predictions" not in kinds
    total = sum(cells.get('["predictions"]', 0.0) for cells in buckets.values())
    window = store.sum_aggregates("hist-test", "v1", since_bucket=T0)
    everything = store.bucket_cells("hist-test", "v1", since_bucket=T0)
    assert math.isclose(
        sum(c.get('["predictions"]', 0.0) for c in everything.values()),
        window['["predictions"]'],
    )
    assert total <= window['["predictions"]']
