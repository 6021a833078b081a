"""Train the demo models and save them into the BentoML model store.

``python -m service.train`` saves all three (``BENTOML_HOME`` is respected);
``--model NAME`` saves one. ``make_dataset(n, seed)`` generates valid ``/predict``
traffic with true labels for tests, the demo and anyone else.

This is the demo's training script, kept here because other tools call it by
this name; its data and estimators live in :mod:`demo.models`, and it is not
shipped in the bento. To save your own model, call
:func:`service.model_store.save_model` from your training code.

Models:
    fraud-detector      binary, synthetic card transactions (default; sensitive: region, age_band)
    iris-classifier     multiclass, scikit-learn's iris data
    diabetes-regressor  regression, scikit-learn's diabetes data (sensitive: sex)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from demo.models import DEFAULT_MODEL, MODELS, Shift, make_dataset, train
from service.model_store import store_model

__all__ = ["DEFAULT_MODEL", "MODELS", "Shift", "main", "make_dataset", "save", "train"]


def save(model: str) -> str:
    """Train ``model`` and save it with its spec into the BentoML model store; return the tag."""
    estimator, spec = train(model)
    return store_model(estimator, spec)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: train and save demo models."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=MODELS, action="append", help="default: all three")
    args = parser.parse_args(argv)
    for model in args.model or MODELS:
        print(f"saved {save(model)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
