"""Two model versions side by side: differences of their figures over the same window.

Reads only cells both versions already keep (confusion cells and regression sums,
written at label time), so any pair of versions with data in a window can be
compared, and the result is exact for the rows each version's labels cover. Every
difference is ``a − b`` (the version under test minus its baseline) with a 95%
interval and both sample counts (see :mod:`instrumentation.metrics.compare`):

    accuracy                  labelled rows that were right
    recall / precision        per class (``per_class``)
    selection_rate            per class: share of labelled rows predicted as that class
    mae                       regression: mean absolute error
"""

from __future__ import annotations

from typing import Any

import numpy as np

from instrumentation.aggregates.cells import Cells
from instrumentation.aggregates.quality import read_regression
from instrumentation.metrics.compare import mean_difference, proportion_difference
from instrumentation.spec import ModelSpec


def compare_versions(spec: ModelSpec, cells_a: Cells, cells_b: Cells) -> dict[str, Any]:
    """The comparison section for one window: ``a``'s figures minus ``b``'s.

    ``spec`` gives the classes (both versions must share them: a label of a version
    with other classes is never aggregated, see ``AggregateBook.add_label``).
    """
    if not spec.is_classifier:
        a = read_regression(cells_a, "regression")
        b = read_regression(cells_b, "regression")
        mae = mean_difference(a.n, a.abs_error, a.squared_error, b.n, b.abs_error, b.squared_error)
        return {"mae": mae.to_dict()}
    classes = spec.classes
    ma, mb = cells_a.matrix("confusion", classes), cells_b.matrix("confusion", classes)
    na, nb = float(ma.sum()), float(mb.sum())
    out: dict[str, Any] = {
        "accuracy": proportion_difference(np.trace(ma), na, np.trace(mb), nb).to_dict()
    }
    recall, precision, selection = {}, {}, {}
    for k, cls in enumerate(classes):
        recall[cls] = proportion_difference(
            ma[k, k], ma[k, :].sum(), mb[k, k], mb[k, :].sum()
        ).to_dict()
        precision[cls] = proportion_difference(
            ma[k, k], ma[:, k].sum(), mb[k, k], mb[:, k].sum()
        ).to_dict()
        selection[cls] = proportion_difference(ma[:, k].sum(), na, mb[:, k].sum(), nb).to_dict()
    out["recall"] = {"per_class": recall}
    out["precision"] = {"per_class": precision}
    out["selection_rate"] = {"per_class": selection}
    return out
