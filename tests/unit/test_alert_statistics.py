"""The sequential alert statistics from per-bucket cells equal Page's recursion by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from instrumentation import MonitorConfig
from instrumentation.aggregates.alerts import accuracy_cusum, estimated_accuracy_cusum, mae_cusum
from instrumentation.aggregates.cells import Cells
from instrumentation.aggregates.fairness_alerts import fairness_alerts
from instrumentation.config import ConfigError
from instrumentation.metrics.sequential import proportion_difference_cs
from instrumentation.spec import FeatureSpec, ModelSpec
from instrumentation.store.keys import encode_key


def _page(increments: list[float]) -> float:
    s = 0.0
    for x in increments:
        s = max(0.0, s + x)
    return s


def test_accuracy_cusum_is_pages_recursion_over_the_buckets_oldest_first() -> None:
    rng = np.random.default_rng(3)
    right = rng.binomial(20, 0.7, size=30)
    buckets = {
        60 * i: {
            encode_key(("confusion", "a", "a")): float(k),
            encode_key(("confusion", "a", "b")): float(20 - k),
        }
        for i, k in enumerate(right)
    }
    by_hand = _page([k * math.log(0.75 / 0.8) + (20 - k) * math.log(0.25 / 0.2) for k in right])

    out = accuracy_cusum(dict(reversed(buckets.items())), ("a", "b"), p0=0.8, p1=0.75, h=9.5)

    assert out["statistic"] == pytest.approx(by_hand, rel=1e-12)
    assert out["value"] == pytest.approx(by_hand / 9.5, rel=1e-12)
    assert out["n"] == 600
    assert accuracy_cusum({}, ("a", "b"), p0=0.8, p1=0.75, h=9.5)["value"] == 0.0


def test_gaussian_cusums_take_sd_from_the_look_back_and_climb_the_right_way() -> None:
    rng = np.random.default_rng(4)
    values = [rng.normal(1.4, 0.5, size=10) for _ in range(20)]  # MAE 1.4: above 1.0
    buckets = {
        60 * i: {
            encode_key(("regression", "n")): 10.0,
            encode_key(("regression", "abs_error")): float(v.sum()),
            encode_key(("regression", "squared_error")): float((v * v).sum()),
        }
        for i, v in enumerate(values)
    }
    flat = np.concatenate(values)
    sd = float(np.std(flat, ddof=1))
    by_hand = _page([(0.25 / sd**2) * (v.sum() - 10 * 1.125) for v in values])

    out = mae_cusum(buckets, threshold=1.0, worse=1.25, h=9.5)

    assert out["sd"] == pytest.approx(sd, rel=1e-9)
    assert out["statistic"] == pytest.approx(by_hand, rel=1e-9) and out["value"] > 1
    confidence = {
        0: {encode_key(("estimate", "n")): 1.0, encode_key(("estimate", "conf_sum")): 0.9}
    }
    alone = estimated_accuracy_cusum(confidence, threshold=0.8, worse=0.75, h=9.5)
    assert (alone["statistic"], alone["n"], alone["sd"]) == (0.0, 1, None)  # no spread yet


def test_the_alert_settings_are_read_and_checked() -> None:
    config = MonitorConfig.from_env({"MONITOR_MAE_THRESHOLD": "2"})
    assert (config.mae_threshold, config.mae_worse) == (2.0, 2.5)
    assert (config.accuracy_threshold, config.accuracy_worse, config.cusum_h) == (0.8, 0.75, 9.5)
    assert config.alert_lookback == 86400.0 and config.rollout_alpha == 0.05
    with pytest.raises(ConfigError, match="MONITOR_ACCURACY_WORSE"):
        MonitorConfig.from_env({"MONITOR_ACCURACY_WORSE": "0.9"})
    with pytest.raises(ConfigError, match="MONITOR_MAE_WORSE needs MONITOR_MAE_THRESHOLD"):
        MonitorConfig.from_env({"MONITOR_MAE_WORSE": "3"})


def _group_cells(groups: dict[str, tuple[int, int, int, int]]) -> Cells:
    """``(tn, fp, fn, tp)`` per group of attribute ``region``, as group_confusion cells."""
    cells: dict[str, float] = {}
    for group, (tn, fp, fn, tp) in groups.items():
        for actual, predicted, count in (
            ("no", "no", tn), ("no", "yes", fp), ("yes", "no", fn), ("yes", "yes", tp)
        ):  # fmt: skip
            cells[encode_key(("group_confusion", "region", group, actual, predicted))] = count
    return Cells(cells)


def test_fairness_gaps_are_the_largest_lower_bound_over_pairs_bonferroni_split() -> None:
    spec = ModelSpec("m", "v1", "binary", (FeatureSpec("x", "number"),), ("no", "yes"), ("region",))
    cells = _group_cells(
        {"north": (400, 100, 100, 400), "south": (200, 300, 100, 400), "tiny": (1, 1, 1, 1)}
    )
    thresholds = {"demographic_parity": 0.1, "equalized_odds": 0.2}

    out = fairness_alerts(spec, cells, thresholds=thresholds, min_samples=30)["region"]["yes"]

    # North selects 500/1000, south 700/1000: one pair (tiny is under min_samples), one rate.
    parity = proportion_difference_cs(500, 1000, 700, 1000, alpha=0.05)
    assert out["demographic_parity"]["bound"] == pytest.approx(-parity.upper, rel=1e-12)
    assert out["demographic_parity"]["value"] == pytest.approx(-parity.upper / 0.1, rel=1e-12)
    assert out["demographic_parity"]["n"] == 2000
    # Equalized odds: TPR 0.8 vs 0.8, FPR 0.2 vs 0.6: two rates, alpha / 2 each.
    fpr = proportion_difference_cs(100, 500, 300, 500, alpha=0.025)
    assert out["equalized_odds"]["bound"] == pytest.approx(-fpr.upper, rel=1e-12)
    assert out["equalized_odds"]["value"] > 1
    equal = fairness_alerts(
        spec,
        _group_cells({"a": (400, 100, 100, 400), "b": (400, 100, 100, 400)}),
        thresholds=thresholds,
        min_samples=30,
    )["region"]["yes"]
    assert equal["demographic_parity"]["value"] == equal["equalized_odds"]["value"] == 0.0
