"""fairlearn functions keyed by the names `GET /monitor` uses: what the tests compare to."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
from fairlearn.metrics import (
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equal_opportunity_ratio,
    equalized_odds_difference,
    equalized_odds_ratio,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import accuracy_score, precision_score

RATES: dict[str, Callable[..., Any]] = {
    "selection_rate": selection_rate,
    "accuracy": accuracy_score,
    "precision": functools.partial(precision_score, zero_division=np.nan),
    "tpr": true_positive_rate,
    "fpr": false_positive_rate,
}
"""Per-group rates, for ``MetricFrame(metrics=RATES, …)``."""

DISPARITIES: dict[str, Callable[..., float]] = {
    "demographic_parity_difference": demographic_parity_difference,
    "demographic_parity_ratio": demographic_parity_ratio,
    "equal_opportunity_difference": equal_opportunity_difference,
    "equal_opportunity_ratio": equal_opportunity_ratio,
}
"""Disparities taking ``method=``."""

EQUALIZED_ODDS: dict[str, Callable[..., float]] = {
    "equalized_odds_difference": equalized_odds_difference,
    "equalized_odds_ratio": equalized_odds_ratio,
}
"""Disparities taking ``method=`` and ``agg=``."""

METHODS = ("between_groups", "to_overall")
AGGS = ("worst_case", "mean")
