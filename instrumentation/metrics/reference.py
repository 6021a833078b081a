"""Reference profiles: bins fixed from the training data, saved with the model.

At training time :func:`build_reference_profile` cuts each numeric feature into
quantile bins of the training data and records each categorical feature's category
shares; the profile is saved with the model (:meth:`ReferenceProfile.to_dict`). At
serve time the service bins every value with :func:`bin_index` and adds 1 to that
bin's count in the current time bucket, so a window's histogram is the sum of its
buckets; ``instrumentation.metrics.drift`` compares it with the reference.

>>> ref = numeric_reference([1.0, 2.0, 3.0, 4.0], n_bins=2)
>>> ref.edges, ref.shares
((2.0,), (0.5, 0.5))
>>> bin_counts(ref, [0.0, 10.0, 11.0, 12.0])
[1, 3]
"""

from __future__ import annotations

import bisect
import collections
import functools
import itertools
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

UNSEEN_CATEGORY: Final = "__unseen__"
"""The bin, always last and with reference share 0, for categories absent in training."""

SHARES_TOLERANCE: Final = 1e-6
"""How far reference shares may sum from 1 (they pass through JSON as floats)."""

PREDICTION_LABEL: Final = "label"
"""Profile key of the predicted class (categorical), classification models."""
PREDICTION_VALUE: Final = "value"
"""Profile key of the predicted value (numeric), regression models."""
PREDICTION_SCORE: Final = "score"
"""Profile key of the positive-class score (numeric), binary classifiers."""

N_BINS_ERROR: Final = "n_bins must be an integer >= 1"
EMPTY_VALUES_ERROR: Final = "reference values must not be empty"
NON_FINITE_ERROR: Final = "numeric reference values must be finite"
NAN_VALUE_ERROR: Final = "cannot bin NaN: validate numeric inputs before binning"
EDGES_ERROR: Final = "edges must be finite and strictly increasing"
SHARES_LENGTH_ERROR: Final = "a reference needs exactly one share per bin"
SHARES_SUM_ERROR: Final = "reference shares must be non-negative and sum to 1"
CATEGORIES_ERROR: Final = "categories must be unique strings, the last one UNSEEN_CATEGORY"
RESERVED_CATEGORY_ERROR: Final = "reference values must not contain UNSEEN_CATEGORY"
KIND_ERROR: Final = "reference kind must be 'numeric' or 'categorical'"
COLUMN_ERROR: Final = "each column must be in the frame and listed once, numeric or categorical"


# --- numeric -------------------------------------------------------------------------


def numeric_edges(values: ArrayLike, *, n_bins: int = 10) -> tuple[float, ...]:
    """Interior cut points at the training data's quantiles.

    The bins are (−inf, e0], (e0, e1], …, (e_last, +inf): ``len(edges) + 1`` of them,
    so serve-time values outside the training range land in the end bins. Quantile
    levels are ``linspace(0, 1, n_bins + 1)[1:-1]``, taken with
    ``np.quantile(..., method="inverted_cdf")`` so every edge is a training value and
    bin i holds the share up to its level. Repeated cut points (heavy ties) are merged
    and a cut at the training maximum is dropped, so fewer than ``n_bins`` bins may
    result but none is empty in the training data.

    Raises:
        ValueError: ``N_BINS_ERROR``, ``EMPTY_VALUES_ERROR`` or ``NON_FINITE_ERROR``.
    """
    if isinstance(n_bins, bool) or int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(N_BINS_ERROR)
    data = _finite(values)
    levels = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    edges = np.unique(np.quantile(data, levels, method="inverted_cdf"))
    return tuple(float(e) for e in edges[edges < data.max()])


def numeric_bin(value: float, edges: Sequence[float]) -> int:
    """Index of the bin (−inf, e0], (e0, e1], …, (e_last, +inf) holding ``value``.

    ±inf go to the end bins. NaN has no bin: the service rejects non-finite inputs
    before they reach the model, so NaN here is a caller bug.

    Raises:
        ValueError: ``NAN_VALUE_ERROR``.
    """
    if math.isnan(value):
        raise ValueError(NAN_VALUE_ERROR)
    return bisect.bisect_left(edges, value)


@dataclass(frozen=True, slots=True)
class NumericReference:
    """Training-data quantile edges and the share of training values in each bin."""

    edges: tuple[float, ...]
    shares: tuple[float, ...]

    def __post_init__(self) -> None:
        edges = np.asarray(self.edges, dtype=float)
        if not np.isfinite(edges).all() or (np.diff(edges) <= 0).any():
            raise ValueError(EDGES_ERROR)
        if len(self.shares) != len(self.edges) + 1:
            raise ValueError(SHARES_LENGTH_ERROR)
        check_shares(self.shares)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, ``{"kind": "numeric", "edges": [...], "shares": [...]}``."""
        return {"kind": "numeric", "edges": list(self.edges), "shares": list(self.shares)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NumericReference:
        """Inverse of :meth:`to_dict`."""
        if data.get("kind") != "numeric":
            raise ValueError(KIND_ERROR)
        return cls(tuple(map(float, data["edges"])), tuple(map(float, data["shares"])))


def numeric_reference(values: ArrayLike, *, n_bins: int = 10) -> NumericReference:
    """Quantile edges of the training ``values`` and their shares in those bins."""
    data = _finite(values)
    edges = numeric_edges(data, n_bins=n_bins)
    counts = np.bincount(np.searchsorted(edges, data, side="left"), minlength=len(edges) + 1)
    return NumericReference(edges, tuple(float(s) for s in counts / data.size))


# --- categorical ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CategoricalReference:
    """Training categories (sorted, then ``UNSEEN_CATEGORY``) and their shares.

    Values are compared by ``str(value)``: ``1`` and ``"1"`` are one category,
    ``1`` and ``1.0`` are two.
    """

    categories: tuple[str, ...]
    shares: tuple[float, ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        cats = self.categories
        if (
            not cats
            or cats[-1] != UNSEEN_CATEGORY
            or len(set(cats)) != len(cats)
            or not all(isinstance(c, str) for c in cats)
        ):
            raise ValueError(CATEGORIES_ERROR)
        if len(self.shares) != len(cats):
            raise ValueError(SHARES_LENGTH_ERROR)
        check_shares(self.shares)
        object.__setattr__(self, "_index", {c: i for i, c in enumerate(cats)})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, ``{"kind": "categorical", "categories": [...], "shares": [...]}``."""
        return {
            "kind": "categorical",
            "categories": list(self.categories),
            "shares": list(self.shares),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CategoricalReference:
        """Inverse of :meth:`to_dict`."""
        if data.get("kind") != "categorical":
            raise ValueError(KIND_ERROR)
        return cls(tuple(data["categories"]), tuple(map(float, data["shares"])))


def categorical_reference(values: Iterable[Any]) -> CategoricalReference:
    """Category shares of the training ``values``, plus a 0-share unseen bucket.

    Raises:
        ValueError: ``EMPTY_VALUES_ERROR`` or ``RESERVED_CATEGORY_ERROR``.
    """
    counts: dict[str, int] = {}
    for value in values:
        key = str(value)
        counts[key] = counts.get(key, 0) + 1
    if not counts:
        raise ValueError(EMPTY_VALUES_ERROR)
    if UNSEEN_CATEGORY in counts:
        raise ValueError(RESERVED_CATEGORY_ERROR)
    total = sum(counts.values())
    categories = sorted(counts)
    shares = tuple(counts[c] / total for c in categories) + (0.0,)
    return CategoricalReference((*categories, UNSEEN_CATEGORY), shares)


def category_bin(value: Any, reference: CategoricalReference) -> int:
    """Index of ``str(value)`` in the reference; the unseen bucket if not there."""
    return reference._index.get(str(value), len(reference.categories) - 1)


Reference: TypeAlias = NumericReference | CategoricalReference


def reference_from_dict(data: Mapping[str, Any]) -> Reference:
    """Rebuild either kind of reference from its :meth:`to_dict` form."""
    if data.get("kind") == "numeric":
        return NumericReference.from_dict(data)
    return CategoricalReference.from_dict(data)


def bin_index(reference: Reference, value: Any) -> int:
    """The bin of ``value`` under either kind of reference."""
    if isinstance(reference, NumericReference):
        return numeric_bin(float(value), reference.edges)
    return category_bin(value, reference)


def bin_indexes(reference: Reference, values: Iterable[Any]) -> Iterator[int]:
    """:func:`bin_index` of each value, a column at a time.

    C loops (``map``) rather than numpy: a request's rows are few, and numpy's
    per-call cost would outweigh its per-value speed.
    """
    if isinstance(reference, NumericReference):
        column = list(map(float, values))
        if any(map(math.isnan, column)):
            raise ValueError(NAN_VALUE_ERROR)
        return map(functools.partial(bisect.bisect_left, reference.edges), column)
    unseen = len(reference.categories) - 1
    return map(reference._index.get, map(str, values), itertools.repeat(unseen))


def bin_counts(reference: Reference, values: Iterable[Any]) -> list[int]:
    """Per-bin counts of ``values``: what one bucket adds for a batch of predictions."""
    counts = [0] * len(reference.shares)
    for index, count in collections.Counter(bin_indexes(reference, values)).items():
        counts[index] = count
    return counts


# --- the profile saved with the model ------------------------------------------------


@dataclass(frozen=True)
class ReferenceProfile:
    """Per-feature and per-output references, saved with the model as JSON.

    ``prediction`` is keyed by ``PREDICTION_LABEL`` (predicted class, categorical),
    ``PREDICTION_VALUE`` (regression output, numeric) and ``PREDICTION_SCORE``
    (positive-class score, numeric), whichever apply.
    """

    features: Mapping[str, Reference]
    prediction: Mapping[str, Reference] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"features": {name: ref}, "prediction": {key: ref}}``."""
        return {
            "features": {k: v.to_dict() for k, v in self.features.items()},
            "prediction": {k: v.to_dict() for k, v in self.prediction.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        """Inverse of :meth:`to_dict`."""
        return cls(
            features={k: reference_from_dict(v) for k, v in data["features"].items()},
            prediction={k: reference_from_dict(v) for k, v in data.get("prediction", {}).items()},
        )


def build_reference_profile(
    frame: Mapping[str, Sequence[Any]],
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    predicted_label: Sequence[Any] | None = None,
    predicted_value: ArrayLike | None = None,
    predicted_score: ArrayLike | None = None,
    n_bins: int = 10,
) -> ReferenceProfile:
    """Build the reference profile from training data and the model's outputs on it.

    Args:
        frame: Column name → training values (a dict of lists or a DataFrame).
            Columns not listed in ``numeric``/``categorical`` are ignored.
        numeric: Columns binned at quantiles (:func:`numeric_reference`).
        categorical: Columns profiled by category (:func:`categorical_reference`).
        predicted_label: Predicted classes on the training data, if a classifier.
        predicted_value: Predicted values, if a regressor.
        predicted_score: Positive-class scores, if a binary classifier.
        n_bins: Maximum number of bins per numeric column.

    Raises:
        ValueError: ``COLUMN_ERROR`` and the errors of the reference builders.
    """
    names = [*numeric, *categorical]
    if len(set(names)) != len(names) or any(name not in frame for name in names):
        raise ValueError(COLUMN_ERROR)
    features: dict[str, Reference] = {}
    for name in names:
        if name in categorical:
            features[name] = categorical_reference(frame[name])
        else:
            features[name] = numeric_reference(frame[name], n_bins=n_bins)
    prediction: dict[str, Reference] = {}
    if predicted_label is not None:
        prediction[PREDICTION_LABEL] = categorical_reference(predicted_label)
    if predicted_value is not None:
        prediction[PREDICTION_VALUE] = numeric_reference(predicted_value, n_bins=n_bins)
    if predicted_score is not None:
        prediction[PREDICTION_SCORE] = numeric_reference(predicted_score, n_bins=n_bins)
    return ReferenceProfile(features, prediction)


# --- helpers -------------------------------------------------------------------------


def _finite(values: ArrayLike) -> NDArray[np.float64]:
    data = np.asarray(values, dtype=float).ravel()
    if data.size == 0:
        raise ValueError(EMPTY_VALUES_ERROR)
    if not np.isfinite(data).all():
        raise ValueError(NON_FINITE_ERROR)
    return data


def check_shares(shares: ArrayLike) -> None:
    """Raise ``SHARES_SUM_ERROR`` unless ``shares`` are finite, non-negative and sum to 1."""
    s = np.asarray(shares, dtype=float)
    if s.ndim != 1 or not np.isfinite(s).all() or (s < 0).any():
        raise ValueError(SHARES_SUM_ERROR)
    if abs(float(s.sum()) - 1.0) > SHARES_TOLERANCE:
        raise ValueError(SHARES_SUM_ERROR)
