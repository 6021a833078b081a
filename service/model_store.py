"""The model-store contract: a fitted estimator and its monitor spec, saved and loaded together.

Save your own model once, from your training code::

    from service.model_store import save_model

    tag = save_model(
        "breast-cancer", pipeline, task="binary", classes=("benign", "malignant"),
        sensitive_attributes=("size_band",), reference=x_train,   # a DataFrame
    )

Features (names, number or category, category values) are inferred from the
reference's columns, or given with ``features=``; the reference profile for drift
is built from the same rows and the estimator's own predictions on them. The
service loads both files with :func:`load_model`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from instrumentation import FeatureSpec, ModelSpec, build_reference_profile
from instrumentation.spec import Task
from service.predictor import Predictor

MODEL_FILE = "model.pkl"
"""The pickled estimator (joblib) inside a model-store entry."""

SPEC_FILE = "monitor-spec.json"
"""The monitor spec (task, classes, features, groups, reference profile) beside it."""

TEMPLATE_LABEL = "bentoml-model-monitor"
"""The ``template`` label on every model this template saves."""

INFER_BOOL = "feature {name!r}: booleans are ambiguous; cast the column to int or to strings"
INFER_MIXED = "feature {name!r}: expected all numbers or all strings, found {kinds}"
NOT_A_FRAME = "reference: expected a DataFrame or a mapping of column name to values"

Columns = dict[str, list[Any]]


def columns_of(reference: Any) -> Columns:
    """A DataFrame or a mapping of columns as ``{name: [values]}`` (Python scalars).

    Raises:
        ValueError: ``NOT_A_FRAME``.
    """
    if hasattr(reference, "columns") and hasattr(reference, "to_dict"):
        return {str(name): list(values) for name, values in reference.to_dict("list").items()}
    if isinstance(reference, Mapping):
        return {str(name): list(values) for name, values in reference.items()}
    raise ValueError(NOT_A_FRAME)


def infer_features(reference: Any) -> tuple[FeatureSpec, ...]:
    """One :class:`FeatureSpec` per column: numbers, or categories with their observed values.

    Raises:
        ValueError: ``INFER_BOOL``, ``INFER_MIXED`` or ``NOT_A_FRAME``.
    """
    features = []
    for name, values in columns_of(reference).items():
        kinds = {_kind(v) for v in values if v is not None}
        if "bool" in kinds:
            raise ValueError(INFER_BOOL.format(name=name))
        if kinds == {"number"}:
            features.append(FeatureSpec(name, "number"))
        elif kinds == {"string"}:
            features.append(FeatureSpec(name, "category", tuple(sorted(set(values) - {None}))))
        else:
            raise ValueError(INFER_MIXED.format(name=name, kinds=sorted(kinds) or "no values"))
    return tuple(features)


def _kind(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return "bool"
    if isinstance(value, int | float | np.integer | np.floating):
        return "number"
    return "string" if isinstance(value, str) else type(value).__name__


def build_spec(
    name: str,
    estimator: Any,
    *,
    task: Task,
    reference: Any,
    classes: Sequence[str] | None = None,
    sensitive_attributes: Sequence[str] = (),
    features: Sequence[FeatureSpec] | None = None,
) -> ModelSpec:
    """The monitor spec of a fitted estimator, its drift reference built from ``reference``.

    Args:
        name: the model's name in the model store.
        estimator: a fitted scikit-learn estimator (``predict_proba`` for classifiers).
        task: ``binary``, ``multiclass`` or ``regression``.
        reference: training inputs, a DataFrame or ``{column: values}``; the profile
            drift is measured against, and the rows the estimator predicts for it.
        classes: class names in report order (``classes[1]`` is a binary model's
            positive class); default: the estimator's ``classes_`` as strings.
        sensitive_attributes: group keys clients send in ``groups`` (not inputs).
        features: the schema; default: :func:`infer_features` of ``reference``.
    """
    columns = columns_of(reference)
    schema = tuple(features) if features is not None else infer_features(columns)
    if task != "regression" and classes is None:
        classes = [str(c) for c in estimator.classes_]
    spec = ModelSpec(
        name,
        "",
        task,
        schema,
        tuple(classes or ()),
        sensitive_attributes=tuple(sensitive_attributes),
    )
    predictor = Predictor(estimator, spec)  # checks names and classes before any work
    names = [f.name for f in schema]
    rows = [
        dict(zip(names, values, strict=True))
        for values in zip(*(columns[n] for n in names), strict=True)
    ]
    numeric = [f.name for f in schema if f.kind == "number"]
    categorical = [f.name for f in schema if f.kind == "category"]
    frame = {n: columns[n] for n in names}
    if spec.is_classifier:
        labels, scores = predictor.classify(rows)
        proba = np.asarray(scores)
        profile = build_reference_profile(
            frame,
            numeric=numeric,
            categorical=categorical,
            predicted_label=labels,
            predicted_score=proba[:, 1] if task == "binary" else None,
        )
    else:
        profile = build_reference_profile(
            frame, numeric=numeric, categorical=categorical, predicted_value=predictor.regress(rows)
        )
    return replace(spec, reference=profile.to_dict())


def save_model(
    name: str,
    estimator: Any,
    *,
    task: Task,
    reference: Any,
    classes: Sequence[str] | None = None,
    sensitive_attributes: Sequence[str] = (),
    features: Sequence[FeatureSpec] | None = None,
    labels: Mapping[str, str] | None = None,
) -> str:
    """Save ``estimator`` and its monitor spec into the BentoML model store; return the tag.

    Arguments as :func:`build_spec`; ``labels`` are extra model-store labels.
    ``BENTOML_HOME`` chooses the store.
    """
    spec = build_spec(
        name,
        estimator,
        task=task,
        reference=reference,
        classes=classes,
        sensitive_attributes=sensitive_attributes,
        features=features,
    )
    return store_model(estimator, spec, labels=labels)


def store_model(estimator: Any, spec: ModelSpec, *, labels: Mapping[str, str] | None = None) -> str:
    """Write an estimator and a ready spec as a new version of ``spec.name``; return the tag."""
    import bentoml
    import joblib

    with bentoml.models.create(
        spec.name,
        labels={"task": spec.task, "template": TEMPLATE_LABEL, **(labels or {})},
        metadata={"task": spec.task, "classes": list(spec.classes)},
    ) as saved:
        joblib.dump(estimator, saved.path_of(MODEL_FILE))
        with open(saved.path_of(SPEC_FILE), "w", encoding="utf-8") as handle:
            json.dump(spec.to_dict(), handle, indent=1)
    return str(saved.tag)


def load_model(stored: Any) -> tuple[Any, ModelSpec]:
    """The estimator and spec of a stored model (a ``bentoml.Model``), stamped with its version."""
    import joblib

    with open(stored.path_of(SPEC_FILE), encoding="utf-8") as handle:
        spec = ModelSpec.from_dict(json.load(handle)).with_version(stored.tag.version or "")
    return joblib.load(stored.path_of(MODEL_FILE)), spec
