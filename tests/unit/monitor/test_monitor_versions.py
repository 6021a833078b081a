"""Labels that cannot be aggregated never fail the rest of their batch; sums far from zero."""

from __future__ import annotations

import numpy as np
import pytest
from opentelemetry.sdk.trace import TracerProvider
from sklearn.metrics import (
    r2_score,
)

from instrumentation import (
    FeatureSpec,
    ModelMonitor,
    ModelSpec,
    PredictionInput,
    PredictionRecord,
    SQLiteStore,
    build_reference_profile,
)

# --- labels that cannot be aggregated never fail the rest of their batch ------------------------


def _multiclass(version: str, classes: tuple[str, ...]) -> ModelSpec:
    return ModelSpec("iris-test", version, "multiclass", (FeatureSpec("x", "number"),), classes)


def _classify(monitor: ModelMonitor, label: str, scores: list[float], pid: str) -> PredictionRecord:
    with monitor.predict([PredictionInput({"x": 1.0}, pid)]) as rec:
        (record,) = rec.set_outputs(labels=[label], scores=[scores])
    return record


def test_a_score_row_accepted_at_prediction_is_accepted_at_label_time(
    store: SQLiteStore, tracer_provider: TracerProvider
) -> None:
    monitor = ModelMonitor(
        _multiclass("v1", ("a", "b", "c")), store, tracer_provider=tracer_provider
    )
    # Sums to 1 + 1e-6 up to rounding: numpy's sum and an exact one disagree here.
    edge = [0.4185635943125683, 0.252860023617907, 0.3285773820695247]
    _classify(monitor, "a", edge, "edge")
    _classify(monitor, "a", [1.0, 0.0, 0.0], "plain")

    outcome = monitor.feedback([("plain", "a"), ("edge", "a")])

    assert outcome.results == [("plain", "matched"), ("edge", "matched")]
    assert monitor.snapshot()["windows"]["5m"]["quality"]["accuracy"]["n"] == 2


def test_a_prediction_of_an_earlier_version_with_other_classes_is_invalid_alone(
    store: SQLiteStore, tracer_provider: TracerProvider
) -> None:
    old = ModelMonitor(_multiclass("v1", ("a", "b", "c")), store, tracer_provider=tracer_provider)
    new = ModelMonitor(
        _multiclass("v2", ("a", "b", "c", "d")), store, tracer_provider=tracer_provider
    )
    _classify(old, "b", [0.2, 0.5, 0.3], "from-v1")
    _classify(new, "d", [0.1, 0.1, 0.1, 0.7], "from-v2")

    outcome = new.feedback([("from-v1", "a"), ("from-v2", "d")])

    assert outcome.results == [("from-v1", "invalid"), ("from-v2", "matched")]
    assert store.get_predictions("iris-test", ["from-v1"])["from-v1"].feedback is None
    assert new.snapshot()["windows"]["5m"]["n_labels"] == 1
    # The version that made it can still take its label.
    assert old.feedback([("from-v1", "a")]).results == [("from-v1", "matched")]


def test_the_estimate_error_compares_the_same_scored_rows(monitor: ModelMonitor) -> None:
    with monitor.predict([PredictionInput({"amount": 1.0, "channel": "web"}, "scored")]) as rec:
        rec.set_outputs(labels=["fraud"], scores=[[0.1, 0.9]])
    with monitor.predict([PredictionInput({"amount": 2.0, "channel": "web"}, "unscored")]) as rec:
        rec.set_outputs(labels=["fraud"])  # a model without probabilities for this row

    monitor.feedback([("scored", "fraud"), ("unscored", "legit")])

    window = monitor.snapshot()["windows"]["5m"]
    assert window["quality"]["accuracy"]["value"] == 0.5  # realised over both rows
    # The estimate covers the scored row only (0.9), and so does the realised side (1.0).
    assert window["estimated"]["error"]["accuracy"] == pytest.approx(0.9 - 1.0, abs=1e-12)


@pytest.mark.parametrize("offset", [0.0, 1e3, 1e7, 1.7e9])
def test_r2_equals_sklearn_for_targets_far_from_zero(
    store: SQLiteStore, tracer_provider: TracerProvider, offset: float
) -> None:
    rng = np.random.default_rng(0)
    training = offset + rng.normal(0.0, 1.0, 500)
    profile = build_reference_profile(
        {"size": training}, numeric=["size"], categorical=[], predicted_value=training
    )
    spec = ModelSpec(
        "price-test",
        "v7",
        "regression",
        (FeatureSpec("size", "number"),),
        sensitive_attributes=("region",),
        reference=profile.to_dict(),
    )
    monitor = ModelMonitor(spec, store, tracer_provider=tracer_provider)
    actual = offset + rng.normal(0.0, 1.0, 200)
    predicted = actual + rng.normal(0.0, 0.3, 200)
    groups = rng.choice(["a", "b"], 200)
    inputs = [PredictionInput({"size": 1.0}, None, {"region": g}) for g in groups]
    with monitor.predict(inputs) as rec:
        records = rec.set_outputs(values=predicted.tolist())
    monitor.feedback([(r.prediction_id, float(y)) for r, y in zip(records, actual, strict=True)])

    window = monitor.snapshot()["windows"]["5m"]
    assert window["quality"]["r2"]["value"] == pytest.approx(
        r2_score(actual, predicted), rel=0, abs=1e-9
    )
    for group in ("a", "b"):
        rows = groups == group
        assert window["fairness"]["region"]["groups"][group]["r2"]["value"] == pytest.approx(
            r2_score(actual[rows], predicted[rows]), rel=0, abs=1e-9
        )
