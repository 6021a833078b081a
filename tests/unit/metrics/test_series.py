"""Each many-window function equals its one-window counterpart, row by row."""

from __future__ import annotations

import numpy as np
import pytest

from instrumentation.metrics import drift, estimate, fairness, series
from instrumentation.metrics.intervals import rate


def _same(got: float, expected: float | None) -> None:
    if expected is None:
        assert np.isnan(got)
    else:
        assert got == pytest.approx(expected, rel=0, abs=1e-12)


def test_rates_equal_rate_row_by_row_including_the_ends_and_empty() -> None:
    successes = np.array([0, 0, 3, 7, 7, 1, 499])
    n = np.array([0, 5, 7, 7, 20, 1, 1000])
    value, lower, upper = series.rates(successes, n)
    for i in range(len(n)):
        expected = rate(successes[i], n[i])
        _same(value[i], expected.value)
        _same(lower[i], expected.lower)
        _same(upper[i], expected.upper)


def test_psi_equals_drift_psi_for_each_row() -> None:
    shares = [0.1, 0.2, 0.3, 0.4]
    counts = np.array([[0, 0, 0, 0], [1, 2, 3, 4], [10, 0, 0, 0], [3, 3, 3, 1]])
    got = series.psi(shares, counts)
    for row, value in zip(counts, got, strict=True):
        _same(value, drift.psi(shares, row).value)


def test_estimated_accuracy_equals_the_estimate_of_each_row() -> None:
    rows = [(0, 0.0, 0.0), (1, 0.9, 0.81), (10, 7.5, 6.1), (3, 2.99, 2.98)]
    value, lower, upper = series.estimated_accuracy(*np.array(rows).T)
    for i, (n, conf, square) in enumerate(rows):
        sums = estimate.EstimateSums(n, conf, square, (0, n), (0.0, conf), (n - conf, conf))
        expected = estimate.estimated_quality(sums, ("a", "b"))["accuracy"]
        _same(value[i], expected["value"])
        _same(lower[i], expected["lower"])
        _same(upper[i], expected["upper"])


def test_between_groups_differences_equal_fairlearns_disparities() -> None:
    groups = {
        "a": fairness.BinaryCounts(tn=2, fp=1, fn=1, tp=2),
        "b": fairness.BinaryCounts(tn=3, fp=2, fn=1, tp=0),
        "c": fairness.BinaryCounts(tn=4, fp=0, fn=0, tp=0),  # no positives: TPR 0.0
    }
    tp, fn, fp, tn = (
        np.array([[getattr(c, f) for c in groups.values()]]) for f in ["tp", "fn", "fp", "tn"]
    )
    kept = np.ones_like(tp, dtype=bool)
    expected = fairness.disparities(groups)
    dp = series.between_groups((tp + fp) / (tp + fn + fp + tn), kept)
    tpr = series.between_groups(series.fairlearn_rate(tp, tp + fn), kept)
    fpr = series.between_groups(series.fairlearn_rate(fp, fp + tn), kept)
    _same(dp[0], expected["demographic_parity_difference"]["between_groups"]["value"])
    _same(tpr[0], expected["equal_opportunity_difference"]["between_groups"]["value"])
    eo = expected["equalized_odds_difference"]["worst_case"]["between_groups"]["value"]
    _same(np.fmax(tpr, fpr)[0], eo)
    assert np.isnan(series.between_groups(np.zeros((1, 3)), np.zeros((1, 3), dtype=bool))[0])


def test_to_values_turns_nan_into_none() -> None:
    assert series.to_values([0.5, np.nan]) == [0.5, None]
