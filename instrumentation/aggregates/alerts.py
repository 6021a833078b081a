"""Sequential threshold statistics from a version's per-bucket cells: what alert rules watch.

A point estimate compared with a constant every minute alarms again and again for a
model that merely sits near the constant (DESIGN.md, invariant 13). Each statistic here
is a one-sided CUSUM over the buckets of the look-back (``PredictionStore.bucket_cells``),
oldest first, exported *normalised*: ``S/h``, so the rule is ``> 1`` whatever ``h`` is
configured, and its false-alarm rate is the CUSUM's average run length at ``h``
(``metrics.sequential.bernoulli_cusum_arl``; numbers in the README, *Alerts you can trust*).

    accuracy_cusum     Bernoulli CUSUM of accuracy: threshold ``p0`` against the worse
                       ``p1``, from each bucket's confusion cells (right / labelled)
    estimated_accuracy_cusum
                       Gaussian CUSUM of the label-free estimated accuracy (each
                       prediction's confidence), same threshold and worse value, from
                       ``("estimate", "conf_sum" | "n")`` at prediction time
    mae_cusum          Gaussian CUSUM of the absolute error: threshold against a worse
                       (higher) MAE, from ``("regression", "abs_error" | "n")``

The Gaussian ones take ``sd`` from the look-back's own sums (Σx², Σx, n: the sample
standard deviation of the per-row values), so their run lengths hold approximately, for
that sd; in sd units the change is ``δ = |worse − threshold| / sd``.

Buckets merged into hours by compaction enter as one step each: the CUSUM then only
restarts at hour boundaries there, which can only lower it (fewer false alarms).
Without labels in the look-back (for the Gaussian ones: fewer than 2 rows, or no spread)
the statistic is 0 and ``n`` says why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from instrumentation.metrics.sequential import bernoulli_increment, cusum, normal_increment
from instrumentation.store.keys import encode_key


def accuracy_cusum(
    buckets: Mapping[int, Mapping[str, float]],
    classes: tuple[str, ...],
    *,
    p0: float,
    p1: float,
    h: float,
) -> dict[str, Any]:
    """``{"value": S/h, "n", "statistic": S, "h", "threshold": p0, "worse": p1}``.

    >>> cells = {'["confusion","a","a"]': 70.0, '["confusion","a","b"]': 30.0}
    >>> out = accuracy_cusum({0: cells}, ("a", "b"), p0=0.8, p1=0.75, h=9.5)
    >>> round(out["statistic"], 3), out["n"]
    (2.177, 100)
    """
    # Each bucket's cells read by their encoded keys: no bucket's keys are parsed.
    cells = [encode_key(("confusion", a, p)) for a in classes for p in classes]
    right = [encode_key(("confusion", c, c)) for c in classes]
    increments, labelled = [], 0.0
    for bucket in sorted(buckets):
        values = buckets[bucket]
        n = sum(values.get(key, 0.0) for key in cells)
        labelled += n
        k = sum(values.get(key, 0.0) for key in right)
        increments.append(bernoulli_increment(k, n, p0=p0, p1=p1))
    statistic = cusum(increments)
    return {
        "value": statistic / h,
        "n": int(labelled),
        "statistic": statistic,
        "h": h,
        "threshold": p0,
        "worse": p1,
    }


def estimated_accuracy_cusum(
    buckets: Mapping[int, Mapping[str, float]], *, threshold: float, worse: float, h: float
) -> dict[str, Any]:
    """The CUSUM of the mean confidence (the estimated accuracy) against ``threshold``."""
    return _normal_cusum(
        buckets, ("estimate", "conf_sum"), ("estimate", "conf_sq_sum"), ("estimate", "n"),
        threshold=threshold, worse=worse, h=h,
    )  # fmt: skip


def mae_cusum(
    buckets: Mapping[int, Mapping[str, float]], *, threshold: float, worse: float, h: float
) -> dict[str, Any]:
    """The CUSUM of the absolute error (MAE) against ``threshold``, ``worse`` above it.

    >>> cells = {'["regression","n"]': 4.0, '["regression","abs_error"]': 8.0,
    ...          '["regression","squared_error"]': 20.0}
    >>> out = mae_cusum({0: cells}, threshold=1.0, worse=1.5, h=9.5)
    >>> round(out["statistic"], 3), out["n"], round(out["sd"], 3)
    (1.125, 4, 1.155)
    """
    return _normal_cusum(
        buckets, ("regression", "abs_error"), ("regression", "squared_error"),
        ("regression", "n"), threshold=threshold, worse=worse, h=h,
    )  # fmt: skip


def _normal_cusum(
    buckets: Mapping[int, Mapping[str, float]],
    total: tuple[str, str],
    squares: tuple[str, str],
    count: tuple[str, str],
    *,
    threshold: float,
    worse: float,
    h: float,
) -> dict[str, Any]:
    keys = (encode_key(total), encode_key(squares), encode_key(count))
    sums = [tuple(buckets[b].get(key, 0.0) for key in keys) for b in sorted(buckets)]
    n = sum(k for _, _, k in sums)
    sx = sum(x for x, _, _ in sums)
    sxx = sum(q for _, q, _ in sums)
    variance = (sxx - sx * sx / n) / (n - 1) if n >= 2 else 0.0
    sd = math.sqrt(variance) if variance > 0 else None
    statistic = 0.0
    if sd is not None:
        statistic = cusum(
            normal_increment(x, k, mean0=threshold, mean1=worse, sd=sd) for x, _, k in sums
        )
    return {
        "value": statistic / h,
        "n": int(n),
        "statistic": statistic,
        "h": h,
        "threshold": threshold,
        "worse": worse,
        "sd": sd,
    }


__all__ = ["accuracy_cusum", "estimated_accuracy_cusum", "mae_cusum"]
