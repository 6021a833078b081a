"""Judgments watched every minute: anytime-valid comparisons and CUSUM threshold statistics.

Pure math over cumulative counts and per-bucket sums (no I/O). A fixed-sample 95%
interval looked at every minute stops being 95% (DESIGN.md, invariant 13); the two
tools here keep their error rate however often they are looked at.

**Confidence sequences for a two-version comparison** (``proportion_difference_cs``,
``mean_difference_cs``). Over every label since the rollout began (cumulative, not a
window), the difference ``d̂ = figure_a − figure_b`` has a standard error
``se = √(s_a²/n_a + s_b²/n_b)`` (unequal variances, as ``compare.mean_difference``).
Standardised, ``X = V·(d̂ − d)/(se·√V)`` is asymptotically a Gaussian martingale in the
intrinsic time ``V = n_a·n_b/(n_a + n_b)`` (the effective sample size of a difference:
the ``n`` of one sample whose mean has the same variance when both sides' variances are
equal; its reciprocal is the ``(XᵀX)⁻¹`` entry of the two-arm regression that Lindon et
al.'s anytime-valid t-test uses, so ``V`` tracks the information however unevenly the two
versions' labels arrive — a 10% canary share gives ``V ≈ 0.9·n_a``). Robbins' normal
mixture over the drift of that martingale (precision ``ρ``) is a test supermartingale
``√(ρ/(V+ρ))·exp(X²/(2(V+ρ)))``; Ville's inequality bounds the chance it ever reaches
``1/α``, which gives the two-sided boundary ``|X| ≤ b(V) = √((V+ρ)·ln((V+ρ)/(ρα²)))``
and the interval ``d̂ ± se·b(V)/√V``. This is Waudby-Smith et al.'s asymptotic
confidence sequence (*Time-uniform central limit theory and asymptotic confidence
sequences*, 2021, Thm 2.2) for a difference, and the ``ν → ∞`` limit of the mixture
t-test of Lindon, Ham, Tingley & Bojinov (Netflix, 2022): P(the true difference *ever*
leaves the interval) ≤ α, asymptotically, with the labels of each side i.i.d. given
their version. Chosen over a Bernoulli-specific (beta-binomial) mixture because one
boundary serves proportions and means alike from the sums the store keeps, and over
betting CSs because those need every label's value, not sums.

``ρ`` sets where the boundary is tightest: ``v_opt`` (in effective labels ``V``) with
``ρ = v_opt / (2 ln(1/α) + ln(1 + 2 ln(1/α)))`` (Howard et al. 2021, §3.5; confseq's
``best_rho``). Default ``v_opt = 1,000``: a 10% canary at 300 labels a minute reaches it
in ~40 minutes, where 2–5 point regressions are being decided; at ``V = v_opt`` the
interval is 1.55× the fixed-sample one, at 10× or 1/10 of it at most 1.2× wider than at
its best ``ρ``. The interval is not intersected over time (that needs history); the
alert's ``for:`` absorbs the wobble.

Variances: a proportion's ``s² = p̃(1 − p̃)`` with ``p̃ = (k + ½)/(n + 1)``, so a side
that is all correct (or all wrong) still has width (the plain ``p̂(1 − p̂)`` would be a
zero-width interval at 100%); a mean's from Σx and Σx² (sample variance).

**CUSUM threshold statistics** (``bernoulli_increment``, ``normal_increment``,
``cusum``): Page's one-sided CUSUM ``S_k = max(0, S_{k−1} + ℓ_k)`` where ``ℓ_k`` is the
log-likelihood ratio of bucket ``k`` (bad value ``p1`` against the threshold value
``p0``), which depends only on the bucket's additive sums (correct/total labels; Σ|e|
and n). Restarted from 0 at the start of the buckets it is given, ``cusum`` is the
largest suffix sum: once the statistic has been at 0 within the buckets kept it equals
the unbounded recursion, and otherwise it is smaller (a fixed look-back only lowers the
false-alarm rate). ``*_cusum_arl`` give the average run length, in buckets, until
``S > h`` for a stated true value (the false-alarm ARL at ``p0`` — any better figure
alarms less often — and, at ``p1``, the zero-state detection delay), by the Markov
chain of Brook & Evans (1972): ``S`` on a lattice of ``cells`` steps of ``h/cells``,
each bucket's increment split between its two neighbouring lattice steps (mean kept),
the number of labels in a bucket Poisson. ``cusum_threshold`` finds the ``h`` giving a
target ARL by bisection.

Which statistic for which judgment (the numbers are in ``bench/RESULTS.md``, *Alerts*):

- a rollout (any proportion or MAE, version against version): the confidence sequence
  over the cumulative sums since the rollout began; alarm when it excludes 0 on the
  worse side;
- accuracy below a threshold: ``bernoulli_increment`` with ``p0`` = the threshold and
  ``p1`` a stated worse value, over the buckets of the look-back; MAE above one (and the
  label-free estimated accuracy, a mean of each prediction's expected correctness):
  ``normal_increment`` with ``sd`` from the reference recorded with the model;
- a fairness disparity above a threshold: the confidence sequence of the two groups'
  difference (selection rate, TPR, FPR) over the version's labels, alarm when its lower
  bound on the gap exceeds the threshold (a CUSUM on a difference of two per-bucket rates
  has no clean per-bucket likelihood ratio).

Zero-denominator policy: a comparison with a side without labels (for means, fewer than
2) has ``value`` ``None``, never a fake 0, and keeps both counts; an empty bucket adds
0 to a CUSUM.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np

from instrumentation.metrics.compare import Difference

DEFAULT_ALPHA = 0.05
"""Chance that the true difference ever leaves the confidence sequence."""

DEFAULT_V_OPT = 1_000.0
"""Effective labels ``n_a·n_b/(n_a+n_b)`` at which the confidence sequence is tightest."""

DEFAULT_CELLS = 600
"""Lattice steps between 0 and ``h`` in the ARL Markov chain (ARL error well under 1%)."""

ALPHA_ERROR = "alpha must be in (0, 1), got {alpha!r}"
V_OPT_ERROR = "v_opt must be > 0, got {v_opt!r}"
COUNTS_ERROR = "expected 0 <= successes <= n on each side, got {k_a}/{n_a} and {k_b}/{n_b}"
PROBABILITY_ERROR = "p0 and p1 must be distinct and in (0, 1), got p0={p0!r}, p1={p1!r}"
MEANS_ERROR = "mean0 and mean1 must differ and sd be > 0, got {mean0!r}, {mean1!r}, sd {sd!r}"
THRESHOLD_ERROR = "h must be > 0, got {h!r}"
RATE_ERROR = "the labels per bucket must be > 0, got {rate!r}"
ARL_ERROR = "no h in [{low}, {high}] gives an ARL of {arl!r}"


def mixture_rho(v_opt: float, *, alpha: float = DEFAULT_ALPHA) -> float:
    """The mixture precision ``ρ`` that makes the two-sided boundary tightest at ``v_opt``."""
    _check_alpha(alpha)
    if not v_opt > 0:
        raise ValueError(V_OPT_ERROR.format(v_opt=v_opt))
    log_inv = math.log(1.0 / alpha)
    return v_opt / (2.0 * log_inv + math.log(1.0 + 2.0 * log_inv))


def normal_mixture_boundary(
    v: float, *, alpha: float = DEFAULT_ALPHA, v_opt: float = DEFAULT_V_OPT
) -> float:
    """Robbins' two-sided normal-mixture boundary ``b(V) = √((V+ρ)·ln((V+ρ)/(ρα²)))``.

    A Gaussian martingale ``X`` with variance process ``V`` satisfies ``|X_t| < b(V_t)``
    for every ``t`` at once with probability at least ``1 − α``.

    >>> round(normal_mixture_boundary(1000.0), 3)
    95.982
    """
    rho = mixture_rho(v_opt, alpha=alpha)
    return math.sqrt((v + rho) * math.log((v + rho) / (rho * alpha * alpha)))


def effective_n(n_a: float, n_b: float) -> float:
    """``n_a·n_b/(n_a + n_b)``: the intrinsic time of a difference (0 if a side is empty)."""
    return 0.0 if n_a <= 0 or n_b <= 0 else n_a * n_b / (n_a + n_b)


def difference_cs(
    value: float,
    variance_a: float,
    n_a: float,
    variance_b: float,
    n_b: float,
    *,
    alpha: float = DEFAULT_ALPHA,
    v_opt: float = DEFAULT_V_OPT,
) -> tuple[float, float]:
    """``(lower, upper)`` of the asymptotic confidence sequence around a difference ``value``."""
    v = effective_n(n_a, n_b)
    se = math.sqrt(variance_a / n_a + variance_b / n_b)
    half = se * normal_mixture_boundary(v, alpha=alpha, v_opt=v_opt) / math.sqrt(v)
    return value - half, value + half


def proportion_difference_cs(
    successes_a: float,
    n_a: float,
    successes_b: float,
    n_b: float,
    *,
    alpha: float = DEFAULT_ALPHA,
    v_opt: float = DEFAULT_V_OPT,
) -> Difference:
    """``successes_a/n_a − successes_b/n_b`` with its anytime-valid interval (clipped to ±1).

    >>> d = proportion_difference_cs(1500, 2000, 16000, 20000)
    >>> round(d.value, 3), round(d.lower, 3), round(d.upper, 3)
    (-0.05, -0.081, -0.019)
    """
    _check_alpha(alpha)
    if not (0 <= successes_a <= n_a and 0 <= successes_b <= n_b):
        raise ValueError(COUNTS_ERROR.format(k_a=successes_a, n_a=n_a, k_b=successes_b, n_b=n_b))
    if n_a == 0 or n_b == 0:
        return Difference(None, int(n_a), int(n_b))
    value = successes_a / n_a - successes_b / n_b
    lower, upper = difference_cs(
        value,
        _shrunk_variance(successes_a, n_a),
        n_a,
        _shrunk_variance(successes_b, n_b),
        n_b,
        alpha=alpha,
        v_opt=v_opt,
    )
    return Difference(value, int(n_a), int(n_b), max(-1.0, lower), min(1.0, upper))


def mean_difference_cs(
    n_a: int,
    sum_a: float,
    sum_squares_a: float,
    n_b: int,
    sum_b: float,
    sum_squares_b: float,
    *,
    alpha: float = DEFAULT_ALPHA,
    v_opt: float = DEFAULT_V_OPT,
) -> Difference:
    """Difference of two means (e.g. MAE from Σ|e|, Σe², n) with its anytime-valid interval."""
    _check_alpha(alpha)
    if n_a < 2 or n_b < 2:
        return Difference(None, n_a, n_b)
    mean_a, mean_b = sum_a / n_a, sum_b / n_b
    var_a = max(0.0, (sum_squares_a - sum_a * mean_a) / (n_a - 1))
    var_b = max(0.0, (sum_squares_b - sum_b * mean_b) / (n_b - 1))
    value = mean_a - mean_b
    lower, upper = difference_cs(value, var_a, n_a, var_b, n_b, alpha=alpha, v_opt=v_opt)
    return Difference(value, n_a, n_b, lower, upper)


def bernoulli_increment(successes: float, n: float, *, p0: float, p1: float) -> float:
    """One bucket's log-likelihood ratio of ``p1`` against ``p0`` from ``successes`` of ``n``.

    With ``p1 < p0`` (e.g. accuracy 0.75 against the threshold 0.80) the CUSUM of these
    climbs when the rate falls.
    """
    _check_probabilities(p0, p1)
    return successes * math.log(p1 / p0) + (n - successes) * math.log((1 - p1) / (1 - p0))


def normal_increment(total: float, n: float, *, mean0: float, mean1: float, sd: float) -> float:
    """One bucket's Gaussian log-likelihood ratio of mean ``mean1`` against ``mean0``.

    ``(mean1 − mean0)/sd² · (total − n·(mean0 + mean1)/2)`` from the bucket's sum and count:
    with ``mean1 > mean0`` (MAE above its threshold) it climbs when the mean rises.
    """
    _check_means(mean0, mean1, sd)
    return (mean1 - mean0) / (sd * sd) * (total - n * (mean0 + mean1) / 2.0)


def cusum(increments: Iterable[float]) -> float:
    """Page's CUSUM ``S_k = max(0, S_{k−1} + ℓ_k)`` from 0 over the buckets, oldest first."""
    s = 0.0
    for increment in increments:
        s = max(0.0, s + increment)
    return s


def bernoulli_cusum_arl(
    h: float,
    *,
    p: float,
    p0: float,
    p1: float,
    labels_per_bucket: float,
    cells: int = DEFAULT_CELLS,
) -> float:
    """Average run length, in buckets, of the Bernoulli CUSUM until ``S > h``.

    Each bucket holds a Poisson(``labels_per_bucket``) number of labels, each correct
    with probability ``p``. At ``p = p0`` this is the false-alarm ARL (a better ``p``
    alarms less often); at ``p = p1`` the zero-state detection delay.
    """
    _check_probabilities(p0, p1)
    _check_rate(labels_per_bucket)
    up, down = math.log((1 - p1) / (1 - p0)), math.log(p1 / p0)
    top = int(labels_per_bucket + 12.0 * math.sqrt(labels_per_bucket) + 12.0)
    n = np.arange(top + 1)
    log_fact = np.array([math.lgamma(k + 1.0) for k in range(top + 1)])
    log_poisson = n * math.log(labels_per_bucket) - labels_per_bucket - log_fact
    ns, ks = np.meshgrid(n, n, indexing="ij")
    valid = ks <= ns
    log_binomial = np.where(
        valid,
        log_fact[ns] - log_fact[ks] - log_fact[np.where(valid, ns - ks, 0)]
        + ks * math.log(p) + (ns - ks) * math.log1p(-p),
        -np.inf,
    )  # fmt: skip
    weights = np.exp(log_poisson[:, None] + log_binomial)
    values = ks * down + (ns - ks) * up
    return _lattice_arl(h, values[valid], weights[valid], cells)


def normal_cusum_arl(
    h: float,
    *,
    mean: float,
    sd: float,
    mean0: float,
    mean1: float,
    samples_per_bucket: float,
    cells: int = DEFAULT_CELLS,
) -> float:
    """Average run length, in buckets, of the Gaussian-mean CUSUM until ``S > h``.

    Samples are normal with mean ``mean`` and standard deviation ``sd`` (the one in the
    increments, from the reference); a bucket holds a Poisson(``samples_per_bucket``)
    number of them.
    """
    _check_means(mean0, mean1, sd)
    _check_rate(samples_per_bucket)
    scale = (mean1 - mean0) / (sd * sd)
    shift = scale * (mean - (mean0 + mean1) / 2.0)  # an increment's mean, per sample
    step = h / cells
    edges = (np.arange(-cells - 1, cells + 2) - 0.5) * step
    centres = np.arange(-cells - 1, cells + 1) * step
    top = int(samples_per_bucket + 12.0 * math.sqrt(samples_per_bucket) + 12.0)
    erfc = np.frompyfunc(math.erfc, 1, 1)
    weights = np.zeros(len(centres))
    lower_tail = 0.0
    for n in range(top + 1):
        poisson = math.exp(
            n * math.log(samples_per_bucket) - samples_per_bucket - math.lgamma(n + 1.0)
        )
        if n == 0:
            weights[cells + 1] += poisson  # an empty bucket adds exactly 0
            continue
        spread = abs(scale) * sd * math.sqrt(2.0 * n)
        cdf = 0.5 * erfc(-(edges - n * shift) / spread).astype(float)
        weights += poisson * np.diff(cdf)
        lower_tail += poisson * float(cdf[0])
    return _lattice_arl(h, centres, weights, cells, lower_tail=lower_tail)


def cusum_threshold(
    arl: float, arl_at: Callable[[float], float], *, low: float = 0.05, high: float = 25.0
) -> float:
    """The ``h`` whose ARL ``arl_at(h)`` equals ``arl`` (bisection; ARL grows with ``h``).

    >>> from functools import partial
    >>> at = partial(bernoulli_cusum_arl, p=0.8, p0=0.8, p1=0.75, labels_per_bucket=10.0)
    >>> h = cusum_threshold(1_000.0, at)
    >>> abs(at(h) / 1_000.0 - 1.0) < 1e-3
    True
    """
    if not (arl_at(low) <= arl <= arl_at(high)):
        raise ValueError(ARL_ERROR.format(low=low, high=high, arl=arl))
    for _ in range(60):
        middle = math.sqrt(low * high)
        if arl_at(middle) < arl:
            low = middle
        else:
            high = middle
        if high - low < 1e-6 * high:
            break
    return (low + high) / 2.0


def _lattice_arl(
    h: float,
    values: np.ndarray,
    weights: np.ndarray,
    cells: int,
    *,
    lower_tail: float = 0.0,
) -> float:
    """ARL from 0 of ``S ↦ max(0, S + X)`` on the lattice ``{0, h/cells, …}`` until ``S > h``.

    ``X`` takes ``values`` with probabilities ``weights`` (plus ``lower_tail`` far below),
    each split between the two lattice steps around it so that its mean is kept (plain
    rounding shifts the drift, and the ARL is exponential in it).
    """
    if not h > 0:
        raise ValueError(THRESHOLD_ERROR.format(h=h))
    step = h / cells
    scaled = np.clip(values / step, -cells - 1.0, cells + 1.0)
    floor = np.floor(scaled)
    above = scaled - floor  # split between the two lattice points around it, mean kept
    index = floor.astype(np.int64) + cells + 1
    pmf = np.zeros(2 * cells + 4)  # index k + cells + 1 holds P(X on k steps)
    np.add.at(pmf, index, weights * (1.0 - above))
    np.add.at(pmf, index + 1, weights * above)
    pmf = pmf[:-1]
    pmf[0] += lower_tail
    states = np.arange(cells + 1)  # S = i·step for i = 0..cells; i > cells is an alarm
    jumps = states[None, :] - states[:, None]
    q = pmf[jumps + cells + 1]
    below = np.concatenate(([0.0], np.cumsum(pmf)))  # below[m] = P(X ≤ m − cells − 2)
    q[:, 0] = below[cells + 1 - states + 1]  # P(X ≤ −i steps): back to 0
    run = np.linalg.solve(np.eye(cells + 1) - q, np.ones(cells + 1))
    return float(run[0])


def _shrunk_variance(successes: float, n: float) -> float:
    p = (successes + 0.5) / (n + 1.0)
    return p * (1.0 - p)


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(ALPHA_ERROR.format(alpha=alpha))


def _check_probabilities(p0: float, p1: float) -> None:
    if not (0 < p0 < 1 and 0 < p1 < 1 and p0 != p1):
        raise ValueError(PROBABILITY_ERROR.format(p0=p0, p1=p1))


def _check_means(mean0: float, mean1: float, sd: float) -> None:
    if mean0 == mean1 or not sd > 0:
        raise ValueError(MEANS_ERROR.format(mean0=mean0, mean1=mean1, sd=sd))


def _check_rate(rate: float) -> None:
    if not rate > 0:
        raise ValueError(RATE_ERROR.format(rate=rate))
