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

:func:`compare_rollout` gives the same figures over every label since a rollout
began (cumulative cells, :mod:`instrumentation.store.rollout`) with the anytime-valid
interval of :mod:`instrumentation.metrics.sequential`: it holds at every look at once,
so an alert may watch it every minute.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from instrumentation.aggregates.cells import Cells
from instrumentation.aggregates.quality import read_regression
from instrumentation.metrics.compare import Difference, mean_difference, proportion_difference
from instrumentation.metrics.sequential import (
    DEFAULT_ALPHA,
    DEFAULT_V_OPT,
    mean_difference_cs,
    proportion_difference_cs,
)
from instrumentation.spec import ModelSpec

Proportions = Callable[[float, float, float, float], Difference]
Means = Callable[[int, float, float, int, float, float], Difference]


def compare_rollout(
    spec: ModelSpec,
    cells_a: Cells,
    cells_b: Cells,
    *,
    alpha: float = DEFAULT_ALPHA,
    v_opt: float = DEFAULT_V_OPT,
) -> dict[str, Any]:
    """:func:`compare_versions` with anytime-valid intervals (``1 − alpha`` at every look)."""
    return compare_versions(
        spec,
        cells_a,
        cells_b,
        proportions=partial(proportion_difference_cs, alpha=alpha, v_opt=v_opt),
        means=partial(mean_difference_cs, alpha=alpha, v_opt=v_opt),
    )


def compare_versions(
    spec: ModelSpec,
    cells_a: Cells,
    cells_b: Cells,
    *,
    proportions: Proportions = proportion_difference,
    means: Means = mean_difference,
) -> dict[str, Any]:
    """The comparison section for one window: ``a``'s figures minus ``b``'s.

    ``spec`` gives the classes (both versions must share them: a label of a version
    with other classes is never aggregated, see ``AggregateBook.add_label``).
    ``proportions`` and ``means`` make each difference and its interval (by default
    the fixed-sample 95% ones).
    """
    if not spec.is_classifier:
        a = read_regression(cells_a, "regression")
        b = read_regression(cells_b, "regression")
        mae = means(a.n, a.abs_error, a.squared_error, b.n, b.abs_error, b.squared_error)
        return {"mae": mae.to_dict()}
    classes = spec.classes
    ma, mb = cells_a.matrix("confusion", classes), cells_b.matrix("confusion", classes)
    na, nb = float(ma.sum()), float(mb.sum())
    out: dict[str, Any] = {"accuracy": proportions(np.trace(ma), na, np.trace(mb), nb).to_dict()}
    recall, precision, selection = {}, {}, {}
    for k, cls in enumerate(classes):
        recall[cls] = proportions(ma[k, k], ma[k, :].sum(), mb[k, k], mb[k, :].sum()).to_dict()
        precision[cls] = proportions(ma[k, k], ma[:, k].sum(), mb[k, k], mb[:, k].sum()).to_dict()
        selection[cls] = proportions(ma[:, k].sum(), na, mb[:, k].sum(), nb).to_dict()
    out["recall"] = {"per_class": recall}
    out["precision"] = {"per_class": precision}
    out["selection_rate"] = {"per_class": selection}
    return out
