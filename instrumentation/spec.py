"""What the monitor must know about a model: task, classes, feature schema, groups.

A :class:`ModelSpec` is saved next to the model (as JSON) at training time and
loaded by the service; it drives request validation, label validation and the
shape of every metric.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Literal

from instrumentation.errors import MonitorError
from instrumentation.metrics.fairness import MISSING_GROUP, OVERFLOW_GROUP

Task = Literal["binary", "multiclass", "regression"]
TASKS: tuple[Task, ...] = ("binary", "multiclass", "regression")
FeatureKind = Literal["number", "category"]

MAX_GROUP_VALUE_LENGTH = 128
"""Longest group value: each one becomes a stored key and a metric attribute."""

MAX_MAGNITUDE = 1e100
"""Largest |x| accepted for a numeric feature, a regression label or a predicted value.

Aggregates hold sums of squares: at ±1e100 a square is 1e200 and ~1e108 of them
still sum to a finite float; past ~1.3e154 a single square is infinite and every
window containing it would be lost.
"""


class InvalidInput(MonitorError, ValueError):
    """A request field is invalid; ``field`` is its JSON path (``instances[2].features.age``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class FeatureSpec:
    """One model input: a number, or a category from a known set (others are still accepted).

    A number may declare the closed range its model accepts (``minimum``,
    ``maximum``): a value outside it is a client error naming the field, not a
    model failure (a log transform of a negative amount, say).
    """

    name: str
    kind: FeatureKind
    categories: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None

    def __post_init__(self) -> None:
        for bound in (self.minimum, self.maximum):
            if bound is not None and (self.kind != "number" or not math.isfinite(bound)):
                raise ValueError(f"feature {self.name!r}: bounds must be finite, numbers only")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"feature {self.name!r}: minimum exceeds maximum")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "categories": list(self.categories),
        }
        for key, bound in (("minimum", self.minimum), ("maximum", self.maximum)):
            if bound is not None:
                data[key] = bound
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        """Inverse of :meth:`to_dict`."""
        kind = data["kind"]
        if kind not in ("number", "category"):
            raise ValueError(f"feature {data['name']!r}: kind must be number or category")
        bounds = {k: float(data[k]) for k in ("minimum", "maximum") if data.get(k) is not None}
        return cls(
            str(data["name"]), kind, tuple(str(c) for c in data.get("categories", ())), **bounds
        )

    def column_fits(self, values: Sequence[Any]) -> bool:
        """True when every value surely passes :meth:`check`: a whole column at C speed.

        False means "look row by row", not "invalid": :meth:`check` stays the one
        judge, and names the first bad value.
        """
        types = set(map(type, values))
        if self.kind == "category":
            return types <= {str}
        if not types <= {int, float}:
            return False
        try:
            if not math.isfinite(math.fsum(values)):  # a NaN or an infinity among them
                return False
        except (OverflowError, ValueError):  # an integer beyond float range; inf - inf
            return False
        low, high = min(values), max(values)
        if max(-low, high) > MAX_MAGNITUDE:
            return False
        return (self.minimum is None or low >= self.minimum) and (
            self.maximum is None or high <= self.maximum
        )

    def check(self, value: Any, where: str) -> None:
        """Raise :class:`InvalidInput` at ``where`` unless ``value`` fits this feature."""
        if self.kind == "category":
            if not isinstance(value, str):
                raise InvalidInput(where, f"expected a string category, got {type(value).__name__}")
            return
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInput(where, f"expected a number, got {type(value).__name__}")
        if not within_magnitude(value):
            raise InvalidInput(where, f"expected a finite number within ±{MAX_MAGNITUDE:g}")
        low, high = self.minimum, self.maximum
        if (low is not None and value < low) or (high is not None and value > high):
            if high is None:
                expected = f">= {low:g}"
            elif low is None:
                expected = f"<= {high:g}"
            else:
                expected = f"between {low:g} and {high:g}"
            raise InvalidInput(where, f"expected a number {expected}, got {value!r}")


def within_magnitude(value: int | float) -> bool:
    """Finite and within ±:data:`MAX_MAGNITUDE` (big JSON integers included, without overflow)."""
    if isinstance(value, int):
        return abs(value) <= MAX_MAGNITUDE
    return math.isfinite(value) and abs(value) <= MAX_MAGNITUDE


@dataclass(frozen=True)
class ModelSpec:
    """A served model as the monitor sees it.

    ``classes`` is empty for regression; ``classes[1]`` is the positive class of
    a binary model. ``sensitive_attributes`` are NOT model inputs: they travel in
    each instance's ``groups`` for fairness slicing. ``reference`` is the training
    reference profile used for drift (see ``instrumentation.metrics.drift``).
    """

    name: str
    version: str
    task: Task
    features: tuple[FeatureSpec, ...]
    classes: tuple[str, ...] = ()
    sensitive_attributes: tuple[str, ...] = ()
    reference: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"ModelSpec.task must be one of {TASKS}, got {self.task!r}")
        if self.task == "regression" and self.classes:
            raise ValueError("ModelSpec.classes must be empty for a regression model")
        if self.task == "binary" and len(self.classes) != 2:
            raise ValueError("ModelSpec.classes must name exactly 2 classes for a binary model")
        if self.task == "multiclass" and len(self.classes) < 3:
            raise ValueError("ModelSpec.classes must name 3 or more classes for multiclass")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("ModelSpec.classes must be unique")
        if not self.features:
            raise ValueError("ModelSpec.features must name at least one feature")

    @property
    def is_classifier(self) -> bool:
        """True for binary and multiclass models."""
        return self.task != "regression"

    def with_version(self, version: str) -> ModelSpec:
        """The same spec stamped with the model store's version."""
        return ModelSpec(
            self.name,
            version,
            self.task,
            self.features,
            self.classes,
            self.sensitive_attributes,
            self.reference,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (saved next to the model)."""
        return {
            "name": self.name,
            "version": self.version,
            "task": self.task,
            "features": [f.to_dict() for f in self.features],
            "classes": list(self.classes),
            "sensitive_attributes": list(self.sensitive_attributes),
            "reference": dict(self.reference),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=str(data["name"]),
            version=str(data.get("version", "")),
            task=data["task"],
            features=tuple(FeatureSpec.from_dict(f) for f in data["features"]),
            classes=tuple(str(c) for c in data.get("classes", ())),
            sensitive_attributes=tuple(str(a) for a in data.get("sensitive_attributes", ())),
            reference=dict(data.get("reference", {})),
        )

    def validate_features(
        self, rows: Sequence[Mapping[str, Any]], *, path: str = "instances"
    ) -> None:
        """Check rows against the feature schema; raise :class:`InvalidInput` at the first bad one.

        Numbers must be finite ints or floats (not booleans); categories must be
        strings. Unknown categories are allowed: drift counts them as unseen.
        """
        if rows and self._columns_fit(rows):
            return
        expected = {f.name: f for f in self.features}
        for index, row in enumerate(rows):
            where = f"{path}[{index}].features"
            missing = [name for name in expected if name not in row]
            if missing:
                raise InvalidInput(f"{where}.{missing[0]}", "required feature is missing")
            for name, value in row.items():
                feature = expected.get(name)
                if feature is None:
                    allowed = ", ".join(expected)
                    raise InvalidInput(f"{where}.{name}", f"unknown feature; expected: {allowed}")
                feature.check(value, f"{where}.{name}")

    def _columns_fit(self, rows: Sequence[Mapping[str, Any]]) -> bool:
        """Every row has exactly the features and each column fits: the common case, fast."""
        names = [f.name for f in self.features]
        keys = set(names)
        if not all(row.keys() == keys for row in rows):
            return False
        columns = (
            zip(*map(itemgetter(*names), rows), strict=True)
            if len(names) > 1
            else [[row[names[0]] for row in rows]]
        )
        return all(f.column_fits(c) for f, c in zip(self.features, columns, strict=True))

    def validate_groups(
        self, rows: Sequence[Mapping[str, Any]], *, path: str = "instances"
    ) -> None:
        """Check each instance's ``groups``; raise :class:`InvalidInput` at the first bad one.

        Keys must be the model's sensitive attributes (an absent one, or ``null``, is
        the missing-value bucket). Values are strings up to
        :data:`MAX_GROUP_VALUE_LENGTH` characters, other than the two bucket names
        the monitor reserves.
        """
        for index, groups in enumerate(rows):
            for attribute, value in groups.items():
                where = f"{path}[{index}].groups.{attribute}"
                if attribute not in self.sensitive_attributes:
                    allowed = ", ".join(self.sensitive_attributes) or "none (this model has none)"
                    raise InvalidInput(where, f"unknown sensitive attribute; expected: {allowed}")
                if value is None:
                    continue
                if not isinstance(value, str):
                    raise InvalidInput(
                        where, f"expected a string or null, got {type(value).__name__}"
                    )
                if len(value) > MAX_GROUP_VALUE_LENGTH:
                    raise InvalidInput(
                        where,
                        f"expected at most {MAX_GROUP_VALUE_LENGTH} characters, got {len(value)}",
                    )
                if value in (MISSING_GROUP, OVERFLOW_GROUP):
                    raise InvalidInput(
                        where,
                        f"{value!r} is reserved by the monitor; send null for a missing value",
                    )

    def parse_label(self, label: Any) -> str | float | None:
        """A feedback label in canonical form, or ``None`` when it is not valid for this model.

        Classifiers accept a class name (a JSON integer is matched to its decimal
        string); regressors accept a finite number within ±:data:`MAX_MAGNITUDE`.
        """
        if self.is_classifier:
            if isinstance(label, bool):
                return None
            if isinstance(label, int):
                label = str(label)
            return label if isinstance(label, str) and label in self.classes else None
        if isinstance(label, bool) or not isinstance(label, int | float):
            return None
        return float(label) if within_magnitude(label) else None
