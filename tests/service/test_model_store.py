"""``service.model_store`` and ``service.predictor``: your own estimator, saved and called."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from instrumentation import FeatureSpec, ModelSpec
from instrumentation.metrics.reference import build_reference_profile
from service.model_store import (
    INFER_BOOL,
    INFER_MIXED,
    NOT_A_FRAME,
    build_spec,
    infer_features,
)
from service.predictor import CLASSES_DIFFER, FEATURE_NAMES_DIFFER, Predictor


def frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "income": rng.normal(50.0, 10.0, n),
            "plan": rng.choice(["basic", "pro"], n),
        }
    )


def fitted(x: pd.DataFrame) -> LogisticRegression:
    """A classifier fitted on the numeric columns of a DataFrame (it has feature_names_in_)."""
    y = np.where(x["income"] > 50.0, "churns", "stays")
    return LogisticRegression().fit(x[["income", "age"]], y)


def test_features_are_inferred_from_a_dataframes_columns_and_dtypes() -> None:
    assert infer_features(frame()) == (
        FeatureSpec("age", "number"),
        FeatureSpec("income", "number"),
        FeatureSpec("plan", "category", ("basic", "pro")),
    )
    assert infer_features({"x": [1, 2.5], "c": ["b", "a", None]}) == (
        FeatureSpec("x", "number"),
        FeatureSpec("c", "category", ("a", "b")),
    )


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ({"flag": [True, False]}, INFER_BOOL.format(name="flag")),
        ({"mixed": [1, "a"]}, INFER_MIXED.format(name="mixed", kinds=["number", "string"])),
        ([[1, 2]], NOT_A_FRAME),
    ],
)
def test_features_that_cannot_be_inferred_are_named(reference: object, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        infer_features(reference)
    assert str(raised.value) == message


def test_a_dataframe_fitted_estimator_gets_its_columns_in_fitted_order() -> None:
    x = frame()
    model = fitted(x)
    # The spec lists the features in another order than the estimator was fitted with.
    spec = build_spec("churn", model, task="binary", reference=x[["age", "income"]])
    predictor = Predictor(model, spec)
    rows = x[["age", "income"]].to_dict("records")

    inputs = predictor.inputs(rows)

    assert predictor.uses_frame and list(inputs.columns) == ["income", "age"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "X does not have valid feature names" would raise
        labels, scores = predictor.classify(rows)
    expected = model.predict_proba(x[["income", "age"]])
    order = [list(model.classes_).index(c) for c in spec.classes]
    np.testing.assert_allclose(scores, expected[:, order], rtol=0, atol=0)
    assert labels == [spec.classes[i] for i in np.argmax(expected[:, order], axis=1)]


def test_a_spec_that_disagrees_with_the_estimators_names_fails_with_them() -> None:
    x = frame()
    model = fitted(x)
    spec = ModelSpec(
        "churn",
        "1",
        "binary",
        (FeatureSpec("income", "number"), FeatureSpec("plan", "category")),
        tuple(model.classes_),
    )
    with pytest.raises(ValueError) as raised:
        Predictor(model, spec)
    assert str(raised.value) == FEATURE_NAMES_DIFFER.format(missing=["age"], extra=["plan"])


def test_a_spec_with_other_classes_fails_with_both_lists() -> None:
    x = frame()
    model = fitted(x)
    spec = ModelSpec("churn", "1", "binary", infer_features(x[["age", "income"]]), ("a", "b"))
    with pytest.raises(ValueError) as raised:
        Predictor(model, spec)
    assert str(raised.value) == CLASSES_DIFFER.format(fitted=["churns", "stays"], spec=["a", "b"])


def test_the_reference_profile_is_the_training_data_and_the_models_own_outputs() -> None:
    x = frame()
    model = fitted(x)
    reference = x[["age", "income"]]

    spec = build_spec(
        "churn", model, task="binary", reference=reference, classes=("stays", "churns")
    )

    proba = model.predict_proba(x[["income", "age"]])[:, list(model.classes_).index("churns")]
    expected = build_reference_profile(
        {"age": list(x["age"]), "income": list(x["income"])},
        numeric=["age", "income"],
        categorical=[],
        predicted_label=list(np.where(proba > 0.5, "churns", "stays")),
        predicted_score=proba,
    )
    assert spec.reference == expected.to_dict()
    assert spec.classes == ("stays", "churns")
    assert spec.version == ""


def test_regressors_default_to_no_classes_and_profile_their_values() -> None:
    x = frame()[["age", "income"]]
    model = LinearRegression().fit(x, x["income"] * 2.0)

    spec = build_spec("spend", model, task="regression", reference=x)

    assert spec.classes == ()
    assert "value" in spec.reference["prediction"]
