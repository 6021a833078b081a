"""Turns validated feature dicts into model calls, for any scikit-learn estimator."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from instrumentation.spec import ModelSpec


class Predictor:
    """Wraps a fitted scikit-learn estimator with the column order of a :class:`ModelSpec`.

    The estimator receives a 2-D object array whose columns follow ``spec.features``,
    so pipelines select columns by position and no DataFrame is built per request.
    """

    def __init__(self, estimator: Any, spec: ModelSpec) -> None:
        self.estimator = estimator
        self.spec = spec
        self._columns = [f.name for f in spec.features]
        self._order: list[int] = []
        if spec.is_classifier:
            # scikit-learn sorts classes; the spec orders them (classes[1] is the positive one).
            fitted = [str(c) for c in estimator.classes_]
            if sorted(fitted) != sorted(spec.classes):
                raise ValueError(f"estimator classes {fitted} differ from spec {spec.classes}")
            self._order = [fitted.index(c) for c in spec.classes]

    def matrix(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Rows as a 2-D object array in the spec's column order."""
        return np.array([[row[c] for c in self._columns] for row in rows], dtype=object)

    def classify(self, rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[float]]]:
        """Predicted class names and class probabilities (in ``spec.classes`` order)."""
        proba = np.asarray(self.estimator.predict_proba(self.matrix(rows)), dtype=float)
        proba = proba[:, self._order]
        classes = self.spec.classes
        labels = [classes[i] for i in proba.argmax(axis=1)]
        return labels, proba.tolist()

    def regress(self, rows: Sequence[Mapping[str, Any]]) -> list[float]:
        """Predicted values."""
        return [float(v) for v in self.estimator.predict(self.matrix(rows))]


def log1p_float(x: np.ndarray) -> np.ndarray:
    """``log(1 + x)`` of an object-dtype column (a picklable pipeline step)."""
    result: np.ndarray = np.log1p(np.asarray(x, dtype=float))
    return result
