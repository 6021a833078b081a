"""Quality section: confusion, loss sums, score histograms, calibration bins, regression sums.

Cells, all written at label time::

    ("confusion", actual, predicted)
    ("scored",) ("log_loss",) ("brier",)
    ("auc", class, "pos"|"neg", bin)
    ("calibration", bin, "count"|"conf"|"correct")
    ("regression", field)            fields of RegressionSums
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

import numpy as np

from instrumentation.aggregates.cells import Cells, CellWriter
from instrumentation.aggregates.label_columns import (
    LabelColumns,
    in_unit_range,
    unit_bins,
    write_bins,
)
from instrumentation.metrics import quality, reference, regression
from instrumentation.spec import ModelSpec
from instrumentation.store.protocol import Label, PredictionRecord

_EPS = float(np.finfo(np.float64).eps)
"""The clipping of ``quality.log_loss_term`` (sklearn's)."""

REGRESSION_FIELDS = tuple(f.name for f in fields(regression.RegressionSums))


def target_offset(spec: ModelSpec) -> float:
    """What regression sums centre ``y`` on (see ``RegressionSums.from_row``).

    The median of the training predictions, read from the reference profile (fixed
    for a model version, as every summed row must share it); 0 without a profile.
    """
    if not spec.reference:
        return 0.0
    value = reference.ReferenceProfile.from_dict(spec.reference).prediction.get(
        reference.PREDICTION_VALUE
    )
    if not isinstance(value, reference.NumericReference) or not value.edges:
        return 0.0
    return value.edges[len(value.edges) // 2]


def write_regression(
    writer: CellWriter, kind: tuple[str, ...], y_true: float, y_pred: float, offset: float
) -> None:
    """Cells of one labelled regression row under the key prefix ``kind``."""
    sums = regression.RegressionSums.from_row(y_true, y_pred, offset=offset)
    for name in REGRESSION_FIELDS:
        writer.add(*kind, name, amount=float(getattr(sums, name)))


def read_regression(cells: Cells, kind: str, *prefix: str) -> regression.RegressionSums:
    """The RegressionSums stored under ``(kind, *prefix, field)``."""
    values = {name: cells.get(kind, *prefix, name) for name in REGRESSION_FIELDS}
    return regression.RegressionSums(int(round(values.pop("n"))), **values)


class QualitySection:
    """Realised quality from matched labels (``quality`` in ``GET /monitor``)."""

    name = "quality"

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self._index = {c: i for i, c in enumerate(spec.classes)}
        # Binary AUC is about the positive class only; multiclass is one-vs-rest for each.
        self._auc_classes = spec.classes[1:] if spec.task == "binary" else spec.classes
        self._offset = target_offset(spec)

    def on_predictions(self, records: Any, features: Any, w: CellWriter) -> None:
        """Quality needs labels: nothing at prediction time."""

    def on_label(self, record: PredictionRecord, label: Label, w: CellWriter) -> None:
        """Cells of one matched label."""
        if not self.spec.is_classifier:
            if record.value is not None:
                write_regression(w, ("regression",), float(label), record.value, self._offset)
            return
        actual = str(label)
        if record.label is not None:
            w.add("confusion", actual, record.label)
        if record.scores is None:
            return
        scores, true_index = record.scores, self._index[actual]
        w.add("scored")
        w.add("log_loss", amount=_log_loss_term(scores, true_index))
        w.add("brier", amount=_brier_term(scores, true_index))
        for cls in self._auc_classes:
            side = "pos" if cls == actual else "neg"
            w.add("auc", cls, side, str(quality.score_bin(scores[self._index[cls]])))
        if record.label is not None:
            confidence = scores[self._index[record.label]]
            cal_bin = str(quality.calibration_bin(confidence))
            w.add("calibration", cal_bin, "count")
            w.add("calibration", cal_bin, "conf", amount=confidence)
            w.add("calibration", cal_bin, "correct", amount=float(record.label == actual))

    def on_labels(self, columns: LabelColumns, w: CellWriter) -> bool:
        """:meth:`on_label` of a classifier's columns; False if a score is outside [0, 1].

        On False some cells may have been written: the caller drops the writer.
        """
        for actual, predicted, count in columns.pairs(columns.actual, columns.predicted):
            w.add("confusion", actual, predicted, amount=count)
        scores, truth = columns.scores, columns.scored_actual
        n = len(scores)
        if not n:
            return True
        if not in_unit_range(scores):
            return False
        rows = np.arange(n)
        p_true = np.clip(scores[rows, truth], _EPS, 1.0 - _EPS)
        if len(self.spec.classes) == 2:
            brier = (truth == 1).astype(np.float64) - scores[:, 1]
            brier_sum = float(np.sum(brier * brier))
        else:
            onehot = np.zeros_like(scores)
            onehot[rows, truth] = 1.0
            brier_sum = float(np.sum((onehot - scores) ** 2))
        w.add("scored", amount=float(n))
        w.add("log_loss", amount=float(-np.sum(np.log(p_true))))
        w.add("brier", amount=brier_sum)
        for cls in self._auc_classes:
            j = self._index[cls]
            bins = unit_bins(scores[:, j], quality.SCORE_BINS)
            positive = truth == j
            write_bins(w, ("auc", cls, "pos"), bins[positive], quality.SCORE_BINS, ("", None))
            write_bins(w, ("auc", cls, "neg"), bins[~positive], quality.SCORE_BINS, ("", None))
        chosen = columns.scored_predicted
        confidence = scores[rows, chosen]
        write_bins(
            w,
            ("calibration",),
            unit_bins(confidence, quality.CALIBRATION_BINS),
            quality.CALIBRATION_BINS,
            ("count", None),
            ("conf", confidence),
            ("correct", (chosen == truth).astype(np.float64)),
        )
        return True

    def report(self, cells: Cells) -> dict[str, Any]:
        """The window's quality figures."""
        if not self.spec.is_classifier:
            return regression.regression_quality(read_regression(cells, "regression"))
        out = quality.classification_quality(
            cells.matrix("confusion", self.spec.classes), self.spec.classes
        )
        out.update(
            quality.probabilistic_quality(
                n=cells.count("scored"),
                log_loss_sum=cells.get("log_loss"),
                brier_sum=cells.get("brier"),
            )
        )
        pos = np.array(
            [cells.histogram("auc", quality.SCORE_BINS, c, "pos") for c in self._auc_classes]
        )
        neg = np.array(
            [cells.histogram("auc", quality.SCORE_BINS, c, "neg") for c in self._auc_classes]
        )
        if self.spec.task == "binary":
            out["roc_auc"] = quality.roc_auc_binned(pos[0], neg[0])
        else:
            auc = quality.roc_auc_ovr_macro(pos, neg)
            auc.pop("per_class", None)
            out["roc_auc"] = auc
        out["expected_calibration_error"] = quality.expected_calibration_error(
            _calibration(cells, "count"),
            _calibration(cells, "conf"),
            _calibration(cells, "correct"),
        ).to_dict()
        return out


def _log_loss_term(scores: tuple[float, ...], true_index: int) -> float:
    """``quality.log_loss_term`` of scores validated when predicted (``_fits`` checked K).

    Per label, its numpy validation costs more than the term itself.
    """
    return -math.log(min(max(scores[true_index], _EPS), 1.0 - _EPS))


def _brier_term(scores: tuple[float, ...], true_index: int) -> float:
    """``quality.brier_term`` of validated scores, in the same order of additions."""
    if len(scores) == 2:
        return (float(true_index == 1) - scores[1]) ** 2
    return sum(((1.0 if i == true_index else 0.0) - p) ** 2 for i, p in enumerate(scores))


def _calibration(cells: Cells, column: str) -> np.ndarray:
    values = np.zeros(quality.CALIBRATION_BINS)
    for (cal_bin, name), value in cells.items("calibration"):
        if name == column:
            values[int(cal_bin)] = value
    return values
