"""Quality estimated from calibrated scores before labels arrive (NannyML's CBPE idea).

If a model's class probabilities are calibrated, a row predicted as class ``k`` with score
vector ``p`` is correct with probability ``p_k``. Summed over rows this gives an *expected*
confusion, one class against the rest:

* ``TP_k = Σ p_k`` over rows predicted ``k``;
* ``FP_k = Σ (1 - p_k)`` over rows predicted ``k`` = ``predicted_count_k - TP_k``;
* ``FN_k = Σ p_k`` over rows predicted otherwise = ``prob_sum_k - TP_k``.

Estimated precision, recall and F1 follow from these as in ``classification_quality`` (a
zero denominator gives ``None``; the macro average leaves such classes out). The estimated
accuracy is ``Σ c / n`` where ``c`` is the probability of the predicted class; the number of
correct rows is then Poisson-binomial with variance ``Σ c (1 - c)``, so its interval is
``± (Z_95 · sqrt(Σ c - Σ c²) + ½) / n`` clipped to [0, 1]: where the realised accuracy
should fall (about 96% of windows) if the scores are calibrated. The ``½`` is the continuity
correction for an integer count; without it coverage falls just short of 95%.

All the sums are additive (:class:`EstimateSums`), so they fit the per-bucket store. For two
classes, ``classes[1]`` is the *positive* class and its figures are also reported under
``"positive"`` as the headline.

The estimate is only as good as the calibration: over-confident scores (pushed toward 0/1)
over-estimate accuracy, so :func:`estimation_error` (estimate minus realised) is positive.

>>> rows = [([0.9, 0.1], 0), ([0.3, 0.7], 1)]
>>> sums = sum((EstimateSums.from_row(p, k) for p, k in rows), EstimateSums.zero(2))
>>> estimated_quality(sums, ["no", "yes"])["accuracy"]["value"]
0.8
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from instrumentation.metrics.intervals import Z_95
from instrumentation.metrics.quality import _index, _nan_average, _probabilities
from instrumentation.metrics.result import MetricValue

_SUMS_SHAPE_ERROR: Final = (
    "predicted_count, predicted_prob_sum and prob_sum must have one entry per class (K >= 2)"
)
_ADD_ERROR: Final = "cannot add EstimateSums over different numbers of classes"
_CLASSES_ERROR: Final = "classes must name the {k} classes of sums, got {got}"
_REALISED_ERROR: Final = "realised must be classification_quality over the estimated classes"
_METRICS: Final = ("precision", "recall", "f1")


@dataclass(frozen=True, slots=True)
class EstimateSums:
    """Additive score sums behind the estimated quality of a window.

    Attributes:
        n: Predictions.
        conf_sum: Σ c, c = probability of the predicted class.
        conf_sq_sum: Σ c².
        predicted_count: Per class k, rows predicted k.
        predicted_prob_sum: Per class k, Σ p_k over rows predicted k.
        prob_sum: Per class k, Σ p_k over all rows.
    """

    n: int
    conf_sum: float
    conf_sq_sum: float
    predicted_count: tuple[int, ...]
    predicted_prob_sum: tuple[float, ...]
    prob_sum: tuple[float, ...]

    def __post_init__(self) -> None:
        k = len(self.predicted_count)
        if k < 2 or len(self.predicted_prob_sum) != k or len(self.prob_sum) != k:
            raise ValueError(_SUMS_SHAPE_ERROR)

    @classmethod
    def zero(cls, n_classes: int) -> EstimateSums:
        """The sums of an empty window over ``n_classes`` classes."""
        return cls(0, 0.0, 0.0, (0,) * n_classes, (0.0,) * n_classes, (0.0,) * n_classes)

    @classmethod
    def from_row(cls, probabilities: Sequence[float], predicted_index: int) -> EstimateSums:
        """One prediction: its class probabilities and the index of the class it predicted.

        Raises:
            ValueError: If the probabilities are not a distribution over at least two
                classes (within ``PROBABILITY_SUM_TOLERANCE``) or the index is out of range.
        """
        p = _probabilities(probabilities)
        k = _index(predicted_index, p.size, "predicted_index")
        c = float(p[k])
        onehot = np.zeros_like(p)
        onehot[k] = 1.0
        return cls(
            1,
            c,
            c * c,
            tuple(int(x) for x in onehot),
            tuple(float(x) for x in onehot * p),
            tuple(float(x) for x in p),
        )

    def __add__(self, other: EstimateSums) -> EstimateSums:
        if not isinstance(other, EstimateSums):
            return NotImplemented
        if len(other.predicted_count) != len(self.predicted_count):
            raise ValueError(_ADD_ERROR)
        return EstimateSums(
            self.n + other.n,
            self.conf_sum + other.conf_sum,
            self.conf_sq_sum + other.conf_sq_sum,
            tuple(a + b for a, b in zip(self.predicted_count, other.predicted_count, strict=True)),
            tuple(
                a + b
                for a, b in zip(self.predicted_prob_sum, other.predicted_prob_sum, strict=True)
            ),
            tuple(a + b for a, b in zip(self.prob_sum, other.prob_sum, strict=True)),
        )


def _estimated_accuracy(sums: EstimateSums) -> MetricValue:
    if sums.n == 0:
        return MetricValue.undefined()
    value = sums.conf_sum / sums.n
    half = (Z_95 * math.sqrt(max(sums.conf_sum - sums.conf_sq_sum, 0.0)) + 0.5) / sums.n
    return MetricValue(value, sums.n, max(0.0, value - half), min(1.0, value + half))


def _divide(numerator: float, denominator: float, n: int) -> MetricValue:
    return MetricValue(numerator / denominator, n) if denominator > 0 else MetricValue.undefined()


def estimated_quality(sums: EstimateSums, classes: Sequence[str]) -> dict[str, Any]:
    """Estimated accuracy, precision, recall and F1 of a window from its score sums.

    Args:
        sums: The window's summed :class:`EstimateSums`.
        classes: The class names, in index order.

    Returns:
        ``{"accuracy": mv, "precision"|"recall"|"f1": {"per_class": {name: mv}, "macro": mv
        [, "positive": mv]}, "expected_confusion": {"classes", "tp", "fp", "fn"},
        "positive_class": name | None}`` with ``MetricValue.to_dict()`` leaves; ``"positive"``
        and ``positive_class`` only for two classes. Precision's ``n`` is the rows predicted
        as the class, the other figures' ``n`` all rows.

    Raises:
        ValueError: If ``classes`` does not match the number of classes in ``sums``.
    """
    k = len(sums.predicted_count)
    if len(classes) != k:
        raise ValueError(_CLASSES_ERROR.format(k=k, got=len(classes)))
    tp = [float(x) for x in sums.predicted_prob_sum]
    fp = [max(c - t, 0.0) for c, t in zip(sums.predicted_count, tp, strict=True)]
    fn = [max(s - t, 0.0) for s, t in zip(sums.prob_sum, tp, strict=True)]
    figures = {
        "precision": [_divide(tp[i], tp[i] + fp[i], sums.predicted_count[i]) for i in range(k)],
        "recall": [_divide(tp[i], tp[i] + fn[i], sums.n) for i in range(k)],
        "f1": [_divide(2.0 * tp[i], 2.0 * tp[i] + fp[i] + fn[i], sums.n) for i in range(k)],
    }
    positive = classes[1] if k == 2 else None
    out: dict[str, Any] = {"accuracy": _estimated_accuracy(sums).to_dict()}
    for key, per_class in figures.items():
        macro = _nan_average([mv.value for mv in per_class], None)
        out[key] = {
            "per_class": {name: mv.to_dict() for name, mv in zip(classes, per_class, strict=True)},
            "macro": MetricValue(macro, sums.n if macro is not None else 0).to_dict(),
        }
        if positive is not None:
            out[key]["positive"] = per_class[1].to_dict()
    out["expected_confusion"] = {"classes": list(classes), "tp": tp, "fp": fp, "fn": fn}
    out["positive_class"] = positive
    return out


def _gap(estimated: dict[str, Any], realised: dict[str, Any]) -> float | None:
    e, r = estimated["value"], realised["value"]
    return None if e is None or r is None else float(e - r)


def estimation_error(estimated: dict[str, Any], realised: dict[str, Any]) -> dict[str, Any]:
    """How far the estimate was from the realised quality: estimated minus realised.

    Args:
        estimated: :func:`estimated_quality` of a window.
        realised: ``classification_quality`` of the same window once labelled.

    Returns:
        ``{"accuracy": d, "precision"|"recall"|"f1": {"per_class": {name: d}, "macro": d
        [, "positive": d]}}``, each ``d`` a float or ``None`` where either side is undefined.
    """
    out: dict[str, Any] = {"accuracy": _gap(estimated["accuracy"], realised["accuracy"])}
    positive = estimated.get("positive_class")
    for key in _METRICS:
        est, real = estimated[key], realised[key]
        if set(est["per_class"]) != set(real["per_class"]):
            raise ValueError(_REALISED_ERROR)
        out[key] = {
            "per_class": {c: _gap(mv, real["per_class"][c]) for c, mv in est["per_class"].items()},
            "macro": _gap(est["macro"], real["macro"]),
        }
        if positive is not None:
            out[key]["positive"] = _gap(est["positive"], real["per_class"][positive])
    return out
