"""Differences between two model versions, each with a 95% interval and both sample counts.

Pure math over counts and sums (no I/O). The difference is always ``a − b``: the
version under test minus its baseline (in the service, the serving version minus the
one before it), so a negative accuracy difference whose interval lies below 0 says
the new version is worse.

- Proportions (accuracy, per-class recall and precision, selection rate): Newcombe's
  hybrid score interval (Newcombe 1998, method 10): each side's Wilson interval
  combined as ``d − √((p̂a − la)² + (ub − p̂b)²)`` … ``d + √((ua − p̂a)² + (p̂b − lb)²)``,
  without continuity correction — what statsmodels'
  ``confint_proportions_2indep(method="newcomb", compare="diff")`` computes.
- Mean absolute error: a normal (Welch) interval on the difference of means,
  ``d ± z·√(sa²/na + sb²/nb)`` with each side's sample variance of ``|error|``
  from the additive sums Σ|e| and Σe² (|e|² = e²): statsmodels'
  ``CompareMeans(...).zconfint_diff(usevar="unequal")`` on the same errors. Errors
  are not normal, but their mean is, at the sample sizes alerts wait for.

Zero-denominator policy: a side with no samples (or, for MAE, fewer than 2) gives an
undefined difference (``value`` ``None``), never a fake 0; its counts are still shown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from instrumentation.metrics.intervals import Z_95, wilson_interval


@dataclass(frozen=True, slots=True)
class Difference:
    """``value`` = figure of ``a`` − figure of ``b``, its interval, and each side's ``n``."""

    value: float | None
    n: int
    n_baseline: int
    lower: float | None = None
    upper: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"value", "lower", "upper", "n", "n_baseline"}``."""
        return {
            "value": self.value,
            "lower": self.lower,
            "upper": self.upper,
            "n": self.n,
            "n_baseline": self.n_baseline,
        }


def proportion_difference(
    successes_a: float, n_a: float, successes_b: float, n_b: float, *, z: float = Z_95
) -> Difference:
    """``successes_a/n_a − successes_b/n_b`` with Newcombe's hybrid score interval."""
    wilson_a = wilson_interval(successes_a, n_a, z=z)
    wilson_b = wilson_interval(successes_b, n_b, z=z)
    if wilson_a is None or wilson_b is None:
        return Difference(None, int(n_a), int(n_b))
    p_a, p_b = successes_a / n_a, successes_b / n_b
    (low_a, up_a), (low_b, up_b) = wilson_a, wilson_b
    d = p_a - p_b
    lower = d - math.sqrt((p_a - low_a) ** 2 + (up_b - p_b) ** 2)
    upper = d + math.sqrt((up_a - p_a) ** 2 + (p_b - low_b) ** 2)
    return Difference(d, int(n_a), int(n_b), max(-1.0, lower), min(1.0, upper))


def mean_difference(
    n_a: int,
    sum_a: float,
    sum_squares_a: float,
    n_b: int,
    sum_b: float,
    sum_squares_b: float,
    *,
    z: float = Z_95,
) -> Difference:
    """Difference of two means from their sums, with a normal interval (unequal variances)."""
    if n_a < 2 or n_b < 2:
        return Difference(None, n_a, n_b)
    mean_a, mean_b = sum_a / n_a, sum_b / n_b
    var_a = max(0.0, (sum_squares_a - sum_a * mean_a) / (n_a - 1))
    var_b = max(0.0, (sum_squares_b - sum_b * mean_b) / (n_b - 1))
    half = z * math.sqrt(var_a / n_a + var_b / n_b)
    d = mean_a - mean_b
    return Difference(d, n_a, n_b, d - half, d + half)
