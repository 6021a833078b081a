"""Drift section: serve-time histograms on the training reference's bins.

Cells, written at prediction time::

    ("drift", feature, bin)            one per input feature with a reference
    ("drift_output", output, bin)      predicted label / value / positive-class score
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from instrumentation.aggregates.cells import Cells, CellWriter
from instrumentation.aggregates.label_columns import LabelColumns
from instrumentation.metrics import drift, reference
from instrumentation.spec import ModelSpec
from instrumentation.store.protocol import Label, PredictionRecord

logger = logging.getLogger(__name__)


def _write_counts(
    w: CellWriter, kind: str, name: str, ref: reference.Reference, values: list[Any]
) -> None:
    """One cell per bin the values fall in, with its count."""
    for index, count in Counter(reference.bin_indexes(ref, values)).items():
        w.add(kind, name, str(index), amount=float(count))


def _output_column(output: str, records: Sequence[PredictionRecord]) -> list[Any]:
    """The batch's values of one model output (label, value or positive-class score)."""
    if output == reference.PREDICTION_LABEL:
        return [r.label for r in records if r.label is not None]
    if output == reference.PREDICTION_VALUE:
        return [r.value for r in records if r.value is not None]
    if output == reference.PREDICTION_SCORE:
        return [r.scores[1] for r in records if r.scores is not None]
    return []  # a profile from a newer release may name outputs this one does not bin


class DriftSection:
    """PSI, Jensen–Shannon and binned KS per feature and output (``drift`` in ``GET /monitor``).

    A model saved without a reference profile reports an empty section. Below
    ``min_samples`` predictions in the window the statistics are still reported but
    ``drifted`` is ``None`` with ``insufficient_data``: PSI of a handful of rows is noise.
    """

    name = "drift"

    def __init__(self, spec: ModelSpec, *, psi_threshold: float, min_samples: int = 100) -> None:
        self.spec = spec
        self.psi_threshold = psi_threshold
        self.min_samples = min_samples
        profile = reference.ReferenceProfile.from_dict(spec.reference) if spec.reference else None
        self.features: Mapping[str, reference.Reference] = profile.features if profile else {}
        self.outputs: Mapping[str, reference.Reference] = profile.prediction if profile else {}

    def on_predictions(
        self,
        records: Sequence[PredictionRecord],
        features: Sequence[Mapping[str, Any]],
        w: CellWriter,
    ) -> None:
        """Bin each input feature and the model's output, a column at a time, each bin once."""
        for name, ref in self.features.items():
            values = [row[name] for row in features if name in row]
            if values:
                _write_counts(w, "drift", name, ref, values)
        for output, ref in self.outputs.items():
            found = _output_column(output, records)
            if found:
                _write_counts(w, "drift_output", output, ref, found)

    def on_label(self, record: PredictionRecord, label: Label, w: CellWriter) -> None:
        """Drift compares inputs and outputs only: nothing at label time."""

    def on_labels(self, columns: LabelColumns, w: CellWriter) -> bool:
        """Nothing at label time (see :meth:`on_label`)."""
        return True

    def report(self, cells: Cells) -> dict[str, Any]:
        """The window's drift statistics against the training reference."""

        def one(kind: str, name: str, ref: reference.Reference) -> dict[str, Any]:
            counts = cells.histogram(kind, len(ref.shares), name)
            report = drift.drift_report(ref, counts, psi_threshold=self.psi_threshold)
            if 0 < counts.sum() < self.min_samples:
                report.update(drifted=None, insufficient_data=True)
            return report

        return {
            "features": {n: one("drift", n, r) for n, r in self.features.items()},
            "prediction": {n: one("drift_output", n, r) for n, r in self.outputs.items()},
            "psi_threshold": self.psi_threshold,
            "min_samples": self.min_samples,
        }
