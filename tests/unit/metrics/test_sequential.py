"""Confidence sequences and CUSUMs against independent implementations, edges and coverage.

Oracles: confseq's ``normal_mixture_bound`` (Howard et al.'s C++ library; its sdist pins
pybind11 2.6, which does not build on Python 3.11, so ``make oracles`` builds it and
``make test`` requires it: see ``tests/oracles.py``); the mixture's defining integral
solved by quadrature (scipy), written here; and, for the CUSUM's run lengths, a Markov
chain built state by state here and seeded Monte Carlo runs of the recursion itself.
"""

from __future__ import annotations

import doctest
import math
import re
from functools import partial

import numpy as np
import pytest
from scipy import integrate, optimize, stats

from instrumentation.metrics import sequential
from instrumentation.metrics.compare import Difference
from instrumentation.metrics.sequential import (
    ALPHA_ERROR,
    COUNTS_ERROR,
    PROBABILITY_ERROR,
    bernoulli_cusum_arl,
    bernoulli_increment,
    cusum,
    cusum_threshold,
    effective_n,
    mean_difference_cs,
    mixture_rho,
    normal_cusum_arl,
    normal_increment,
    normal_mixture_boundary,
    proportion_difference_cs,
)
from tests.oracles import oracle

V_GRID = [1.0, 7.5, 100.0, 1_000.0, 2_500.0, 1e5, 1e7]


@pytest.mark.parametrize("v", V_GRID)
@pytest.mark.parametrize(("alpha", "v_opt"), [(0.05, 1_000.0), (0.01, 50.0), (0.2, 1e5)])
def test_boundary_is_confseqs_two_sided_normal_mixture(
    v: float, alpha: float, v_opt: float
) -> None:
    boundaries = oracle("confseq.boundaries")
    expected = boundaries.normal_mixture_bound(v, alpha, v_opt, alpha, False)
    assert normal_mixture_boundary(v, alpha=alpha, v_opt=v_opt) == pytest.approx(
        float(expected), rel=1e-12, abs=1e-9
    )


@pytest.mark.parametrize("v", V_GRID)
def test_boundary_is_where_the_mixture_martingale_reaches_one_over_alpha(v: float) -> None:
    """Independent: ∫ exp(λs − λ²v/2) N(λ; 0, 1/ρ) dλ = 1/α solved for s by quadrature."""
    alpha, rho = 0.05, mixture_rho(1_000.0, alpha=0.05)

    def log_mixture(s: float) -> float:
        # Centre the integrand at its peak λ* = s/(v+ρ) so quad sees a well-scaled bump.
        peak = s / (v + rho)
        width = 1.0 / math.sqrt(v + rho)

        def integrand(u: float) -> float:
            lam = peak + u * width
            log_f = lam * s - lam * lam * v / 2 - rho * lam * lam / 2
            top = s * s / (2 * (v + rho))
            return math.exp(log_f - top) * math.sqrt(rho / (2 * math.pi)) * width

        value, _ = integrate.quad(integrand, -40, 40, limit=200)
        return math.log(value) + s * s / (2 * (v + rho))

    root = optimize.brentq(lambda s: log_mixture(s) - math.log(1 / alpha), 0.0, 1e5, xtol=1e-12)
    assert normal_mixture_boundary(v) == pytest.approx(root, rel=1e-7)


def test_interval_is_the_boundary_scaled_by_the_welch_standard_error() -> None:
    boundaries = oracle("confseq.boundaries")
    k_a, n_a, k_b, n_b = 1_430, 1_800, 13_050, 16_200
    got = proportion_difference_cs(k_a, n_a, k_b, n_b, alpha=0.05, v_opt=1_000.0)

    p_a, p_b = (k_a + 0.5) / (n_a + 1), (k_b + 0.5) / (n_b + 1)
    se = math.sqrt(p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b)
    v = n_a * n_b / (n_a + n_b)
    half = se * float(boundaries.normal_mixture_bound(v, 0.05, 1_000.0, 0.05, False)) / math.sqrt(v)
    d = k_a / n_a - k_b / n_b
    assert got.value == pytest.approx(d, abs=1e-15)
    assert (got.lower, got.upper) == pytest.approx((d - half, d + half), abs=1e-12)
    assert (got.n, got.n_baseline) == (n_a, n_b)


def test_mean_difference_uses_each_sides_sample_variance() -> None:
    rng = np.random.default_rng(7)
    a, b = np.abs(rng.normal(0, 2.0, 400)), np.abs(rng.normal(0, 1.5, 4_000))
    got = mean_difference_cs(len(a), a.sum(), (a * a).sum(), len(b), b.sum(), (b * b).sum())

    se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    v = effective_n(len(a), len(b))
    half = se * normal_mixture_boundary(v) / math.sqrt(v)
    assert got.value == pytest.approx(a.mean() - b.mean(), abs=1e-12)
    assert (got.lower, got.upper) == pytest.approx((got.value - half, got.value + half), abs=1e-9)


def test_wider_than_the_fixed_sample_interval_at_every_n() -> None:
    for n in (10, 1_000, 100_000, 10_000_000):
        assert normal_mixture_boundary(n / 2) / math.sqrt(n / 2) > stats.norm.ppf(0.975)


@pytest.mark.parametrize(("n_a", "n_b"), [(0, 10), (10, 0), (0, 0)])
def test_a_side_without_labels_has_no_difference(n_a: int, n_b: int) -> None:
    assert proportion_difference_cs(0, n_a, 0, n_b) == Difference(None, n_a, n_b)


@pytest.mark.parametrize(("n_a", "n_b"), [(1, 10), (10, 1), (0, 0)])
def test_a_mean_needs_two_samples_a_side(n_a: int, n_b: int) -> None:
    assert mean_difference_cs(n_a, 1.0 * n_a, 1.0 * n_a, n_b, 1.0 * n_b, 1.0 * n_b).value is None


def test_all_correct_on_both_sides_still_has_width() -> None:
    got = proportion_difference_cs(500, 500, 4_000, 4_000)
    assert got.value == 0.0
    assert got.lower is not None and got.upper is not None
    assert -1.0 <= got.lower < 0.0 < got.upper <= 1.0


def test_one_class_only_gives_a_valid_interval() -> None:
    got = proportion_difference_cs(0, 50, 0, 3)
    assert got.value == 0.0 and got.lower is not None and got.upper is not None
    assert got.lower == pytest.approx(-got.upper) and got.upper > 0


def test_bad_input_is_refused_with_the_modules_message() -> None:
    with pytest.raises(ValueError, match=re.escape(ALPHA_ERROR.format(alpha=1.5))):
        proportion_difference_cs(1, 2, 1, 2, alpha=1.5)
    with pytest.raises(
        ValueError, match=re.escape(COUNTS_ERROR.format(k_a=3, n_a=2, k_b=1, n_b=2))
    ):
        proportion_difference_cs(3, 2, 1, 2)
    with pytest.raises(ValueError, match=re.escape(PROBABILITY_ERROR.format(p0=0.8, p1=0.8))):
        bernoulli_increment(1, 2, p0=0.8, p1=0.8)


def test_coverage_holds_under_a_look_after_every_batch() -> None:
    """Unequal versions (0.70 vs 0.80), a 10% canary, looked at after each of 1,000 batches.

    The share of runs in which the true difference ever leaves the interval (after the
    first 20 canary labels) must stay under α = 5%: 400 runs, so ≤ 8% allows for noise of a
    true rate at 5% (a fixed 95% interval looked at this often misses in ~40% of runs).
    """
    rng = np.random.default_rng(20261206)
    runs, looks, per_look = 400, 1_000, 30
    n_a = rng.binomial(per_look, 0.1, (runs, looks)).cumsum(axis=1)
    n_b = per_look * np.arange(1, looks + 1) - n_a
    k_a = rng.binomial(n_a - np.c_[np.zeros(runs, int), n_a[:, :-1]], 0.7).cumsum(axis=1)
    k_b = rng.binomial(n_b - np.c_[np.zeros(runs, int), n_b[:, :-1]], 0.8).cumsum(axis=1)
    missed = np.zeros(runs, dtype=bool)
    for run in range(runs):
        for look in range(looks):
            if n_a[run, look] < 20:
                continue
            d = proportion_difference_cs(
                k_a[run, look], n_a[run, look], k_b[run, look], n_b[run, look]
            )
            assert d.lower is not None and d.upper is not None
            if not d.lower <= -0.1 <= d.upper:
                missed[run] = True
                break
    assert missed.mean() <= 0.08


def test_mean_difference_coverage_holds_under_a_look_after_every_batch() -> None:
    """Skewed errors (exponential |e|, MAE 1.0 vs 1.2), 10% canary, a look per batch of 20."""
    rng = np.random.default_rng(11)
    runs, looks, per_look = 300, 500, 20
    missed = 0
    for _ in range(runs):
        side = rng.random(looks * per_look) < 0.1
        errors = rng.exponential(np.where(side, 1.0, 1.2))
        n_a = np.cumsum(side)
        s_a, q_a = np.cumsum(errors * side), np.cumsum(errors * errors * side)
        s_b, q_b = np.cumsum(errors * ~side), np.cumsum(errors * errors * ~side)
        n_b = np.arange(1, len(side) + 1) - n_a
        for end in range(per_look - 1, len(side), per_look):
            if n_a[end] < 20:
                continue
            d = mean_difference_cs(
                int(n_a[end]), s_a[end], q_a[end], int(n_b[end]), s_b[end], q_b[end]
            )
            assert d.lower is not None and d.upper is not None
            if not d.lower <= -0.2 <= d.upper:
                missed += 1
                break
    assert missed / runs <= 0.08


def test_cusum_is_pages_recursion_and_the_largest_suffix_sum() -> None:
    rng = np.random.default_rng(1)
    steps = rng.normal(-0.1, 1.0, 500)
    s, largest = 0.0, 0.0
    for step in steps:
        s = max(0.0, s + step)
    for start in range(len(steps)):
        largest = max(largest, steps[start:].sum())
    assert cusum(steps) == pytest.approx(s, abs=1e-12)
    assert cusum(steps) == pytest.approx(largest, abs=1e-9)
    assert cusum([]) == 0.0


def test_a_buckets_increment_is_the_sum_of_its_labels_log_likelihood_ratios() -> None:
    labels = [1, 1, 0, 1, 0, 1, 1, 1]
    one_by_one = sum(
        stats.bernoulli.logpmf(y, 0.75) - stats.bernoulli.logpmf(y, 0.80) for y in labels
    )
    assert bernoulli_increment(sum(labels), len(labels), p0=0.80, p1=0.75) == pytest.approx(
        one_by_one, abs=1e-12
    )
    errors = np.array([0.3, 1.2, 0.7])
    one_by_one = sum(
        stats.norm.logpdf(e, 1.2, 0.5) - stats.norm.logpdf(e, 1.0, 0.5) for e in errors
    )
    got = normal_increment(errors.sum(), len(errors), mean0=1.0, mean1=1.2, sd=0.5)
    assert got == pytest.approx(one_by_one, abs=1e-12)


def _arl_by_hand(h: float, p: float, p0: float, p1: float, rate: float, cells: int) -> float:
    """The lattice chain again, built state by state with scipy's pmfs."""
    step = h / cells
    up, down = math.log((1 - p1) / (1 - p0)), math.log(p1 / p0)
    jumps: dict[int, float] = {}
    top = int(rate + 12 * math.sqrt(rate) + 12)
    for n in range(top + 1):
        for k in range(n + 1):
            x = min(max((k * down + (n - k) * up) / step, -cells - 1.0), cells + 1.0)
            weight = stats.poisson.pmf(n, rate) * stats.binom.pmf(k, n, p)
            low = math.floor(x)  # mass split between the lattice points around x, mean kept
            jumps[low] = jumps.get(low, 0.0) + weight * (low + 1 - x)
            jumps[low + 1] = jumps.get(low + 1, 0.0) + weight * (x - low)
    q = np.zeros((cells + 1, cells + 1))
    for i in range(cells + 1):
        for jump, weight in jumps.items():
            j = i + jump
            if j <= 0:
                q[i, 0] += weight
            elif j <= cells:
                q[i, j] += weight
    return float(np.linalg.solve(np.eye(cells + 1) - q, np.ones(cells + 1))[0])


@pytest.mark.parametrize(("p", "rate"), [(0.80, 4.0), (0.75, 4.0), (0.82, 10.0)])
def test_run_length_is_the_lattice_markov_chains(p: float, rate: float) -> None:
    """Same chain, built independently; the split (not rounding) keeps the drift exact."""
    got = bernoulli_cusum_arl(3.0, p=p, p0=0.8, p1=0.75, labels_per_bucket=rate, cells=80)
    assert got == pytest.approx(_arl_by_hand(3.0, p, 0.8, 0.75, rate, 80), rel=1e-9)


def _simulated_run_lengths(increments: object, runs: int, h: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    s, alarm = np.zeros(runs), np.zeros(runs)
    minute = 0
    while (alarm == 0).any():
        minute += 1
        s = np.maximum(0.0, s + increments(rng, runs))  # type: ignore[operator]
        alarm[(alarm == 0) & (s > h)] = minute
    return alarm


def test_run_length_matches_the_recursion_simulated() -> None:
    up, down = math.log(0.25 / 0.2), math.log(0.75 / 0.8)

    def increments(rng: np.random.Generator, runs: int) -> np.ndarray:
        n = rng.poisson(4, runs)
        k = rng.binomial(n, 0.8)
        return k * down + (n - k) * up

    times = _simulated_run_lengths(increments, 3_000, 3.0, seed=5)
    arl = bernoulli_cusum_arl(3.0, p=0.8, p0=0.8, p1=0.75, labels_per_bucket=4.0)
    assert arl == pytest.approx(times.mean(), abs=4 * times.std() / math.sqrt(len(times)))


def test_normal_run_length_matches_the_recursion_simulated() -> None:
    def increments(rng: np.random.Generator, runs: int) -> np.ndarray:
        n = rng.poisson(10, runs)
        totals = rng.normal(n * 1.0, 0.5 * np.sqrt(n))
        return (1.2 - 1.0) / 0.25 * (totals - n * 1.1)

    times = _simulated_run_lengths(increments, 3_000, 3.0, seed=6)
    arl = normal_cusum_arl(
        3.0, mean=1.0, sd=0.5, mean0=1.0, mean1=1.2, samples_per_bucket=10.0, cells=400
    )
    assert arl == pytest.approx(times.mean(), abs=4 * times.std() / math.sqrt(len(times)))


def test_threshold_for_a_target_run_length() -> None:
    at = partial(bernoulli_cusum_arl, p=0.8, p0=0.8, p1=0.75, labels_per_bucket=30.0)
    h = cusum_threshold(10_000.0, at)
    assert at(h) == pytest.approx(10_000.0, rel=1e-3)
    assert bernoulli_cusum_arl(h, p=0.75, p0=0.8, p1=0.75, labels_per_bucket=30.0) < 100


def test_module_docstring_examples_run() -> None:
    result = doctest.testmod(sequential, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0
