"""Train the example models and save them into the BentoML model store.

``python -m service.train`` saves all three (``BENTOML_HOME`` is respected);
``--model NAME`` saves one. ``make_dataset(n, seed)`` generates valid ``/predict``
traffic with true labels for tests, the demo and anyone else.

This is the template's training script: the example models' data, estimators
and monitor specs, saved through :func:`service.model_store.store_model`. To
serve your own model, replace it with your training code, ending in
:func:`service.model_store.save_model`. Serving does not need it, so it is not
shipped in the bento (``bentofile.yaml``).

Models:
    fraud-detector      binary, synthetic card transactions (default; sensitive: region, age_band)
    iris-classifier     multiclass, scikit-learn's iris data
    diabetes-regressor  regression, scikit-learn's diabetes data (sensitive: sex)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    KBinsDiscretizer,
    OneHotEncoder,
    StandardScaler,
)

from instrumentation import FeatureSpec, ModelSpec
from service.model_store import build_spec, store_model

DEFAULT_MODEL = "fraud-detector"
_QUANTILES = "averaged_inverted_cdf"

Instances = list[dict[str, Any]]

_CATEGORIES = ("grocery", "electronics", "travel", "online", "fuel")
_CATEGORY_WEIGHTS = (0.35, 0.15, 0.1, 0.3, 0.1)
_CATEGORY_RISK = {"grocery": -0.6, "electronics": 0.7, "travel": 0.4, "online": 0.5, "fuel": -0.3}
_CHANNELS = ("pos", "web", "app")
_REGIONS = ("north", "south", "east", "west")
_AGE_BANDS = ("18-29", "30-49", "50+")

FRAUD_FEATURES = (
    FeatureSpec("amount", "number", minimum=0.0),  # log1p of a negative amount is NaN
    FeatureSpec("hour", "number", minimum=0.0, maximum=23.0),
    FeatureSpec("account_age_days", "number", minimum=0.0),
    FeatureSpec("transactions_24h", "number", minimum=0.0),
    FeatureSpec("merchant_category", "category", _CATEGORIES),
    FeatureSpec("channel", "category", _CHANNELS),
)


@dataclass(frozen=True)
class Shift:
    """Distribution changes for generated traffic (the demo's drift and bias phases).

    ``amount_scale`` multiplies transaction amounts (input drift); ``flip_rate``
    flips the true label of that share of rows in ``flip_region`` (the model gets
    worse for one group: bias).
    """

    amount_scale: float = 1.0
    flip_region: str | None = None
    flip_rate: float = 0.0


def _fraud_rows(n: int, rng: np.random.Generator, shift: Shift) -> tuple[Instances, list[str]]:
    amount = np.round(rng.lognormal(3.6, 1.0, n) * shift.amount_scale, 2)
    hour = rng.integers(0, 24, n)
    age = np.round(rng.exponential(500.0, n))
    tx = rng.poisson(3.0, n)
    category = rng.choice(len(_CATEGORIES), n, p=_CATEGORY_WEIGHTS)
    channel = rng.choice(len(_CHANNELS), n, p=(0.5, 0.3, 0.2))
    region = rng.choice(len(_REGIONS), n)
    age_band = rng.choice(len(_AGE_BANDS), n, p=(0.3, 0.45, 0.25))
    logit = (
        -3.9
        + 1.1 * (np.log1p(amount) - 3.6)
        + 2.2 * (hour < 6)
        + 2.4 * (age < 30)
        + 0.3 * tx
        + 1.5 * np.array([_CATEGORY_RISK[_CATEGORIES[c]] for c in category])
        + 0.9 * (channel == 1)
    )
    fraud = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))
    if shift.flip_region is not None:
        in_region = region == _REGIONS.index(shift.flip_region)
        fraud ^= in_region & (rng.random(n) < shift.flip_rate)
    instances = [
        {
            "features": {
                "amount": float(amount[i]),
                "hour": int(hour[i]),
                "account_age_days": float(age[i]),
                "transactions_24h": int(tx[i]),
                "merchant_category": _CATEGORIES[category[i]],
                "channel": _CHANNELS[channel[i]],
            },
            "groups": {"region": _REGIONS[region[i]], "age_band": _AGE_BANDS[age_band[i]]},
        }
        for i in range(n)
    ]
    return instances, ["fraud" if f else "legit" for f in fraud]


def _sklearn_rows(model: str, n: int, rng: np.random.Generator) -> tuple[Instances, list[Any]]:
    if model == "iris-classifier":
        data = load_iris()
        names = [c.replace(" (cm)", "").replace(" ", "_") for c in data.feature_names]
        target: list[Any] = [str(data.target_names[t]) for t in data.target]
    else:
        data = load_diabetes()
        names = list(data.feature_names)
        target = [float(t) for t in data.target]
    picks = rng.integers(0, len(target), n)
    instances: Instances = []
    for i in picks:
        row = {name: float(v) for name, v in zip(names, data.data[i], strict=True)}
        item: dict[str, Any] = {"features": row}
        if model == "diabetes-regressor":
            item["groups"] = {"sex": "a" if row["sex"] < 0 else "b"}
        instances.append(item)
    return instances, [target[i] for i in picks]


def make_dataset(
    n: int, seed: int, *, model: str = DEFAULT_MODEL, shift: Shift | None = None
) -> tuple[Instances, list[Any]]:
    """``n`` instances in the ``/predict`` shape and their true labels, reproducibly.

    >>> instances, labels = make_dataset(2, seed=0)
    >>> sorted(instances[0]) == ["features", "groups"] and labels[0] in ("legit", "fraud")
    True
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    if model == DEFAULT_MODEL:
        return _fraud_rows(n, rng, shift or Shift())
    if model in ("iris-classifier", "diabetes-regressor"):
        return _sklearn_rows(model, n, rng)
    raise ValueError(f"model must be one of {', '.join(MODELS)}, got {model!r}")


def _spec(model: str, instances: Instances) -> ModelSpec:
    if model == DEFAULT_MODEL:
        return ModelSpec(
            model,
            "",
            "binary",
            FRAUD_FEATURES,
            ("legit", "fraud"),
            sensitive_attributes=("region", "age_band"),
        )
    names = list(instances[0]["features"])
    if model == "iris-classifier":
        lengths = tuple(FeatureSpec(name, "number", minimum=0.0) for name in names)  # cm
        classes = tuple(str(c) for c in load_iris().target_names)
        return ModelSpec(model, "", "multiclass", lengths, classes)
    # scikit-learn scales each diabetes column to unit sum of squares: |x| <= 1.
    scaled = tuple(FeatureSpec(name, "number", minimum=-1.0, maximum=1.0) for name in names)
    return ModelSpec(model, "", "regression", scaled, sensitive_attributes=("sex",))


def _estimator(spec: ModelSpec) -> Pipeline:
    categorical = [i for i, f in enumerate(spec.features) if f.kind == "category"]
    if spec.task == "binary":
        one_hot = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        encode = ColumnTransformer(
            [
                # np.log1p pickles by reference to numpy: the bento needs no demo code to
                # load it. validate=True turns the object column into floats first.
                ("log_amount", FunctionTransformer(np.log1p, validate=True), [0]),
                ("hour", one_hot, [1]),
                (
                    "age",
                    KBinsDiscretizer(8, encode="onehot-dense", quantile_method=_QUANTILES),
                    [2],
                ),
                ("tx", "passthrough", [3]),
                ("cat", one_hot, categorical),
            ]
        )
        # A well-specified logistic model is calibrated, which estimated performance relies
        # on, and predicts one row in well under a millisecond.
        return make_pipeline(encode, StandardScaler(), LogisticRegression(max_iter=2000))
    if spec.task == "multiclass":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return make_pipeline(StandardScaler(), Ridge(alpha=1.0))


def train(
    model: str, *, n_train: int = 20_000, seed: int = 7, mislabelled: float = 0.0
) -> tuple[Any, ModelSpec]:
    """Fit one example model and build its spec, including the drift reference profile.

    ``mislabelled`` marks that share of the training rows paid ``online`` as fraud:
    the demo's "retrained" version learnt from a broken label feed, so it is worse,
    which the rollout phase's comparison has to find.
    """
    instances, labels = make_dataset(n_train, seed, model=model)
    if mislabelled:
        rng = np.random.default_rng(seed)
        labels = [
            "fraud"
            if i["features"].get("merchant_category") == "online" and rng.random() < mislabelled
            else y
            for i, y in zip(instances, labels, strict=True)
        ]
    schema = _spec(model, instances)
    columns = [f.name for f in schema.features]
    x = np.array([[i["features"][c] for c in columns] for i in instances], dtype=object)
    estimator = _estimator(schema)
    estimator.fit(x, labels)
    return estimator, build_spec(
        model,
        estimator,
        task=schema.task,
        reference={c: [i["features"][c] for i in instances] for c in columns},
        classes=schema.classes,
        sensitive_attributes=schema.sensitive_attributes,
        features=schema.features,
    )


MODELS = (DEFAULT_MODEL, "iris-classifier", "diabetes-regressor")

__all__ = ["DEFAULT_MODEL", "MODELS", "Shift", "main", "make_dataset", "save", "train"]


def save(model: str) -> str:
    """Train ``model`` and save it with its spec into the BentoML model store; return the tag."""
    estimator, spec = train(model)
    return store_model(estimator, spec)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: train and save the example models."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=MODELS, action="append", help="default: all three")
    args = parser.parse_args(argv)
    for model in args.model or MODELS:
        print(f"saved {save(model)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
