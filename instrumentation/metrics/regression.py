"""Regression quality from additive sums, equal to ``sklearn.metrics`` on the same rows.

MAE, RMSE, MAPE and R² of a window come from :class:`RegressionSums` added up over
its buckets. ``r2`` uses ``Σy² - (Σy)²/n`` for the total sum of squares. When that
falls below its float64 rounding bound (``y_true`` constant or too close to constant
to tell) sklearn's ``force_finite`` rule applies: 1.0 for a perfect fit, else 0.0.
For a constant ``y_true`` that is not exactly representable (e.g. 0.1) sklearn's own
two-pass sum is rounding noise and can return a huge negative number; we return 0.0.

>>> regression_quality(RegressionSums.from_row(3.0, 2.5))["mae"]["value"]
0.5
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

from instrumentation.metrics.quality import FLOAT64_EPS
from instrumentation.metrics.result import MetricValue

_ROW_ERROR: Final = "y_true and y_pred must be finite numbers"


@dataclass(frozen=True, slots=True)
class RegressionSums:
    """Additive sums behind MAE, RMSE, MAPE and R²; ``RegressionSums()`` is the empty window.

    >>> s = RegressionSums.from_row(3.0, 2.5) + RegressionSums.from_row(-1.0, 0.0)
    >>> s.n, s.abs_error, s.y
    (2, 1.5, 2.0)
    """

    n: int = 0
    abs_error: float = 0.0
    squared_error: float = 0.0
    abs_pct_error: float = 0.0
    y: float = 0.0
    y_squared: float = 0.0

    @classmethod
    def from_row(cls, y_true: float, y_pred: float, *, offset: float = 0.0) -> RegressionSums:
        """One labelled row; the percentage error divides by ``max(|y_true|, eps)`` as sklearn.

        ``y`` and ``y_squared`` hold ``y_true − offset``: R² needs only the spread of
        ``y_true``, which no offset changes, and an offset near the targets' typical
        value keeps Σy² − (Σy)²/n from cancelling to noise (targets around 1e7 with a
        spread of 1 lose every digit otherwise). Every row summed together must share it.
        """
        if not (math.isfinite(y_true) and math.isfinite(y_pred) and math.isfinite(offset)):
            raise ValueError(_ROW_ERROR)
        err = abs(float(y_true) - float(y_pred))
        y = float(y_true) - offset
        return cls(1, err, err * err, err / max(abs(float(y_true)), FLOAT64_EPS), y, y * y)

    def __add__(self, other: RegressionSums) -> RegressionSums:
        if not isinstance(other, RegressionSums):
            return NotImplemented
        return RegressionSums(
            self.n + other.n,
            self.abs_error + other.abs_error,
            self.squared_error + other.squared_error,
            self.abs_pct_error + other.abs_pct_error,
            self.y + other.y,
            self.y_squared + other.y_squared,
        )


def _r2(sums: RegressionSums) -> float | None:
    if sums.n < 2:
        return None
    total = sums.y_squared - sums.y * sums.y / sums.n
    # Rounding bound of Σy² - (Σy)²/n accumulated row by row: below it y_true is constant.
    if total <= 2.0 * (sums.n + 2) * FLOAT64_EPS * sums.y_squared:
        return 1.0 if sums.squared_error == 0 else 0.0
    return 1.0 - sums.squared_error / total


def regression_quality(sums: RegressionSums) -> dict[str, Any]:
    """MAE, RMSE, MAPE and R² of a window, equal to their ``sklearn.metrics`` functions.

    Returns:
        ``{"mae", "rmse", "mape", "r2"}`` as ``MetricValue.to_dict()``; ``None`` values for an
        empty window, and R² also for a single row (sklearn returns NaN).
    """
    n = sums.n
    if n == 0:
        empty = MetricValue.undefined().to_dict()
        return {"mae": empty, "rmse": empty, "mape": empty, "r2": empty}
    r2 = _r2(sums)
    return {
        "mae": MetricValue(sums.abs_error / n, n).to_dict(),
        "rmse": MetricValue(math.sqrt(sums.squared_error / n), n).to_dict(),
        "mape": MetricValue(sums.abs_pct_error / n, n).to_dict(),
        "r2": MetricValue(r2, n).to_dict(),
    }
