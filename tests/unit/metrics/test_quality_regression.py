"""Regression quality from additive sums, against sklearn."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    mean_absolute_error,
    mean_absolute_percentage_error,
    r2_score,
    root_mean_squared_error,
)

from instrumentation.metrics.regression import (
    _ROW_ERROR,
    RegressionSums,
    regression_quality,
)

SEEDS = [0, 1, 2, 3]


# --- regression -------------------------------------------------------------------------------


def _sums(y: np.ndarray, yhat: np.ndarray) -> RegressionSums:
    total = RegressionSums()
    for t, p in zip(y, yhat, strict=True):
        total = total + RegressionSums.from_row(float(t), float(p))
    return total


def _assert_regression_matches(y: np.ndarray, yhat: np.ndarray) -> dict[str, Any]:
    out = regression_quality(_sums(y, yhat))
    assert out["mae"]["value"] == pytest.approx(mean_absolute_error(y, yhat), abs=1e-9)
    assert out["rmse"]["value"] == pytest.approx(root_mean_squared_error(y, yhat), abs=1e-9)
    assert out["mape"]["value"] == pytest.approx(mean_absolute_percentage_error(y, yhat), abs=1e-9)
    assert out["r2"]["value"] == pytest.approx(r2_score(y, yhat), abs=1e-9)
    assert all(out[key]["n"] == len(y) for key in out)
    return out


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("loc", [0.0, 100.0])
def test_regression_matches_sklearn(seed: int, loc: float) -> None:
    rng = np.random.default_rng(seed)
    y = rng.normal(loc, 3.0, size=200)
    _assert_regression_matches(y, y + rng.normal(0, 1.0, size=200))


def test_regression_mape_uses_eps_for_zero_targets() -> None:
    out = _assert_regression_matches(np.array([0.0, 1.0, -2.0]), np.array([0.5, 1.0, -1.0]))
    assert out["mape"]["value"] > 1e14


@pytest.mark.parametrize(
    ("y", "yhat", "r2"),
    [([3.0, 3.0, 3.0], [3.0, 3.0, 3.0], 1.0), ([3.0, 3.0, 3.0], [3.0, 2.0, 3.0], 0.0)],
)
def test_r2_constant_target_follows_force_finite(
    y: list[float], yhat: list[float], r2: float
) -> None:
    out = _assert_regression_matches(np.array(y), np.array(yhat))
    assert out["r2"]["value"] == r2


def test_r2_constant_inexact_target_is_zero_not_rounding_noise() -> None:
    y, yhat = np.full(3, 0.1), np.array([0.1, 0.2, 0.1])
    assert regression_quality(_sums(y, yhat))["r2"]["value"] == 0.0
    # documented difference: sklearn divides by its own rounding noise here
    assert r2_score(y, yhat) < -1e6


def test_regression_single_row_and_empty_window() -> None:
    out = regression_quality(RegressionSums.from_row(2.0, 1.0))
    assert out["mae"] == {"value": 1.0, "n": 1, "lower": None, "upper": None}
    assert out["r2"] == {"value": None, "n": 1, "lower": None, "upper": None}
    with pytest.warns(UndefinedMetricWarning):
        assert math.isnan(r2_score([2.0], [1.0]))
    empty = regression_quality(RegressionSums())
    assert all(v == {"value": None, "n": 0, "lower": None, "upper": None} for v in empty.values())


def test_regression_sums_are_additive_in_any_grouping() -> None:
    rng = np.random.default_rng(7)
    y, yhat = rng.normal(size=50), rng.normal(size=50)
    whole = _sums(y, yhat)
    split = _sums(y[:20], yhat[:20]) + _sums(y[20:], yhat[20:])
    assert split.n == whole.n == 50
    for key, mv in regression_quality(split).items():
        assert mv["value"] == pytest.approx(regression_quality(whole)[key]["value"], abs=1e-12)
    assert whole.y == pytest.approx(y.sum()) and whole.y_squared == pytest.approx((y * y).sum())


@pytest.mark.parametrize(("y", "yhat"), [(math.nan, 1.0), (1.0, math.inf)])
def test_regression_row_rejects_non_finite(y: float, yhat: float) -> None:
    with pytest.raises(ValueError) as exc:
        RegressionSums.from_row(y, yhat)
    assert str(exc.value) == _ROW_ERROR
