"""What the monitor must know about a model: task, classes, feature schema, groups.

A :class:`ModelSpec` is saved next to the model (as JSON) at training time and
loaded by the service; it drives request validation, label validation and the
shape of every metric.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Task = Literal["binary", "multiclass", "regression"]
TASKS: tuple[Task, ...] = ("binary", "multiclass", "regression")
FeatureKind = Literal["number", "category"]


class InvalidInput(ValueError):
    """A request field is invalid; ``field`` is its JSON path (``instances[2].features.age``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class FeatureSpec:
    """One model input: a number, or a category from a known set (others are still accepted)."""

    name: str
    kind: FeatureKind
    categories: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"name": self.name, "kind": self.kind, "categories": list(self.categories)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        """Inverse of :meth:`to_dict`."""
        kind = data["kind"]
        if kind not in ("number", "category"):
            raise ValueError(f"feature {data['name']!r}: kind must be number or category")
        return cls(str(data["name"]), kind, tuple(str(c) for c in data.get("categories", ())))


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
                _check_value(feature, value, f"{where}.{name}")

    def parse_label(self, label: Any) -> str | float | None:
        """A feedback label in canonical form, or ``None`` when it is not valid for this model.

        Classifiers accept a class name (a JSON integer is matched to its decimal
        string); regressors accept a finite number.
        """
        if self.is_classifier:
            if isinstance(label, bool):
                return None
            if isinstance(label, int):
                label = str(label)
            return label if isinstance(label, str) and label in self.classes else None
        if isinstance(label, bool) or not isinstance(label, int | float):
            return None
        value = float(label)
        return value if math.isfinite(value) else None


def _check_value(feature: FeatureSpec, value: Any, where: str) -> None:
    if feature.kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInput(where, f"expected a number, got {type(value).__name__}")
        if not math.isfinite(value):
            raise InvalidInput(where, "expected a finite number")
    elif not isinstance(value, str):
        raise InvalidInput(where, f"expected a string category, got {type(value).__name__}")
