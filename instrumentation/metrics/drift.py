"""Data drift statistics: a window's bin counts against the training reference's shares.

The bins come from ``instrumentation.metrics.reference`` (fixed at training time and
saved with the model); a window's histogram is the sum of its buckets' counts.

The bins are the training reference's, always. Evidently's PSI instead re-bins the
reference and current data together with Sturges' rule and ignores ``n_bins``
(evidently#1400); we deliberately don't: bins that move with the current data
cannot be summed across buckets and make figures from different windows
incomparable.

>>> from instrumentation.metrics.reference import bin_counts, numeric_reference
>>> ref = numeric_reference([1.0, 2.0, 3.0, 4.0], n_bins=2)
>>> counts = bin_counts(ref, [0.0, 10.0, 11.0, 12.0])
>>> drift_report(ref, counts)["drifted"]
True
"""

from __future__ import annotations

import math
from typing import Any, Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

from instrumentation.metrics.reference import (
    NumericReference,
    Reference,
    check_shares,
)
from instrumentation.metrics.result import MetricValue

PSI_EPSILON: Final = 1e-4
"""Floor for both shares before PSI's logarithm.

An empty bin on either side would make PSI infinite; flooring shares at epsilon (no
renormalisation) gives a large finite figure instead. With 1e-4, a bin holding 10%
of the current data but none of the reference adds (0.1 − 1e-4)·ln(0.1/1e-4) ≈ 0.69.
"""

LENGTH_MISMATCH_ERROR: Final = "current_counts must have one count per reference bin"
NEGATIVE_COUNTS_ERROR: Final = "current_counts must be finite and non-negative"
THRESHOLD_ERROR: Final = "psi_threshold must be a positive number"


# --- statistics from bin counts ------------------------------------------------------


def psi(reference_shares: ArrayLike, current_counts: ArrayLike) -> MetricValue:
    """Population stability index, Σ (ref − cur)·ln(ref / cur) over the reference bins.

    Both shares are floored at ``PSI_EPSILON`` first. ``n`` is the current sample
    count; ``None`` when it is 0. 0 exactly for identical shares.
    """
    ref, counts, n = _validate(reference_shares, current_counts)
    if n == 0:
        return MetricValue.undefined(0)
    r = np.maximum(ref, PSI_EPSILON)
    c = np.maximum(counts / counts.sum(), PSI_EPSILON)
    return MetricValue(float(np.sum((r - c) * np.log(r / c))), n)


def js_distance(reference_shares: ArrayLike, current_counts: ArrayLike) -> MetricValue:
    """Jensen-Shannon distance in base 2, in [0, 1], over the reference bins.

    Equals ``scipy.spatial.distance.jensenshannon(ref, cur, base=2)`` (computed here
    with numpy only). Needs no epsilon: empty bins are handled exactly.
    """
    ref, counts, n = _validate(reference_shares, current_counts)
    if n == 0:
        return MetricValue.undefined(0)
    p, q = ref / ref.sum(), counts / counts.sum()
    m = (p + q) / 2.0
    divergence = (_kl_terms(p, m).sum() + _kl_terms(q, m).sum()) / math.log(2.0)
    return MetricValue(math.sqrt(max(divergence / 2.0, 0.0)), n)


def binned_ks(reference_shares: ArrayLike, current_counts: ArrayLike) -> MetricValue:
    """Kolmogorov-Smirnov statistic evaluated at the reference edges (numeric only).

    max |CDF_ref − CDF_cur| over the edges. This is the unbinned two-sample KS
    statistic of the training and current data restricted to those points, hence a
    lower bound of it (``scipy.stats.ks_2samp(...).statistic``). Meaningless for
    categorical bins, which have no order.
    """
    ref, counts, n = _validate(reference_shares, current_counts)
    if n == 0:
        return MetricValue.undefined(0)
    gaps = np.abs(np.cumsum(ref)[:-1] - np.cumsum(counts / counts.sum())[:-1])
    return MetricValue(float(gaps.max()) if gaps.size else 0.0, n)


def drift_report(
    reference: Reference, current_counts: ArrayLike, *, psi_threshold: float = 0.2
) -> dict[str, Any]:
    """All statistics for one feature or output in one window.

    Returns:
        ``{"psi": mv, "js_distance": mv, "ks": mv, "drifted": bool | None}`` with
        ``mv`` a :meth:`MetricValue.to_dict`; ``"ks"`` only for numeric references.
        ``drifted`` is ``psi >= psi_threshold``, ``None`` when the window is empty.

    Raises:
        ValueError: ``THRESHOLD_ERROR`` and the statistics' validation errors.
    """
    if not psi_threshold > 0 or math.isinf(psi_threshold):
        raise ValueError(THRESHOLD_ERROR)
    index = psi(reference.shares, current_counts)
    report: dict[str, Any] = {
        "psi": index.to_dict(),
        "js_distance": js_distance(reference.shares, current_counts).to_dict(),
    }
    if isinstance(reference, NumericReference):
        report["ks"] = binned_ks(reference.shares, current_counts).to_dict()
    report["drifted"] = None if index.value is None else index.value >= psi_threshold
    return report


# --- helpers -------------------------------------------------------------------------


def _validate(
    reference_shares: ArrayLike, current_counts: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], int]:
    check_shares(reference_shares)
    ref = np.asarray(reference_shares, dtype=float)
    counts = np.asarray(current_counts, dtype=float)
    if counts.shape != ref.shape:
        raise ValueError(LENGTH_MISMATCH_ERROR)
    if not np.isfinite(counts).all() or (counts < 0).any():
        raise ValueError(NEGATIVE_COUNTS_ERROR)
    return ref, counts, int(round(float(counts.sum())))


def _kl_terms(x: NDArray[np.float64], m: NDArray[np.float64]) -> NDArray[np.float64]:
    # scipy.special.rel_entr(x, m): x·ln(x/m) for x > 0, else 0 (m > 0 wherever x > 0).
    positive = x > 0
    safe_x = np.where(positive, x, 1.0)
    safe_m = np.where(positive, m, 1.0)
    return np.where(positive, x * np.log(safe_x / safe_m), 0.0)
