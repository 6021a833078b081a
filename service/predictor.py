"""Turns validated feature dicts into model calls, for any scikit-learn estimator."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from instrumentation import ModelSpec

FEATURE_NAMES_DIFFER = (
    "the monitor spec's features and the estimator's feature_names_in_ differ: "
    "missing from the spec: {missing}; not fitted by the estimator: {extra}"
)
"""Start-up error when the spec cannot feed the estimator the columns it was fitted with."""

CLASSES_DIFFER = "the estimator's classes {fitted} differ from the monitor spec's {spec}"
"""Start-up error when the spec names other classes than the estimator predicts."""


class Predictor:
    """Wraps a fitted scikit-learn estimator with the feature schema of a :class:`ModelSpec`.

    An estimator fitted on a DataFrame (it has ``feature_names_in_``) receives a
    DataFrame with exactly those columns, in its fitted order: scikit-learn then
    checks the names itself, and a spec listing features in another order cannot
    feed a column into the wrong input. The names are checked once, here; a spec
    that lacks one of them, or adds one the estimator never saw, fails at start-up.
    Any other estimator receives a 2-D object array in the spec's order (no
    DataFrame per request).

    Raises:
        ValueError: ``FEATURE_NAMES_DIFFER`` or ``CLASSES_DIFFER``.
    """

    def __init__(self, estimator: Any, spec: ModelSpec) -> None:
        self.estimator = estimator
        self.spec = spec
        own = [f.name for f in spec.features]
        fitted_names = getattr(estimator, "feature_names_in_", None)
        self.uses_frame = fitted_names is not None
        self.columns = [str(n) for n in fitted_names] if fitted_names is not None else own
        missing = [n for n in self.columns if n not in own]
        extra = [n for n in own if n not in self.columns]
        if missing or extra:
            raise ValueError(
                FEATURE_NAMES_DIFFER.format(missing=missing or "none", extra=extra or "none")
            )
        self._order: list[int] = []
        if spec.is_classifier:
            # scikit-learn sorts classes; the spec orders them (classes[1] is the positive one).
            fitted = [str(c) for c in estimator.classes_]
            if sorted(fitted) != sorted(spec.classes):
                raise ValueError(CLASSES_DIFFER.format(fitted=fitted, spec=list(spec.classes)))
            self._order = [fitted.index(c) for c in spec.classes]

    def inputs(self, rows: Sequence[Mapping[str, Any]]) -> Any:
        """What the estimator is called with: a DataFrame or a 2-D object array (see above)."""
        if self.uses_frame:
            import pandas as pd  # only for DataFrame-fitted estimators

            return pd.DataFrame({c: [row[c] for row in rows] for c in self.columns})
        return np.array([[row[c] for c in self.columns] for row in rows], dtype=object)

    def classify(self, rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[float]]]:
        """Predicted class names and class probabilities (in ``spec.classes`` order)."""
        proba = np.asarray(self.estimator.predict_proba(self.inputs(rows)), dtype=float)
        proba = proba[:, self._order]
        classes = self.spec.classes
        labels = [classes[i] for i in proba.argmax(axis=1)]
        return labels, proba.tolist()

    def regress(self, rows: Sequence[Mapping[str, Any]]) -> list[float]:
        """Predicted values."""
        return [float(v) for v in self.estimator.predict(self.inputs(rows))]
