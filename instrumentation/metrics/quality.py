"""Model quality from additive counts and sums, equal to ``sklearn.metrics`` on the same rows.

The service keeps, per time bucket, only aggregates that add up across workers: confusion
cells, per-row loss terms, score histograms, calibration bins and regression sums. A window's
figure is computed from their sum, so every function here takes sums; only the ``*_term``,
``*_bin`` and ``from_row`` helpers see one labelled prediction.

Rules (each pinned by a test against scikit-learn 1.9):

* ``classification_quality``: per-class precision, recall and F1 equal
  ``precision_recall_fscore_support(labels=<all classes>, zero_division=np.nan)`` with NaN
  reported as ``None``: precision is undefined for a class never predicted, recall for a class
  never present, F1 (``2tp / (2tp + fp + fn)``) for a class neither present nor predicted.
  sklearn's default ``zero_division="warn"`` reports those as a fake ``0.0``; we do not.
  Macro and weighted averages equal sklearn with ``zero_division=np.nan``: undefined classes
  are left out (weighted falls back to the plain mean when the remaining support is 0), and
  the average is ``None`` only when no class is defined. Micro figures equal accuracy.
  Accuracy and per-class/micro precision and recall are rates with a Wilson interval whose
  ``n`` is their denominator (labelled rows, rows predicted as the class, rows of the class).
  F1 and averages carry no interval; per-class F1's ``n`` counts rows that are the class or
  are predicted as it, the averages' ``n`` all labelled rows.
* ``log_loss_term``: ``-ln(clip(p_true, eps, 1 - eps))`` with ``eps`` the float64 machine
  epsilon, as ``sklearn.metrics.log_loss`` clips (it no longer renormalises rows).
* ``brier_term``: ``Σ_k (1[k = true] - p_k)²`` for three or more classes (range [0, 2]) and
  ``(1[true = 1] - p_1)²`` for two, sklearn's ``scale_by_half="auto"``.
* ROC AUC from ``SCORE_BINS`` uniform score bins: pairs in different bins are ordered
  exactly as by the raw scores; a positive and a negative sharing a bin count 1/2, so the
  result is within ``max_error = ½ · same-bin pairs / all pairs`` of ``roc_auc_score`` and
  equal to it when no such pair exists. No sampling interval is given (``lower``/``upper``
  are ``None``).
* Regression (MAE, RMSE, MAPE, R²): ``instrumentation/metrics/regression.py``.

>>> from instrumentation.metrics.quality import classification_quality
>>> classification_quality([[3, 1], [0, 4]], ["no", "yes"])["accuracy"]["value"]
0.875
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from instrumentation.metrics.intervals import rate
from instrumentation.metrics.result import MetricValue

SCORE_BINS: Final = 1000
"""Uniform bins of a class score on [0, 1] kept for ROC AUC."""

CALIBRATION_BINS: Final = 10
"""Uniform bins of the predicted-class confidence on [0, 1] kept for calibration error."""

PROBABILITY_SUM_TOLERANCE: Final = 1e-6
"""How far a row of class probabilities may sum from 1."""


def sums_to_one(probabilities: Sequence[float]) -> bool:
    """True when the row sums to 1 within :data:`PROBABILITY_SUM_TOLERANCE`.

    The one test used at prediction and at label time: an exactly rounded sum
    (``math.fsum``), so a row accepted once is never refused later by a sum that
    rounds the other way at the edge of the tolerance.
    """
    return abs(math.fsum(probabilities) - 1.0) <= PROBABILITY_SUM_TOLERANCE


FLOAT64_EPS: Final = float(np.finfo(np.float64).eps)
"""Machine epsilon of float64: log loss clips at it, as sklearn does."""

_CONFUSION_SHAPE_ERROR: Final = "confusion must be a K x K array with K >= 2 and K == len(classes)"
_CLASSES_REPEAT_ERROR: Final = "classes must not repeat a name"
_COUNTS_ERROR: Final = "{name} must hold finite, non-negative whole counts"
_SUMS_ERROR: Final = "{name} must hold finite, non-negative numbers"
_PROBABILITIES_SHAPE_ERROR: Final = "probabilities must be a 1-D sequence of at least 2 numbers"
_PROBABILITIES_RANGE_ERROR: Final = "probabilities must be finite numbers in [0, 1]"
_PROBABILITIES_SUM_ERROR: Final = (
    f"probabilities must sum to 1 (within {PROBABILITY_SUM_TOLERANCE})"
)
_INDEX_ERROR: Final = "{name} must be an integer in [0, {k}), got {value!r}"
_UNIT_ERROR: Final = "{name} must be a number in [0, 1], got {value!r}"
_HISTOGRAM_SHAPE_ERROR: Final = (
    "positive_counts and negative_counts must be 1-D arrays of the same length"
)
_OVR_SHAPE_ERROR: Final = (
    "per_class_pos and per_class_neg must be K x B arrays (same shape, K >= 2)"
)
_OVR_ROWS_ERROR: Final = "per_class_pos + per_class_neg must count the same rows for every class"
_CALIBRATION_SHAPE_ERROR: Final = (
    "count, confidence_sum and correct_sum must be 1-D arrays of the same length"
)
_N_ERROR: Final = "n must be a non-negative integer, got {value!r}"


def _array(values: npt.ArrayLike, name: str, *, whole: bool) -> npt.NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64)
    ok = bool(np.all(np.isfinite(arr)) and np.all(arr >= 0))
    if ok and whole:
        ok = bool(np.all(arr == np.floor(arr)))
    if not ok:
        raise ValueError((_COUNTS_ERROR if whole else _SUMS_ERROR).format(name=name))
    return arr


def _index(value: int, k: int, name: str) -> int:
    try:
        index = operator.index(value)
    except TypeError:
        index = -1
    if isinstance(value, bool) or not 0 <= index < k:
        raise ValueError(_INDEX_ERROR.format(name=name, k=k, value=value))
    return index


def _probabilities(probabilities: Sequence[float]) -> npt.NDArray[np.float64]:
    """Validate one row of class probabilities; returns it as a float64 array."""
    try:
        p = np.asarray(probabilities, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(_PROBABILITIES_SHAPE_ERROR) from None
    if p.ndim != 1 or p.size < 2:
        raise ValueError(_PROBABILITIES_SHAPE_ERROR)
    if not (np.all(np.isfinite(p)) and np.all(p >= 0) and np.all(p <= 1)):
        raise ValueError(_PROBABILITIES_RANGE_ERROR)
    if not sums_to_one(p.tolist()):
        raise ValueError(_PROBABILITIES_SUM_ERROR)
    return p


def _unit_bin(value: float, bins: int, name: str) -> int:
    if not (isinstance(value, int | float | np.floating | np.integer) and 0 <= value <= 1):
        raise ValueError(_UNIT_ERROR.format(name=name, value=value))
    return min(int(value * bins), bins - 1)


def _nan_average(
    values: Sequence[float | None], weights: npt.NDArray[np.float64] | None
) -> float | None:
    """Average of the defined values, as sklearn's ``_nanaverage``."""
    defined = [i for i, v in enumerate(values) if v is not None]
    if not defined:
        return None
    kept = np.array([values[i] for i in defined], dtype=np.float64)
    if weights is None or float(weights[defined].sum()) == 0.0:
        return float(kept.mean())
    return float(np.average(kept, weights=weights[defined]))


def _ratio(numerator: float, denominator: float, n: int) -> MetricValue:
    if denominator == 0:
        return MetricValue.undefined()
    return MetricValue(numerator / denominator, n)


def classification_quality(confusion: npt.ArrayLike, classes: Sequence[str]) -> dict[str, Any]:
    """Accuracy, precision, recall and F1 from a summed confusion matrix.

    Args:
        confusion: K x K counts, rows the actual class index, columns the predicted one.
        classes: The K class names, in index order.

    Returns:
        ``{"accuracy", "precision", "recall", "f1", "confusion_matrix"}``; each of
        precision/recall/F1 is ``{"per_class": {name: mv}, "macro", "micro", "weighted"}``
        with ``MetricValue.to_dict()`` leaves (see the module docstring for the rules).

    Raises:
        ValueError: If the shape does not match ``classes`` or a count is not a whole
            non-negative number.
    """
    cm = _array(confusion, "confusion", whole=True)
    k = len(classes)
    if cm.ndim != 2 or cm.shape != (k, k) or k < 2:
        raise ValueError(_CONFUSION_SHAPE_ERROR)
    if len(set(classes)) != k:
        raise ValueError(_CLASSES_REPEAT_ERROR)
    tp, predicted, actual = np.diag(cm).tolist(), cm.sum(axis=0).tolist(), cm.sum(axis=1).tolist()
    n = int(cm.sum())
    correct = float(sum(tp))
    precision = [rate(tp[i], predicted[i]) for i in range(k)]
    recall = [rate(tp[i], actual[i]) for i in range(k)]
    f1 = [
        _ratio(2.0 * tp[i], actual[i] + predicted[i], int(actual[i] + predicted[i] - tp[i]))
        for i in range(k)
    ]
    micro_f1 = _ratio(2.0 * correct, 2.0 * n, n)
    out: dict[str, Any] = {"accuracy": rate(correct, n).to_dict()}
    for key, per_class, micro in (
        ("precision", precision, rate(correct, n)),
        ("recall", recall, rate(correct, n)),
        ("f1", f1, micro_f1),
    ):
        macro = _nan_average([mv.value for mv in per_class], None)
        weighted = _nan_average([mv.value for mv in per_class], np.asarray(actual))
        out[key] = {
            "per_class": {name: mv.to_dict() for name, mv in zip(classes, per_class, strict=True)},
            "macro": MetricValue(macro, n if macro is not None else 0).to_dict(),
            "micro": micro.to_dict(),
            "weighted": MetricValue(weighted, n if weighted is not None else 0).to_dict(),
        }
    out["confusion_matrix"] = {
        "classes": list(classes),
        "counts": [[int(c) for c in row] for row in cm],
    }
    return out


def log_loss_term(probabilities: Sequence[float], true_index: int) -> float:
    """One labelled row's contribution to ``log_loss_sum``: ``-ln p_true``, clipped as sklearn.

    >>> round(log_loss_term([0.2, 0.8], 1), 6)
    0.223144
    """
    p = _probabilities(probabilities)
    t = _index(true_index, p.size, "true_index")
    return -math.log(min(max(float(p[t]), FLOAT64_EPS), 1.0 - FLOAT64_EPS))


def brier_term(probabilities: Sequence[float], true_index: int) -> float:
    """One labelled row's contribution to ``brier_sum`` (halved for two classes, as sklearn).

    >>> round(brier_term([0.2, 0.8], 1), 6)
    0.04
    """
    p = _probabilities(probabilities)
    t = _index(true_index, p.size, "true_index")
    if p.size == 2:
        return (float(t == 1) - float(p[1])) ** 2
    return float(np.sum((np.eye(p.size)[t] - p) ** 2))


def probabilistic_quality(*, n: int, log_loss_sum: float, brier_sum: float) -> dict[str, Any]:
    """Mean log loss and Brier score of ``n`` labelled rows from their summed terms.

    Returns:
        ``{"log_loss": mv, "brier_score": mv}``, values ``None`` when ``n`` is 0.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise ValueError(_N_ERROR.format(value=n))
    _array([log_loss_sum, brier_sum], "log_loss_sum and brier_sum", whole=False)
    if n == 0:
        return {
            "log_loss": MetricValue.undefined().to_dict(),
            "brier_score": MetricValue.undefined().to_dict(),
        }
    return {
        "log_loss": MetricValue(log_loss_sum / n, int(n)).to_dict(),
        "brier_score": MetricValue(brier_sum / n, int(n)).to_dict(),
    }


def score_bin(p: float) -> int:
    """Bin of a score in ``SCORE_BINS`` uniform bins on [0, 1]; 1.0 goes in the last bin."""
    return _unit_bin(p, SCORE_BINS, "p")


def _auc(pos: npt.NDArray[np.float64], neg: npt.NDArray[np.float64]) -> dict[str, Any]:
    n_pos, n_neg = float(pos.sum()), float(neg.sum())
    n = int(n_pos + n_neg)
    if n_pos == 0 or n_neg == 0:
        return {**MetricValue.undefined(n).to_dict(), "max_error": None}
    below = np.cumsum(neg) - neg
    pairs = n_pos * n_neg
    same_bin = float(np.dot(pos, neg))
    value = (float(np.dot(pos, below)) + 0.5 * same_bin) / pairs
    return {**MetricValue(value, n).to_dict(), "max_error": 0.5 * same_bin / pairs}


def roc_auc_binned(
    positive_counts: npt.ArrayLike, negative_counts: npt.ArrayLike
) -> dict[str, Any]:
    """ROC AUC from score histograms of the positive and the negative rows.

    Returns:
        ``{"value", "n", "lower", "upper", "max_error"}``: ``value`` is
        P(s+ > s-) + ½ P(same bin), within ``max_error`` of the exact ``roc_auc_score``;
        ``value`` and ``max_error`` are ``None`` without positives or negatives.
    """
    pos = _array(positive_counts, "positive_counts", whole=True)
    neg = _array(negative_counts, "negative_counts", whole=True)
    if pos.ndim != 1 or pos.shape != neg.shape:
        raise ValueError(_HISTOGRAM_SHAPE_ERROR)
    return _auc(pos, neg)


def roc_auc_ovr_macro(per_class_pos: npt.ArrayLike, per_class_neg: npt.ArrayLike) -> dict[str, Any]:
    """One-vs-rest macro ROC AUC, as ``roc_auc_score(multi_class="ovr", average="macro")``.

    Args:
        per_class_pos: K x B histograms; row k bins score k of the rows whose class is k.
        per_class_neg: K x B histograms; row k bins score k of the other rows.

    Returns:
        ``{"value", "n", "lower", "upper", "max_error", "per_class": [dict per class]}``;
        ``max_error`` is the mean of the per-class bounds. Like sklearn (NaN), ``value`` is
        ``None`` if any class has no positive or no negative row.
    """
    pos = _array(per_class_pos, "per_class_pos", whole=True)
    neg = _array(per_class_neg, "per_class_neg", whole=True)
    if pos.ndim != 2 or pos.shape != neg.shape or pos.shape[0] < 2:
        raise ValueError(_OVR_SHAPE_ERROR)
    rows = pos.sum(axis=1) + neg.sum(axis=1)
    if not np.all(rows == rows[0]):
        raise ValueError(_OVR_ROWS_ERROR)
    per_class = [_auc(pos[i], neg[i]) for i in range(pos.shape[0])]
    n = int(rows[0])
    if any(d["value"] is None for d in per_class):
        macro = {**MetricValue.undefined(n).to_dict(), "max_error": None}
    else:
        macro = {
            **MetricValue(float(np.mean([d["value"] for d in per_class])), n).to_dict(),
            "max_error": float(np.mean([d["max_error"] for d in per_class])),
        }
    return {**macro, "per_class": per_class}


def calibration_bin(confidence: float) -> int:
    """Bin ``[b/10, (b+1)/10)`` of a confidence in ``CALIBRATION_BINS`` bins; 1.0 in the last."""
    return _unit_bin(confidence, CALIBRATION_BINS, "confidence")


def expected_calibration_error(
    count: npt.ArrayLike, confidence_sum: npt.ArrayLike, correct_sum: npt.ArrayLike
) -> MetricValue:
    """Expected calibration error ``Σ_b (n_b / n) · |correct_b / n_b - conf_b / n_b|``.

    Args:
        count: Rows per confidence bin.
        confidence_sum: Sum of the predicted-class confidence per bin.
        correct_sum: Correct predictions per bin.

    Returns:
        The ECE with ``n`` rows; ``None`` when there are none.
    """
    counts = _array(count, "count", whole=True)
    conf = _array(confidence_sum, "confidence_sum", whole=False)
    correct = _array(correct_sum, "correct_sum", whole=True)
    if counts.ndim != 1 or conf.shape != counts.shape or correct.shape != counts.shape:
        raise ValueError(_CALIBRATION_SHAPE_ERROR)
    n = int(counts.sum())
    if n == 0:
        return MetricValue.undefined()
    return MetricValue(float(np.abs(correct - conf).sum()) / n, n)
