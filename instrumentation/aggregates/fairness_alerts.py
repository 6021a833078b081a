"""Fairness gaps judged soundly: confidence sequences of two groups' rates, every label kept.

A disparity computed on a window and compared with a constant every minute has no stated
false-alarm rate. Here, for each sensitive attribute (and class, one-vs-rest; binary
models: the positive class), every pair of groups with at least ``min_samples`` labels
gets the anytime-valid confidence sequence of its rate difference
(``metrics.sequential.proportion_difference_cs``) over every label of the version
(cumulative cells, :mod:`instrumentation.store.rollout`), at level ``alpha`` split
(Bonferroni) over the pairs and rates compared:

    demographic_parity   selection rate (predicted positive / labelled)
    equalized_odds       true-positive rate and false-positive rate

The statistic is the largest *lower bound on the absolute gap* over those comparisons,
divided by the threshold: above 1, some gap is beyond the threshold with confidence
``1 − alpha``, at every look at once. If every true gap is at most the threshold, the
chance that it is *ever* above 1 is at most ``alpha`` (asymptotically). 0 when no pair
has enough labels.
"""

from __future__ import annotations

import itertools
from typing import Any

from instrumentation.aggregates.cells import Cells
from instrumentation.metrics import fairness
from instrumentation.metrics.sequential import DEFAULT_ALPHA, proportion_difference_cs
from instrumentation.spec import ModelSpec

_RATES = {
    "demographic_parity": (lambda c: (c.tp + c.fp, c.n),),
    "equalized_odds": (lambda c: (c.tp, c.tp + c.fn), lambda c: (c.fp, c.fp + c.tn)),
}


def fairness_alerts(
    spec: ModelSpec,
    cells: Cells,
    *,
    thresholds: dict[str, float],
    min_samples: int,
    alpha: float = DEFAULT_ALPHA,
) -> dict[str, Any]:
    """``{attribute: {class: {figure: {"value", "n", "bound", "threshold"}}}}`` (classifiers).

    ``thresholds`` maps ``demographic_parity`` and ``equalized_odds`` to the gap each
    may not exceed (differences, as fairlearn's ``between_groups``).
    """
    if not spec.is_classifier:
        return {}
    out: dict[str, Any] = {}
    classes = spec.classes
    shown = classes[1:] if spec.task == "binary" else classes
    for attribute in spec.sensitive_attributes:
        confusions = cells.matrices("group_confusion", classes, attribute)
        per_class = fairness.one_vs_rest(confusions, classes)
        out[attribute] = {
            cls: {
                figure: _gap(per_class[cls], rates, thresholds[figure], min_samples, alpha)
                for figure, rates in _RATES.items()
            }
            for cls in shown
        }
    return out


def _gap(
    groups: dict[str, fairness.BinaryCounts],
    rates: tuple[Any, ...],
    threshold: float,
    min_samples: int,
    alpha: float,
) -> dict[str, Any]:
    kept = [c for c in groups.values() if c.n >= max(1, min_samples)]
    pairs = list(itertools.combinations(kept, 2))
    bound = 0.0
    tests = len(pairs) * len(rates)
    for a, b in pairs:
        for rate in rates:
            (k_a, n_a), (k_b, n_b) = rate(a), rate(b)
            d = proportion_difference_cs(k_a, n_a, k_b, n_b, alpha=alpha / tests)
            if d.lower is not None and d.upper is not None:
                bound = max(bound, d.lower, -d.upper)
    return {
        "value": bound / threshold,
        "n": sum(c.n for c in kept),
        "bound": bound,
        "threshold": threshold,
    }


__all__ = ["fairness_alerts"]
