"""The same figures over many windows at once: arrays of sums in, arrays of figures out.

A history (one window per step of a range) needs a figure for each of ~1,440
windows; calling the one-window functions that many times costs seconds. Each
function here takes a row per window and returns a row per window, computing
exactly what its one-window counterpart computes (named in its docstring; the
history's tests compare every point with ``GET /monitor``'s window, which those
counterparts compute). NaN marks an undefined figure (the counterpart's ``None``):
:func:`to_values` turns it back into ``None`` for JSON.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from instrumentation.metrics.drift import PSI_EPSILON
from instrumentation.metrics.intervals import Z_95

Floats = npt.NDArray[np.float64]


def rates(successes: npt.ArrayLike, n: npt.ArrayLike) -> tuple[Floats, Floats, Floats]:
    """``intervals.rate`` per row: ``(value, lower, upper)``, NaN where ``n`` is 0.

    The Wilson interval of :func:`~instrumentation.metrics.intervals.wilson_interval`,
    with its exact ends (0 for no successes, 1 for all).
    """
    s = np.asarray(successes, dtype=np.float64)
    total = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = s / total
        z2 = Z_95 * Z_95
        denom = 1.0 + z2 / total
        centre = (p + z2 / (2.0 * total)) / denom
        half = Z_95 * np.sqrt(p * (1.0 - p) / total + z2 / (4.0 * total * total)) / denom
    lower = np.where(s == 0, 0.0, np.maximum(0.0, centre - half))
    upper = np.where(s == total, 1.0, np.minimum(1.0, centre + half))
    empty = total == 0
    return (
        np.where(empty, np.nan, p),
        np.where(empty, np.nan, lower),
        np.where(empty, np.nan, upper),
    )


def psi(reference_shares: npt.ArrayLike, counts: npt.ArrayLike) -> Floats:
    """``drift.psi`` of each row of bin counts (windows × bins); NaN for an empty row."""
    ref = np.maximum(np.asarray(reference_shares, dtype=np.float64), PSI_EPSILON)
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = np.maximum(c / total[:, None], PSI_EPSILON)
        values = np.sum((ref - shares) * np.log(ref / shares), axis=1)
    return np.where(np.round(total) == 0, np.nan, values)


def estimated_accuracy(
    n: npt.ArrayLike, conf_sum: npt.ArrayLike, conf_sq_sum: npt.ArrayLike
) -> tuple[Floats, Floats, Floats]:
    """``estimated_quality(...)["accuracy"]`` per row: ``(value, lower, upper)``, NaN for n 0."""
    count = np.asarray(n, dtype=np.float64)
    conf = np.asarray(conf_sum, dtype=np.float64)
    square = np.asarray(conf_sq_sum, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = conf / count
        half = (Z_95 * np.sqrt(np.maximum(conf - square, 0.0)) + 0.5) / count
    empty = count == 0
    return (
        np.where(empty, np.nan, value),
        np.where(empty, np.nan, np.maximum(0.0, value - half)),
        np.where(empty, np.nan, np.minimum(1.0, value + half)),
    )


def between_groups(values: npt.ArrayLike, kept: npt.ArrayLike) -> Floats:
    """Fairlearn's ``method="between_groups"`` difference per row: max − min over kept groups.

    ``values`` and ``kept`` are windows × groups; NaN where no group is kept (as
    ``fairness.disparities`` reports ``None`` there).
    """
    v = np.asarray(values, dtype=np.float64)
    mask = np.asarray(kept, dtype=bool)
    high = np.max(np.where(mask, v, -np.inf), axis=1)
    low = np.min(np.where(mask, v, np.inf), axis=1)
    return np.where(mask.any(axis=1), high - low, np.nan)


def fairlearn_rate(numerator: npt.ArrayLike, denominator: npt.ArrayLike) -> Floats:
    """Fairlearn's TPR/FPR per cell: ``numerator / denominator``, 0.0 where it is 0."""
    num = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def to_values(values: npt.ArrayLike) -> list[Any]:
    """A row of figures as JSON values: floats, ``None`` for NaN."""
    return [None if v != v else v for v in np.asarray(values, dtype=np.float64).tolist()]
