"""``POST /predict`` in process: answers in order, 4xx that name the field, 409, 413, docs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from api_helpers import (
    CLASSES,
    FEATURES,
    MODEL,
    error_text,
    instances_of,
    predict_ok,
    stored_model,
)
from starlette.testclient import TestClient

from instrumentation import SQLiteStore
from service.predictor import Predictor


def test_predict_answers_every_instance_in_input_order(
    client: TestClient, store: SQLiteStore, trained_home: Path
) -> None:
    instances = instances_of(6, seed=11)
    instances[1]["id"] = "tx-1"
    instances[4]["id"] = "tx-4"

    response = client.post("/predict", json={"instances": instances})

    assert response.status_code == 200, response.text
    body = response.json()
    estimator, spec = stored_model(trained_home, MODEL)
    assert body["model"] == {"name": MODEL, "version": spec.version}
    predictions = body["predictions"]
    ids = [p["prediction_id"] for p in predictions]
    assert (ids[1], ids[4]) == ("tx-1", "tx-4")
    assert all(len(pid) == 32 for i, pid in enumerate(ids) if i not in (1, 4))
    assert len(set(ids)) == 6
    labels, scores = Predictor(estimator, spec).classify([i["features"] for i in instances])
    for prediction, label, row in zip(predictions, labels, scores, strict=True):
        assert set(prediction) == {"prediction_id", "label", "scores", "value", "recorded"}
        assert list(prediction["scores"]) == CLASSES  # class order, not sklearn's sorted order
        assert list(prediction["scores"].values()) == pytest.approx(row, abs=1e-12)
        assert sum(prediction["scores"].values()) == pytest.approx(1.0, abs=1e-9)
        assert prediction["label"] == label == max(CLASSES, key=prediction["scores"].get)
        assert prediction["value"] is None
        assert prediction["recorded"] is True
    stored = store.get_predictions(MODEL, ids)
    assert [stored[pid].groups for pid in ids] == [i["groups"] for i in instances]
    assert [stored[pid].label for pid in ids] == labels
    # The ml.predict span joined BentoML's request trace: its trace id is the response's.
    assert {r.trace_id for r in stored.values()} == {response.headers["x-bentoml-trace-id"]}


def test_a_missing_sensitive_attribute_is_stored_as_missing(
    client: TestClient, store: SQLiteStore
) -> None:
    instance = {"features": instances_of(1)[0]["features"], "groups": {"region": "north"}}

    (prediction,) = predict_ok(client, [instance])

    stored = store.get_predictions(MODEL, [prediction["prediction_id"]])
    assert stored[prediction["prediction_id"]].groups == {
        "region": "north",
        "age_band": "__missing__",
    }


def _with(features: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {"features": {**features, **changes}}


_GOOD = instances_of(1)[0]["features"]
_NO_HOUR = {k: v for k, v in _GOOD.items() if k != "hour"}


@pytest.mark.parametrize(
    ("instances", "message"),
    [
        pytest.param([], "instances: expected at least 1 instance", id="empty"),
        pytest.param(
            [_with(_GOOD), _with(_GOOD, colour="red")],
            f"instances[1].features.colour: unknown feature; expected: {FEATURES}",
            id="unknown-feature",
        ),
        pytest.param(
            [_with(_GOOD), _with(_GOOD), {"features": _NO_HOUR}],
            "instances[2].features.hour: required feature is missing",
            id="missing-feature",
        ),
        pytest.param(
            [_with(_GOOD, amount="12.50")],
            "instances[0].features.amount: expected a number, got str",
            id="string-for-number",
        ),
        pytest.param(
            [_with(_GOOD, hour=True)],
            "instances[0].features.hour: expected a number, got bool",
            id="bool-for-number",
        ),
        pytest.param(
            [_with(_GOOD, channel=1)],
            "instances[0].features.channel: expected a string category, got int",
            id="number-for-category",
        ),
        pytest.param(
            [_with(_GOOD, amount=None)],
            "instances[0].features.amount: expected a number, got NoneType",
            id="null-for-number",
        ),
        pytest.param(
            [_with(_GOOD, amount=-5.0)],
            "instances[0].features.amount: expected a number >= 0, got -5.0",
            id="below-the-declared-range",
        ),
        pytest.param(
            [_with(_GOOD), {**_with(_GOOD), "groups": {"region": "north", "colour": "red"}}],
            "instances[1].groups.colour: unknown sensitive attribute; expected: region, age_band",
            id="unknown-group-attribute",
        ),
        pytest.param(
            [{**_with(_GOOD), "groups": {"region": "n" * 129}}],
            "instances[0].groups.region: expected at most 128 characters, got 129",
            id="group-value-too-long",
        ),
        pytest.param(
            [{**_with(_GOOD), "groups": {"region": "__other__"}}],
            "instances[0].groups.region: '__other__' is reserved by the monitor; "
            "send null for a missing value",
            id="reserved-group-value",
        ),
    ],
)
def test_invalid_instances_get_a_400_naming_the_field_and_store_nothing(
    client: TestClient, store: SQLiteStore, instances: list[dict[str, Any]], message: str
) -> None:
    response = client.post("/predict", json={"instances": instances})

    assert response.status_code == 400
    assert error_text(response) == message
    assert store.count_predictions(MODEL) == 0


def test_a_nan_literal_is_rejected(client: TestClient, store: SQLiteStore) -> None:
    features = json.dumps(_GOOD).replace(
        f'"amount": {json.dumps(_GOOD["amount"])}', '"amount": NaN'
    )
    assert '"amount": NaN' in features

    response = client.post(
        "/predict",
        content=f'{{"instances": [{{"features": {features}}}]}}'.encode(),
        headers={"content-type": "application/json"},
    )

    assert response.status_code == 400
    assert error_text(response) == (
        "instances[0].features.amount: expected a finite number within ±1e+100"
    )
    assert store.count_predictions(MODEL) == 0


@pytest.mark.parametrize(
    ("instance", "location", "kind"),
    [
        pytest.param(
            {**_with(_GOOD), "colour": "red"},
            ["instances", 0, "colour"],
            "extra_forbidden",
            id="extra-field",
        ),
        pytest.param({"id": "x"}, ["instances", 0, "features"], "missing", id="no-features"),
        pytest.param(
            {**_with(_GOOD), "id": ""}, ["instances", 0, "id"], "string_too_short", id="empty-id"
        ),
        pytest.param(
            {**_with(_GOOD), "groups": {"region": 3}},
            ["instances", 0, "groups", "region"],
            "string_type",
            id="group-not-a-string",
        ),
    ],
)
def test_schema_errors_get_a_400_locating_the_field(
    client: TestClient, store: SQLiteStore, instance: dict[str, Any], location: list[Any], kind: str
) -> None:
    response = client.post("/predict", json={"instances": [instance]})

    assert response.status_code == 400
    body = response.json()
    assert body["error"].startswith("1 validation error for ")  # the rest is BentoML's naming
    assert [(d["loc"], d["type"]) for d in body["detail"]] == [(location, kind)]
    assert store.count_predictions(MODEL) == 0


@pytest.mark.parametrize("path", ["/predict", "/feedback"])
def test_unknown_top_level_fields_are_rejected(
    client: TestClient, store: SQLiteStore, path: str
) -> None:
    body: dict[str, Any] = (
        {"instances": [{"features": _GOOD}]}
        if path == "/predict"
        else {"labels": [{"prediction_id": "p", "label": "fraud"}]}
    )
    response = client.post(path, json={**body, "bogus": 1})

    assert response.status_code == 400
    assert [(d["loc"], d["type"]) for d in response.json()["detail"]] == [
        (["bogus"], "extra_forbidden")
    ]
    assert store.count_predictions(MODEL) == 0


def test_too_many_instances_get_a_400(
    make_client: Callable[..., TestClient], store: SQLiteStore
) -> None:
    client = make_client(MONITOR_MAX_BATCH="5")

    response = client.post("/predict", json={"instances": instances_of(6)})

    assert response.status_code == 400
    assert error_text(response) == "instances: 6 given, at most 5 per request (MONITOR_MAX_BATCH)"
    assert store.count_predictions(MODEL) == 0
    assert len(predict_ok(client, instances_of(5))) == 5


def test_a_reused_id_gets_a_409_and_nothing_of_the_request_is_stored(
    client: TestClient, store: SQLiteStore
) -> None:
    first, second, third = instances_of(3)
    predict_ok(client, [{**first, "id": "tx-1"}])
    before = client.get("/monitor").json()["windows"]["5m"]

    response = client.post(
        "/predict", json={"instances": [{**second, "id": "tx-2"}, {**third, "id": "tx-1"}]}
    )

    assert response.status_code == 409
    assert error_text(response) == (
        "instances[1].id: prediction id 'tx-1' already exists for this model; nothing was stored"
    )
    assert set(store.get_predictions(MODEL, ["tx-1", "tx-2"])) == {"tx-1"}
    after = client.get("/monitor").json()
    assert after["stored_predictions"] == 1
    assert after["windows"]["5m"]["n_predictions"] == before["n_predictions"] == 1


def test_an_id_repeated_within_a_request_gets_a_409_and_nothing_is_stored(
    client: TestClient, store: SQLiteStore
) -> None:
    # Schema-valid (OpenAPI cannot say "unique by a property"), so not a 400: the same
    # conflict as an id already stored.
    first, second = instances_of(2)
    response = client.post(
        "/predict", json={"instances": [{**first, "id": "same"}, {**second, "id": "same"}]}
    )

    assert response.status_code == 409
    assert error_text(response) == (
        "instances[1].id: 'same' repeats instances[0].id; ids must be unique within a request"
    )
    assert store.count_predictions(MODEL) == 0


def test_docs_show_the_served_models_features_and_groups(client: TestClient) -> None:
    schemas = client.get("/docs.json").json()["components"]["schemas"]
    instance = schemas["Instance"]["properties"]

    features = instance["features"]
    assert features["required"] == [
        "amount",
        "hour",
        "account_age_days",
        "transactions_24h",
        "merchant_category",
        "channel",
    ]
    assert features["additionalProperties"] is False
    assert features["properties"]["hour"] == {"type": "number", "minimum": 0.0, "maximum": 23.0}
    assert features["properties"]["channel"]["examples"] == ["pos", "web", "app"]
    groups = instance["groups"]
    assert sorted(groups["properties"]) == ["age_band", "region"]
    assert groups["additionalProperties"] is False
