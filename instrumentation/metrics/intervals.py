"""Confidence intervals for rates estimated from counts."""

from __future__ import annotations

import math

from instrumentation.metrics.result import MetricValue

Z_95 = 1.959963984540054
"""Two-sided 95% standard-normal quantile, ``scipy.stats.norm.ppf(0.975)``."""


def wilson_interval(successes: float, n: float, *, z: float = Z_95) -> tuple[float, float] | None:
    """Wilson score interval for a binomial proportion ``successes / n``.

    Returns ``None`` when ``n`` is 0 (no interval exists). Unlike the normal
    approximation it stays inside [0, 1] and is informative for small ``n`` and
    for rates of exactly 0 or 1.
    """
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"wilson_interval expects 0 <= successes <= n, got {successes}/{n}")
    if n == 0:
        return None
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2.0 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denom
    # Exact at the ends: without this, rounding leaves 5e-17 / 0.9999999999999999.
    lower = 0.0 if successes == 0 else max(0.0, centre - half)
    upper = 1.0 if successes == n else min(1.0, centre + half)
    return lower, upper


def rate(successes: float, n: float) -> MetricValue:
    """A proportion with its Wilson interval; undefined (``None``) when ``n`` is 0."""
    interval = wilson_interval(successes, n)
    if interval is None:
        return MetricValue.undefined(0)
    return MetricValue(successes / n, int(n), interval[0], interval[1])
