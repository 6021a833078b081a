"""Group fairness from additive per-group confusion counts, matching fairlearn 0.15.

The service keeps, per time bucket and per value of a sensitive attribute, the four
cells of a binary confusion matrix. A window's counts are the sum of its buckets
(:class:`BinaryCounts` adds), and everything here is computed from those sums, so the
figures are exact and the same whichever worker computes them.

Two rules for zero denominators, on purpose:

* :func:`group_rates` (the per-group report) is honest: a rate whose denominator is
  0 (TPR of a group with no actual positives, precision of a group with no predicted
  positives) has ``value`` ``None`` and ``n`` 0.
* :func:`disparities` follows fairlearn's convention so that the numbers equal
  ``fairlearn.metrics.demographic_parity_difference`` and friends on the same rows:
  TPR and FPR of a group with no actual positives (negatives) are 0.0 there, because
  fairlearn computes them with ``sklearn.metrics.confusion_matrix(normalize="true")``,
  which turns 0/0 into 0. Where fairlearn returns NaN (a ratio 0/0), we return
  ``None``.

A group present in the mapping with zero samples is treated as absent, as fairlearn
never sees a group without rows.

>>> a = BinaryCounts(tn=2, fp=1, fn=1, tp=2)
>>> b = BinaryCounts(tn=2, fp=2, fn=0, tp=2)
>>> d = disparities({"a": a, "b": b})
>>> round(d["demographic_parity_difference"]["between_groups"]["value"], 6)
0.166667
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
from numpy.typing import ArrayLike

from instrumentation.metrics.intervals import rate
from instrumentation.metrics.result import MetricValue

MISSING_GROUP: Final = "__missing__"
"""Group value for a prediction that carried no value for a sensitive attribute."""

OVERFLOW_GROUP: Final = "__other__"
"""Group value for every value beyond the per-attribute cardinality cap.

Keeps metric attributes low-cardinality (privacy and backend cost); the store maps
values to it, this module treats it as an ordinary group.
"""

NEGATIVE_COUNT_ERROR: Final = "BinaryCounts cells must be non-negative integers"
CONFUSION_SHAPE_ERROR: Final = "confusion must be a square 2-D matrix of non-negative counts"
POSITIVE_INDEX_ERROR: Final = "positive_index is outside the confusion matrix"
CLASSES_MISMATCH_ERROR: Final = "confusion matrix size does not match the number of classes"
MIN_SAMPLES_ERROR: Final = "min_samples must be a non-negative integer"

Method = Literal["between_groups", "to_overall"]
METHODS: Final[tuple[Method, ...]] = ("between_groups", "to_overall")
"""fairlearn's ``method=`` values: max-minus-min across groups, or worst gap to overall."""

_RATE_NAMES: Final = ("selection_rate", "accuracy", "precision", "tpr", "fpr")


@dataclass(frozen=True, slots=True)
class BinaryCounts:
    """Binary confusion cells for one group: additive across buckets and workers.

    >>> (BinaryCounts(tn=1, fp=0, fn=0, tp=1) + BinaryCounts(tn=0, fp=1, fn=1, tp=0)).n
    4
    """

    tn: int = 0
    fp: int = 0
    fn: int = 0
    tp: int = 0

    def __post_init__(self) -> None:
        if any(int(c) != c or c < 0 for c in (self.tn, self.fp, self.fn, self.tp)):
            raise ValueError(NEGATIVE_COUNT_ERROR)

    @property
    def n(self) -> int:
        """Number of samples counted."""
        return self.tn + self.fp + self.fn + self.tp

    def __add__(self, other: BinaryCounts) -> BinaryCounts:
        return BinaryCounts(
            tn=self.tn + other.tn,
            fp=self.fp + other.fp,
            fn=self.fn + other.fn,
            tp=self.tp + other.tp,
        )

    @classmethod
    def from_confusion(cls, confusion: ArrayLike, positive_index: int) -> BinaryCounts:
        """One-vs-rest cells for class ``positive_index`` of a K×K confusion matrix.

        Args:
            confusion: Counts with rows = actual class, columns = predicted class
                (``sklearn.metrics.confusion_matrix`` layout).
            positive_index: Row/column of the class treated as positive.

        Raises:
            ValueError: ``CONFUSION_SHAPE_ERROR`` or ``POSITIVE_INDEX_ERROR``.
        """
        matrix = np.asarray(confusion)
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or (matrix < 0).any():
            raise ValueError(CONFUSION_SHAPE_ERROR)
        if not 0 <= positive_index < matrix.shape[0]:
            raise ValueError(POSITIVE_INDEX_ERROR)
        tp = int(matrix[positive_index, positive_index])
        fn = int(matrix[positive_index, :].sum()) - tp
        fp = int(matrix[:, positive_index].sum()) - tp
        tn = int(matrix.sum()) - tp - fn - fp
        return cls(tn=tn, fp=fp, fn=fn, tp=tp)


def one_vs_rest(
    confusions: Mapping[str, ArrayLike], classes: Sequence[str]
) -> dict[str, dict[str, BinaryCounts]]:
    """Split per-group multiclass confusions into one binary problem per class.

    fairlearn's disparity metrics are binary; for K classes, class ``c`` is treated as
    the positive label and every other class as negative (what fairlearn gives with
    ``y_true == c`` and ``y_pred == c``).

    Args:
        confusions: Group value → K×K confusion matrix (rows actual, columns predicted),
            indexed in the order of ``classes``.
        classes: The K class labels.

    Returns:
        Class → (group value → :class:`BinaryCounts`), ready for :func:`disparities`.

    Raises:
        ValueError: ``CLASSES_MISMATCH_ERROR`` or ``CONFUSION_SHAPE_ERROR``.
    """
    result: dict[str, dict[str, BinaryCounts]] = {c: {} for c in classes}
    for group, confusion in confusions.items():
        matrix = np.asarray(confusion)
        if matrix.ndim != 2 or matrix.shape[0] != len(classes):
            raise ValueError(CLASSES_MISMATCH_ERROR)
        for index, cls in enumerate(classes):
            result[cls][group] = BinaryCounts.from_confusion(matrix, index)
    return result


def _total(groups: Mapping[str, BinaryCounts]) -> BinaryCounts:
    total = BinaryCounts()
    for counts in groups.values():
        total = total + counts
    return total


def _rates_report(counts: BinaryCounts) -> dict[str, Any]:
    c = counts
    return {
        "n": c.n,
        "selection_rate": rate(c.tp + c.fp, c.n).to_dict(),
        "accuracy": rate(c.tp + c.tn, c.n).to_dict(),
        "precision": rate(c.tp, c.tp + c.fp).to_dict(),
        "tpr": rate(c.tp, c.tp + c.fn).to_dict(),
        "fpr": rate(c.fp, c.fp + c.tn).to_dict(),
    }


def _check_min_samples(min_samples: int) -> None:
    if int(min_samples) != min_samples or min_samples < 0:
        raise ValueError(MIN_SAMPLES_ERROR)


def group_rates(groups: Mapping[str, BinaryCounts], *, min_samples: int = 0) -> dict[str, Any]:
    """Per-group rates with Wilson intervals, and the same rates over all groups.

    Args:
        groups: Group value → confusion cells for one sensitive attribute.
        min_samples: Groups with fewer samples report ``{"n": n, "insufficient_data":
            True}`` instead of rates (and are left out of :func:`disparities` given the
            same threshold). ``overall`` always covers every group.

    Returns:
        ``{"by_group": {group: report}, "overall": report}`` where a report is
        ``{"n", "selection_rate", "accuracy", "precision", "tpr", "fpr"}``, each rate a
        :meth:`MetricValue.to_dict` whose ``n`` is the rate's denominator (all
        samples, predicted positives, actual positives, actual negatives) and whose
        ``value`` is ``None`` (``n`` 0) when that denominator is 0. Rates match
        fairlearn's ``selection_rate``, sklearn's ``accuracy_score`` /
        ``precision_score`` and fairlearn's ``true_positive_rate`` /
        ``false_positive_rate`` wherever those are defined.

    Raises:
        ValueError: ``MIN_SAMPLES_ERROR``.
    """
    _check_min_samples(min_samples)
    by_group: dict[str, Any] = {}
    for group, counts in groups.items():
        if counts.n < min_samples:
            by_group[group] = {"n": counts.n, "insufficient_data": True}
        else:
            by_group[group] = _rates_report(counts)
    return {"by_group": by_group, "overall": _rates_report(_total(groups))}


# --- disparities: fairlearn's conventions --------------------------------------------


def _fl_selection_rate(c: BinaryCounts) -> float:
    return (c.tp + c.fp) / c.n


def _fl_tpr(c: BinaryCounts) -> float:
    positives = c.tp + c.fn
    return c.tp / positives if positives else 0.0


def _fl_fpr(c: BinaryCounts) -> float:
    negatives = c.fp + c.tn
    return c.fp / negatives if negatives else 0.0


def _difference(by_group: list[float], overall: float, method: Method) -> float:
    if method == "between_groups":
        return max(by_group) - min(by_group)
    return max(abs(v - overall) for v in by_group)


def _divide(numerator: float, denominator: float) -> float:
    if denominator == 0.0:
        return float("nan") if numerator == 0.0 else float("inf")
    return numerator / denominator


def _ratio(by_group: list[float], overall: float, method: Method) -> float:
    if method == "between_groups":
        return _divide(min(by_group), max(by_group))
    ratios = [_divide(v, overall) for v in by_group]
    ratios = [1.0 / r if r > 1.0 else r for r in ratios]
    finite = [r for r in ratios if not np.isnan(r)]
    return min(finite) if finite else float("nan")


def _worst_case(values: list[float], worst: Callable[[list[float]], float]) -> float:
    # fairlearn applies Python's builtin max/min to the (tpr, fpr) pair, which keeps
    # the first element when it is NaN and skips a NaN second element. Reproduced.
    if np.isnan(values[0]):
        return values[0]
    return worst([v for v in values if not np.isnan(v)])


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not np.isnan(v)]  # pandas Series.mean skips NaN
    return float(np.mean(finite)) if finite else float("nan")


def _leaf(value: float, n: int) -> dict[str, Any]:
    if n == 0 or np.isnan(value):
        return MetricValue.undefined(n).to_dict()
    return MetricValue(float(value), n).to_dict()


def disparities(groups: Mapping[str, BinaryCounts], *, min_samples: int = 0) -> dict[str, Any]:
    """Disparity metrics of fairlearn, both methods, from per-group counts.

    Each figure equals the fairlearn 0.15 function of the same name called on the rows
    the counts came from, with ``method=`` ``"between_groups"`` / ``"to_overall"``
    (and ``agg=`` ``"worst_case"`` / ``"mean"`` for equalized odds), to float rounding.
    NaN there is ``None`` here. A single group gives difference 0 and ratio 1 (or
    ``None`` when its rate is 0, as 0/0), as in fairlearn; empty input, where fairlearn
    raises, gives ``None`` with ``n`` 0.

    Args:
        groups: Group value → confusion cells for one sensitive attribute.
        min_samples: Groups with fewer samples are excluded, including from the overall
            rates used by ``to_overall``: the result is fairlearn's on the rows of the
            remaining groups. Each leaf's ``n`` counts those rows.

    Returns:
        ``{"demographic_parity_difference": {method: mv}, "demographic_parity_ratio":
        {method: mv}, "equalized_odds_difference": {"worst_case": {method: mv},
        "mean": {method: mv}}, "equalized_odds_ratio": {same}, "equal_opportunity_difference":
        {method: mv}, "equal_opportunity_ratio": {method: mv}}``, each ``mv`` a
        :meth:`MetricValue.to_dict` without interval.

    Raises:
        ValueError: ``MIN_SAMPLES_ERROR``.
    """
    _check_min_samples(min_samples)
    rates = _Rates([c for c in groups.values() if c.n > 0 and c.n >= min_samples])
    return {
        "demographic_parity_difference": rates.leaves(_fl_selection_rate, _difference),
        "demographic_parity_ratio": rates.leaves(_fl_selection_rate, _ratio),
        "equalized_odds_difference": rates.equalized_odds(_difference, max),
        "equalized_odds_ratio": rates.equalized_odds(_ratio, min),
        "equal_opportunity_difference": rates.leaves(_fl_tpr, _difference),
        "equal_opportunity_ratio": rates.leaves(_fl_tpr, _ratio),
    }


Aggregate = Callable[[list[float], float, Method], float]
"""A disparity of the groups' rates, given the overall rate, by one method."""


class _Rates:
    """The kept groups' counts and their total: each disparity's leaves, per method."""

    def __init__(self, kept: list[BinaryCounts]) -> None:
        self.kept = kept
        total = BinaryCounts()
        for counts in kept:
            total = total + counts
        self.total = total
        self.n = total.n

    def per_method(
        self, rate_of: Callable[[BinaryCounts], float], aggregate: Aggregate
    ) -> dict[Method, float]:
        if not self.kept:
            return {m: float("nan") for m in METHODS}
        values = [rate_of(c) for c in self.kept]
        return {m: aggregate(values, rate_of(self.total), m) for m in METHODS}

    def leaves(
        self, rate_of: Callable[[BinaryCounts], float], aggregate: Aggregate
    ) -> dict[str, Any]:
        return self._leaves(self.per_method(rate_of, aggregate))

    def _leaves(self, values: Mapping[Method, float]) -> dict[str, Any]:
        return {m: _leaf(values[m], self.n) for m in METHODS}

    def equalized_odds(
        self, aggregate: Aggregate, worst: Callable[[list[float]], float]
    ) -> dict[str, Any]:
        tpr = self.per_method(_fl_tpr, aggregate)
        fpr = self.per_method(_fl_fpr, aggregate)
        return {
            "worst_case": self._leaves({m: _worst_case([tpr[m], fpr[m]], worst) for m in METHODS}),
            "mean": self._leaves({m: _mean([tpr[m], fpr[m]]) for m in METHODS}),
        }
