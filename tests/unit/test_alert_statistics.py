"""The sequential alert statistics from per-bucket cells equal Page's recursion by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from instrumentation import MonitorConfig
from instrumentation.aggregates.alerts import accuracy_cusum, estimated_accuracy_cusum, mae_cusum
from instrumentation.config import ConfigError
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
