"""The per-row reference for a request's prediction cells: written row by row, cell by cell.

The library counts a request's rows at once (``AggregateBook.add_predictions``);
this is the slow, obvious version it must equal, kept here as the tests' oracle.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from instrumentation.aggregates import AggregateBook
from instrumentation.aggregates.cells import CellWriter
from instrumentation.aggregates.drift import DriftSection
from instrumentation.aggregates.estimate import EstimateSection
from instrumentation.metrics import reference
from instrumentation.store.protocol import Increments, PredictionRecord


def add_prediction(
    book: AggregateBook,
    record: PredictionRecord,
    features: Mapping[str, Any],
    bucket: int,
    out: Increments,
) -> None:
    """Cells one prediction adds, in ``bucket``: its count, its drift bins, its score sums.

    Quality and fairness add nothing at prediction time (they need a label).
    """
    w = CellWriter(out, record.version, bucket)
    w.add("predictions")
    for section in book.sections:
        if isinstance(section, DriftSection):
            for name, ref in section.features.items():
                if name in features:
                    w.add("drift", name, str(reference.bin_index(ref, features[name])))
            outputs = {
                reference.PREDICTION_LABEL: record.label,
                reference.PREDICTION_VALUE: record.value,
                reference.PREDICTION_SCORE: None if record.scores is None else record.scores[1],
            }
            for output, ref in section.outputs.items():
                if outputs.get(output) is not None:
                    bin_ = reference.bin_index(ref, outputs[output])
                    w.add("drift_output", output, str(bin_))
        elif (
            isinstance(section, EstimateSection)
            and book.spec.is_classifier
            and record.scores is not None
            and record.label is not None
        ):
            section._write_row("estimate", record.scores, record.label, w)
