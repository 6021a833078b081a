"""Sequential threshold statistics from a version's per-bucket cells: what alert rules watch.

A point estimate compared with a constant every minute alarms again and again for a
model that merely sits near the constant (DESIGN.md, invariant 13). Each statistic here
is a one-sided CUSUM over the buckets of the look-back (``PredictionStore.bucket_cells``),
oldest first, exported *normalised*: ``S/h``, so the rule is ``> 1`` whatever ``h`` is
configured, and its false-alarm rate is the CUSUM's average run length at ``h``
(``metrics.sequential.bernoulli_cusum_arl``; numbers in the README, *Alerts you can trust*).

    accuracy_cusum     Bernoulli CUSUM of accuracy: threshold ``p0`` against the worse
                       ``p1``, from each bucket's confusion cells (right / labelled)

Buckets merged into hours by compaction enter as one step each: the CUSUM then only
restarts at hour boundaries there, which can only lower it (fewer false alarms).
Without labels in the look-back the statistic is 0 with ``n`` 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from instrumentation.aggregates.cells import Cells
from instrumentation.metrics.sequential import bernoulli_increment, cusum


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
    increments, labelled = [], 0.0
    for bucket in sorted(buckets):
        matrix = Cells(buckets[bucket]).matrix("confusion", classes)
        n = float(matrix.sum())
        labelled += n
        increments.append(bernoulli_increment(float(np.trace(matrix)), n, p0=p0, p1=p1))
    statistic = cusum(increments)
    return {
        "value": statistic / h,
        "n": int(labelled),
        "statistic": statistic,
        "h": h,
        "threshold": p0,
        "worse": p1,
    }


__all__ = ["accuracy_cusum"]
