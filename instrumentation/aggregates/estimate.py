"""Estimated section: performance from calibrated scores before labels arrive (CBPE idea).

Cells::

    ("estimate", field[, class])          every prediction, at prediction time
    ("estimate_labelled", field[, class]) the same sums for labelled rows, at label time
    ("estimate_labelled", "confusion", actual, predicted)
                                          those rows' realised confusion

Only predictions with scores count. The first gives the estimate for the
window's predictions. The others give the estimate and the realised figures for
exactly the scored rows whose labels arrived in the window, so ``error``
(estimated − realised) compares like with like and tells whether the estimate
can be trusted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from instrumentation.aggregates.cells import Cells, CellWriter
from instrumentation.aggregates.label_columns import LabelColumns
from instrumentation.metrics import estimate, quality
from instrumentation.spec import ModelSpec
from instrumentation.store.protocol import Label, PredictionRecord


class EstimateSection:
    """Estimated accuracy/precision/recall/F1 and their realised error (``estimated``)."""

    name = "estimated"

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self._index = {c: i for i, c in enumerate(spec.classes)}

    def _write_row(self, kind: str, scores: tuple[float, ...], label: str, w: CellWriter) -> None:
        """The cells of ``EstimateSums.from_row(scores, label)``, without its validation.

        Cell by cell (a label's writer sums them itself). Scores were validated when
        the prediction was made; numpy on a handful of floats costs more than it saves.
        """
        confidence = scores[self._index[label]]
        w.add(kind, "n")
        w.add(kind, "conf_sum", amount=confidence)
        w.add(kind, "conf_sq_sum", amount=confidence * confidence)
        w.add(kind, "predicted_count", label)
        w.add(kind, "predicted_prob_sum", label, amount=confidence)
        for cls, p in zip(self.spec.classes, scores, strict=True):
            if p:
                w.add(kind, "prob_sum", cls, amount=p)

    def _write_many(self, kind: str, records: Sequence[PredictionRecord], w: CellWriter) -> None:
        """:meth:`_write_row` of each record, summed here first: each cell is written once.

        Sums run in row order from 0, as row-by-row writes would add them.
        """
        n = 0
        conf_sum = conf_sq_sum = 0.0
        predicted: dict[str, list[float]] = {}  # class -> [count, confidence sum]
        prob_sum = dict.fromkeys(self.spec.classes, 0.0)
        index, classes = self._index, self.spec.classes
        for record in records:
            scores, label = record.scores, record.label
            if scores is None or label is None:
                continue
            confidence = scores[index[label]]
            n += 1
            conf_sum += confidence
            conf_sq_sum += confidence * confidence
            seen = predicted.setdefault(label, [0.0, 0.0])
            seen[0] += 1.0
            seen[1] += confidence
            for cls, p in zip(classes, scores, strict=True):
                if p:
                    prob_sum[cls] += p
        if not n:
            return
        w.add(kind, "n", amount=float(n))
        w.add(kind, "conf_sum", amount=conf_sum)
        w.add(kind, "conf_sq_sum", amount=conf_sq_sum)
        for label, (count, confidence_sum) in predicted.items():
            w.add(kind, "predicted_count", label, amount=count)
            w.add(kind, "predicted_prob_sum", label, amount=confidence_sum)
        for cls, total in prob_sum.items():
            if total:
                w.add(kind, "prob_sum", cls, amount=total)

    def _read(self, cells: Cells, kind: str) -> estimate.EstimateSums:
        classes = self.spec.classes
        return estimate.EstimateSums(
            cells.count(kind, "n"),
            cells.get(kind, "conf_sum"),
            cells.get(kind, "conf_sq_sum"),
            tuple(cells.count(kind, "predicted_count", c) for c in classes),
            tuple(cells.get(kind, "predicted_prob_sum", c) for c in classes),
            tuple(cells.get(kind, "prob_sum", c) for c in classes),
        )

    def on_predictions(
        self, records: Sequence[PredictionRecord], features: Any, w: CellWriter
    ) -> None:
        """Score sums of a request's predictions, each cell written once."""
        if self.spec.is_classifier:
            self._write_many("estimate", records, w)

    def on_label(self, record: PredictionRecord, label: Label, w: CellWriter) -> None:
        """Score sums of the labelled prediction."""
        if self.spec.is_classifier and record.scores is not None and record.label is not None:
            self._write_row("estimate_labelled", record.scores, record.label, w)
            w.add("estimate_labelled", "confusion", str(label), record.label)

    def on_labels(self, columns: LabelColumns, w: CellWriter) -> bool:
        """:meth:`on_label` of every row of a classifier's columns (its scored rows count)."""
        scores, predicted = columns.scores, columns.scored_predicted
        n = len(scores)
        if not n:
            return True
        kind, classes = "estimate_labelled", self.spec.classes
        confidence = scores[np.arange(n), predicted]
        w.add(kind, "n", amount=float(n))
        w.add(kind, "conf_sum", amount=float(np.sum(confidence)))
        w.add(kind, "conf_sq_sum", amount=float(np.sum(confidence * confidence)))
        counts = np.bincount(predicted, minlength=len(classes))
        sums = np.bincount(predicted, confidence, minlength=len(classes))
        for j in np.flatnonzero(counts):
            w.add(kind, "predicted_count", classes[j], amount=float(counts[j]))
            w.add(kind, "predicted_prob_sum", classes[j], amount=float(sums[j]))
        # A zero score adds no cell row by row; a class gets one when any row's is not 0.
        for j in np.flatnonzero(np.any(scores != 0.0, axis=0)):
            w.add(kind, "prob_sum", classes[j], amount=float(np.sum(scores[:, j])))
        for actual, pred, count in columns.pairs(columns.scored_actual, predicted):
            w.add(kind, "confusion", actual, pred, amount=count)
        return True

    def report(self, cells: Cells) -> dict[str, Any]:
        """Estimated figures for the window's predictions, and the estimate's realised error."""
        if not self.spec.is_classifier:
            return {}
        classes = self.spec.classes
        out = estimate.estimated_quality(self._read(cells, "estimate"), classes)
        labelled = estimate.estimated_quality(self._read(cells, "estimate_labelled"), classes)
        scored = cells.matrix("estimate_labelled", classes, "confusion")
        realised = quality.classification_quality(scored, classes)
        out["error"] = estimate.estimation_error(labelled, realised)
        return out
