"""Version comparison intervals against statsmodels, their edge cases and their coverage."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.proportion import confint_proportions_2indep
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from instrumentation.metrics.compare import Difference, mean_difference, proportion_difference


@pytest.mark.parametrize(
    ("k_a", "n_a", "k_b", "n_b"),
    [(80, 100, 90, 100), (0, 10, 5, 10), (10, 10, 0, 7), (1, 1, 1, 2), (412, 500, 3990, 5000)],
)
def test_proportion_difference_is_newcombes_hybrid_score_interval(
    k_a: int, n_a: int, k_b: int, n_b: int
) -> None:
    got = proportion_difference(k_a, n_a, k_b, n_b)
    lower, upper = confint_proportions_2indep(k_a, n_a, k_b, n_b, method="newcomb", compare="diff")

    assert got.value == pytest.approx(k_a / n_a - k_b / n_b, abs=1e-12)
    assert got.lower == pytest.approx(lower, abs=1e-9)
    assert got.upper == pytest.approx(upper, abs=1e-9)
    assert (got.n, got.n_baseline) == (n_a, n_b)


@pytest.mark.parametrize(("n_a", "n_b"), [(0, 10), (10, 0), (0, 0)])
def test_a_side_without_samples_gives_no_difference(n_a: int, n_b: int) -> None:
    assert proportion_difference(0, n_a, 0, n_b) == Difference(None, n_a, n_b)


def test_mean_difference_is_a_welch_normal_interval() -> None:
    rng = np.random.default_rng(3)
    a, b = np.abs(rng.normal(0, 2.0, 40)), np.abs(rng.normal(0.5, 1.0, 75))

    got = mean_difference(len(a), a.sum(), (a * a).sum(), len(b), b.sum(), (b * b).sum())
    lower, upper = CompareMeans(DescrStatsW(a), DescrStatsW(b)).zconfint_diff(usevar="unequal")

    assert got.value == pytest.approx(a.mean() - b.mean(), abs=1e-12)
    assert (got.lower, got.upper) == pytest.approx((lower, upper), abs=1e-9)


@pytest.mark.parametrize(("n_a", "n_b"), [(1, 10), (10, 1), (0, 0)])
def test_a_mean_needs_two_samples_a_side(n_a: int, n_b: int) -> None:
    assert mean_difference(n_a, 1.0 * n_a, 1.0 * n_a, n_b, 1.0 * n_b, 1.0 * n_b).value is None


def test_identical_errors_give_a_zero_width_interval_at_zero() -> None:
    got = mean_difference(5, 5.0, 5.0, 3, 3.0, 3.0)
    assert (got.value, got.lower, got.upper) == (0.0, 0.0, 0.0)


def test_coverage_when_both_versions_are_equally_good() -> None:
    """Over 2,000 seeded trials of two equally accurate versions, 0 is inside ≥ 94% of intervals."""
    rng = np.random.default_rng(20261201)
    trials, covered = 2000, 0
    for _ in range(trials):
        p = rng.uniform(0.6, 0.95)
        n_a, n_b = int(rng.integers(100, 1500)), int(rng.integers(100, 1500))
        got = proportion_difference(rng.binomial(n_a, p), n_a, rng.binomial(n_b, p), n_b)
        assert got.lower is not None and got.upper is not None
        covered += got.lower <= 0.0 <= got.upper
    assert covered / trials >= 0.94
