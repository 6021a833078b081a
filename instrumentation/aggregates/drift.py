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
            found = [
                value for record in records for o, value in self._outputs(record) if o == output
            ]
            if found:
                _write_counts(w, "drift_output", output, ref, found)

    def _outputs(self, record: PredictionRecord) -> list[tuple[str, Any]]:
        found: list[tuple[str, Any]] = []
        if reference.PREDICTION_LABEL in self.outputs and record.label is not None:
            found.append((reference.PREDICTION_LABEL, record.label))
        if reference.PREDICTION_VALUE in self.outputs and record.value is not None:
            found.append((reference.PREDICTION_VALUE, record.value))
        if reference.PREDICTION_SCORE in self.outputs and record.scores is not None:
            found.append((reference.PREDICTION_SCORE, record.scores[1]))
        return found

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
