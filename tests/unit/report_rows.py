"""Random labelled predictions of a binary, multiclass or regression model, for report tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from instrumentation import FeatureSpec, ModelSpec, PredictionRecord, build_reference_profile
from instrumentation.spec import Task

CLASSES: dict[Task, tuple[str, ...]] = {
    "binary": ("legit", "fraud"),
    "multiclass": ("a", "b", "c"),
    "regression": (),
}


def spec_for(task: Task, rng: np.random.Generator) -> ModelSpec:
    """A two-feature spec with a reference profile and one sensitive attribute, ``region``."""
    n = 300
    classes = CLASSES[task]
    outputs: dict[str, Any] = {}
    if task == "regression":
        outputs["predicted_value"] = rng.normal(size=n)
    else:
        outputs["predicted_label"] = list(rng.choice(classes, n))
    if task == "binary":
        outputs["predicted_score"] = rng.uniform(size=n)
    profile = build_reference_profile(
        {"x": rng.normal(size=n), "channel": rng.choice(["web", "pos"], n)},
        numeric=["x"],
        categorical=["channel"],
        **outputs,
    )
    features = (FeatureSpec("x", "number"), FeatureSpec("channel", "category", ("web", "pos")))
    return ModelSpec("m", "v", task, features, classes, ("region",), reference=profile.to_dict())


def labelled_rows(
    spec: ModelSpec,
    rng: np.random.Generator,
    n: int,
    *,
    version: Callable[[int], str] = lambda i: "v",
    created: Callable[[int], float] = lambda i: 0.0,
) -> tuple[list[PredictionRecord], list[dict[str, Any]], list[Any]]:
    """``n`` predictions in two groups, their features and their true labels."""
    records, features, truths = [], [], []
    for i in range(n):
        if spec.is_classifier:
            scores = rng.dirichlet(np.ones(len(spec.classes)))
            label: str | None = spec.classes[int(np.argmax(scores))]
            value, truth = None, spec.classes[int(rng.integers(len(spec.classes)))]
        else:
            scores, label = None, None
            value = float(rng.normal())
            truth = value + float(rng.normal())
        records.append(
            PredictionRecord(
                prediction_id=str(i),
                version=version(i),
                created=created(i),
                label=label,
                value=value,
                scores=tuple(float(p) for p in scores) if scores is not None else None,
                groups={"region": "north" if i % 2 else "south"},
                trace_id="0" * 32,
                span_id="0" * 16,
            )
        )
        features.append({"x": float(rng.normal()), "channel": str(rng.choice(["web", "pos"]))})
        truths.append(truth)
    return records, features, truths
