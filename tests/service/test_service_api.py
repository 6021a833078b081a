"""The HTTP API in process: predict, feedback, monitor; 4xx that name the field; exact quality."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from service_roundtrip import roundtrip, service_env
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    confusion_matrix,
    log_loss,
    mean_absolute_error,
    mean_absolute_percentage_error,
    precision_recall_fscore_support,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)
from starlette.testclient import TestClient

from instrumentation import ModelSpec, SQLiteStore
from service.auth import UNAUTHORIZED_MESSAGE
from service.predictor import Predictor
from service.train import make_dataset

REPO = Path(__file__).resolve().parents[2]
MODEL = "fraud-detector"
CLASSES = ["legit", "fraud"]
FEATURES = "amount, hour, account_age_days, transactions_24h, merchant_category, channel"
STATUSES = ("matched", "duplicate", "conflict", "unknown", "invalid", "expired")


def _error(response: Any) -> str:
    """The ``error`` text of a 4xx body (BentoML wraps its own exceptions' body in a list)."""
    body = response.json()
    if isinstance(body, list):
        (body,) = body
    return str(body["error"])


def _instances(n: int, seed: int = 0) -> list[dict[str, Any]]:
    return make_dataset(n, seed)[0]


def _predict(client: TestClient, instances: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    response = client.post("/predict", json={"instances": list(instances)})
    assert response.status_code == 200, response.text
    return list(response.json()["predictions"])


def _feedback(client: TestClient, labels: Sequence[tuple[str, Any]], **kwargs: Any) -> Any:
    body = {"labels": [{"prediction_id": pid, "label": label} for pid, label in labels]}
    return client.post("/feedback", json=body, **kwargs)


def _counts(**nonzero: int) -> dict[str, int]:
    return {status: nonzero.get(status, 0) for status in STATUSES}


def _stored_model(trained_home: Path, model: str) -> tuple[Any, ModelSpec]:
    root = trained_home / "models" / model
    version = (root / "latest").read_text().strip()
    spec = ModelSpec.from_dict(json.loads((root / version / "monitor-spec.json").read_text()))
    return joblib.load(root / version / "model.pkl"), spec.with_version(version)


# --- POST /predict ------------------------------------------------------------------------------


def test_predict_answers_every_instance_in_input_order(
    client: TestClient, store: SQLiteStore, trained_home: Path
) -> None:
    instances = _instances(6, seed=11)
    instances[1]["id"] = "tx-1"
    instances[4]["id"] = "tx-4"

    response = client.post("/predict", json={"instances": instances})

    assert response.status_code == 200, response.text
    body = response.json()
    estimator, spec = _stored_model(trained_home, MODEL)
    assert body["model"] == {"name": MODEL, "version": spec.version}
    predictions = body["predictions"]
    ids = [p["prediction_id"] for p in predictions]
    assert (ids[1], ids[4]) == ("tx-1", "tx-4")
    assert all(len(pid) == 32 for i, pid in enumerate(ids) if i not in (1, 4))
    assert len(set(ids)) == 6
    labels, scores = Predictor(estimator, spec).classify([i["features"] for i in instances])
    for prediction, label, row in zip(predictions, labels, scores, strict=True):
        assert set(prediction) == {"prediction_id", "label", "scores", "value"}
        assert list(prediction["scores"]) == CLASSES  # class order, not sklearn's sorted order
        assert list(prediction["scores"].values()) == pytest.approx(row, abs=1e-12)
        assert sum(prediction["scores"].values()) == pytest.approx(1.0, abs=1e-9)
        assert prediction["label"] == label == max(CLASSES, key=prediction["scores"].get)
        assert prediction["value"] is None
    stored = store.get_predictions(MODEL, ids)
    assert [stored[pid].groups for pid in ids] == [i["groups"] for i in instances]
    assert [stored[pid].label for pid in ids] == labels
    # The ml.predict span joined BentoML's request trace: its trace id is the response's.
    assert {r.trace_id for r in stored.values()} == {response.headers["x-bentoml-trace-id"]}


def test_a_missing_sensitive_attribute_is_stored_as_missing(
    client: TestClient, store: SQLiteStore
) -> None:
    instance = {"features": _instances(1)[0]["features"], "groups": {"region": "north"}}

    (prediction,) = _predict(client, [instance])

    stored = store.get_predictions(MODEL, [prediction["prediction_id"]])
    assert stored[prediction["prediction_id"]].groups == {
        "region": "north",
        "age_band": "__missing__",
    }


def _with(features: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {"features": {**features, **changes}}


_GOOD = _instances(1)[0]["features"]
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
        pytest.param(
            [{**_with(_GOOD), "id": "same"}, {**_with(_GOOD), "id": "same"}],
            "instances[1].id: 'same' repeats instances[0].id; ids must be unique within a request",
            id="duplicate-ids",
        ),
    ],
)
def test_invalid_instances_get_a_400_naming_the_field_and_store_nothing(
    client: TestClient, store: SQLiteStore, instances: list[dict[str, Any]], message: str
) -> None:
    response = client.post("/predict", json={"instances": instances})

    assert response.status_code == 400
    assert _error(response) == message
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
    assert _error(response) == (
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


def test_too_many_instances_get_a_413(
    make_client: Callable[..., TestClient], store: SQLiteStore
) -> None:
    client = make_client(MONITOR_MAX_BATCH="5")

    response = client.post("/predict", json={"instances": _instances(6)})

    assert response.status_code == 413
    assert _error(response) == "instances: 6 given, at most 5 per request (MONITOR_MAX_BATCH)"
    assert store.count_predictions(MODEL) == 0
    assert len(_predict(client, _instances(5))) == 5


def test_a_reused_id_gets_a_409_and_nothing_of_the_request_is_stored(
    client: TestClient, store: SQLiteStore
) -> None:
    first, second, third = _instances(3)
    _predict(client, [{**first, "id": "tx-1"}])
    before = client.get("/monitor").json()["windows"]["5m"]

    response = client.post(
        "/predict", json={"instances": [{**second, "id": "tx-2"}, {**third, "id": "tx-1"}]}
    )

    assert response.status_code == 409
    assert _error(response) == (
        "instances[1].id: prediction id 'tx-1' already exists for this model; nothing was stored"
    )
    assert set(store.get_predictions(MODEL, ["tx-1", "tx-2"])) == {"tx-1"}
    after = client.get("/monitor").json()
    assert after["stored_predictions"] == 1
    assert after["windows"]["5m"]["n_predictions"] == before["n_predictions"] == 1


# --- POST /feedback -----------------------------------------------------------------------------


def test_feedback_reports_a_status_per_item(client: TestClient, store: SQLiteStore) -> None:
    ids = [p["prediction_id"] for p in _predict(client, _instances(3))]
    first = _feedback(client, [(ids[0], "fraud")])
    assert first.status_code == 200, first.text
    assert first.json() == {
        "results": [{"prediction_id": ids[0], "status": "matched"}],
        "counts": _counts(matched=1),
    }

    response = _feedback(
        client,
        [
            (ids[0], "fraud"),
            (ids[0], "legit"),
            ("no-such-id", "fraud"),
            (ids[1], "maybe"),
            (ids[1], True),
            (ids[1], 0.5),
            (ids[1], None),
            (ids[2], "legit"),
        ],
    )

    assert response.status_code == 200, response.text
    assert response.json() == {
        "results": [
            {"prediction_id": ids[0], "status": "duplicate"},
            {"prediction_id": ids[0], "status": "conflict"},
            {"prediction_id": "no-such-id", "status": "unknown"},
            {"prediction_id": ids[1], "status": "invalid"},
            {"prediction_id": ids[1], "status": "invalid"},
            {"prediction_id": ids[1], "status": "invalid"},
            {"prediction_id": ids[1], "status": "invalid"},
            {"prediction_id": ids[2], "status": "matched"},
        ],
        "counts": _counts(duplicate=1, conflict=1, unknown=1, invalid=4, matched=1),
    }
    stored = store.get_predictions(MODEL, ids)
    assert [stored[pid].feedback for pid in ids] == ["fraud", None, "legit"]
    assert client.get("/monitor").json()["windows"]["5m"]["n_labels"] == 2


def test_a_label_after_the_ttl_is_expired(
    make_client: Callable[..., TestClient], store: SQLiteStore
) -> None:
    client = make_client(MONITOR_PREDICTION_TTL="1s")
    (prediction,) = _predict(client, _instances(1))
    time.sleep(1.05)

    response = _feedback(client, [(prediction["prediction_id"], "fraud")])

    assert response.status_code == 200, response.text
    assert response.json()["counts"] == _counts(expired=1)
    assert client.get("/monitor").json()["windows"]["5m"]["n_labels"] == 0


def test_oversized_and_empty_feedback_is_refused_whole(
    make_client: Callable[..., TestClient], store: SQLiteStore
) -> None:
    client = make_client(MONITOR_MAX_BATCH="5")
    ids = [p["prediction_id"] for p in _predict(client, _instances(5))]
    before = store.sum_aggregates(MODEL, _version(client), since_bucket=0)

    oversized = _feedback(client, [(pid, "fraud") for pid in ids] + [("extra", "fraud")])
    empty = client.post("/feedback", json={"labels": []})

    assert oversized.status_code == 413
    assert _error(oversized) == "labels: 6 given, at most 5 per request (MONITOR_MAX_BATCH)"
    assert empty.status_code == 400
    assert _error(empty) == "labels: expected at least 1 label"
    assert all(r.feedback is None for r in store.get_predictions(MODEL, ids).values())
    assert store.sum_aggregates(MODEL, _version(client), since_bucket=0) == before
    assert '["labels"]' not in before


def test_malformed_feedback_items_get_a_400_locating_the_field(client: TestClient) -> None:
    response = client.post(
        "/feedback", json={"labels": [{"prediction_id": "a", "label": "fraud", "extra": 1}]}
    )

    assert response.status_code == 400
    assert [(d["loc"], d["type"]) for d in response.json()["detail"]] == [
        (["labels", 0, "extra"], "extra_forbidden")
    ]


def _version(client: TestClient) -> str:
    return str(client.get("/monitor").json()["model"]["version"])


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-header"),
        pytest.param({"Authorization": "Bearer wrong"}, id="wrong-token"),
        pytest.param({"Authorization": "s3cret"}, id="no-bearer"),
        pytest.param({"Authorization": "Basic s3cret"}, id="other-scheme"),
    ],
)
def test_with_a_token_set_unauthorised_feedback_gets_401_and_writes_nothing(
    make_client: Callable[..., TestClient], store: SQLiteStore, headers: dict[str, str]
) -> None:
    client = make_client(MONITOR_FEEDBACK_TOKEN="s3cret")
    ids = [p["prediction_id"] for p in _predict(client, _instances(2))]  # no token needed here
    before = store.sum_aggregates(MODEL, _version(client), since_bucket=0)

    refused = _feedback(client, [(pid, "fraud") for pid in ids], headers=headers)

    assert refused.status_code == 401
    assert refused.json() == {"error": UNAUTHORIZED_MESSAGE}
    assert refused.headers["www-authenticate"] == "Bearer"
    assert all(r.feedback is None for r in store.get_predictions(MODEL, ids).values())
    assert store.sum_aggregates(MODEL, _version(client), since_bucket=0) == before
    accepted = _feedback(
        client, [(pid, "fraud") for pid in ids], headers={"Authorization": "Bearer s3cret"}
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["counts"] == _counts(matched=2)


def test_with_a_token_set_the_token_is_checked_before_the_body(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(MONITOR_FEEDBACK_TOKEN="s3cret")

    refused = client.post(
        "/feedback", content=b"{not json", headers={"content-type": "application/json"}
    )

    assert refused.status_code == 401
    assert refused.json() == {"error": UNAUTHORIZED_MESSAGE}


# --- GET /monitor -------------------------------------------------------------------------------


def test_monitor_snapshot_shape(client: TestClient, trained_home: Path) -> None:
    empty = client.get("/monitor")
    assert empty.status_code == 200
    body = empty.json()

    assert set(body) == {"model", "stored_predictions", "windows"}
    assert body["model"] == {
        "name": MODEL,
        "version": _stored_model(trained_home, MODEL)[1].version,
        "task": "binary",
    }
    assert body["stored_predictions"] == 0  # every test starts on its own store
    assert list(body["windows"]) == ["5m", "1h", "24h"]
    for window in body["windows"].values():
        assert {"n_predictions", "n_labels", "quality"} <= set(window)
        assert (window["n_predictions"], window["n_labels"]) == (0, 0)
        assert window["quality"]["accuracy"] == {
            "value": None,
            "n": 0,
            "lower": None,
            "upper": None,
        }

    _predict(client, _instances(3))
    after = client.get("/monitor").json()
    assert after["stored_predictions"] == 3
    assert [w["n_predictions"] for w in after["windows"].values()] == [3, 3, 3]


# --- quality through the API equals scikit-learn ------------------------------------------------


def _close(actual: float | None, expected: float) -> bool:
    """Equal to 1e-9, where sklearn's NaN (undefined) must be reported as None."""
    if math.isnan(expected):
        return actual is None
    return actual is not None and abs(actual - expected) <= 1e-9


def _assert_classifier_quality(out: dict[str, Any], classes: list[str], task: str) -> None:
    y = out["labels"]
    predictions = out["predictions"]
    y_pred = [p["label"] for p in predictions]
    proba = np.array([[p["scores"][c] for c in classes] for p in predictions])
    n = len(y)
    assert out["feedback_counts"] == _counts(matched=n)
    window = out["snapshot"]["windows"]["5m"]
    assert (window["n_predictions"], window["n_labels"]) == (n, n)
    quality = window["quality"]

    assert _close(quality["accuracy"]["value"], accuracy_score(y, y_pred))
    assert quality["accuracy"]["n"] == n
    assert quality["confusion_matrix"] == {
        "classes": classes,
        "counts": confusion_matrix(y, y_pred, labels=classes).tolist(),
    }
    per_class = precision_recall_fscore_support(y, y_pred, labels=classes, zero_division=np.nan)
    for index, key in enumerate(("precision", "recall", "f1")):
        for cls, expected in zip(classes, per_class[index], strict=True):
            assert _close(quality[key]["per_class"][cls]["value"], expected), (key, cls)
        for average in ("macro", "micro", "weighted"):
            expected = precision_recall_fscore_support(
                y, y_pred, labels=classes, average=average, zero_division=np.nan
            )[index]
            assert _close(quality[key][average]["value"], expected), (key, average)

    ordered = sorted(classes)  # sklearn's column order for string labels
    proba_sorted = proba[:, [classes.index(c) for c in ordered]]
    assert _close(quality["log_loss"]["value"], log_loss(y, proba_sorted, labels=ordered))
    if task == "binary":
        brier = brier_score_loss(y, proba[:, 1], pos_label=classes[1])
        auc = roc_auc_score([t == classes[1] for t in y], proba[:, 1])
    else:
        brier = brier_score_loss(y, proba_sorted, labels=ordered)
        auc = roc_auc_score(y, proba_sorted, multi_class="ovr", labels=ordered)
    assert _close(quality["brier_score"]["value"], brier)
    roc = quality["roc_auc"]
    assert roc["n"] == n
    assert abs(roc["value"] - auc) <= roc["max_error"] + 1e-12
    assert roc["max_error"] < 0.01  # the bound is tight enough to mean something


def test_binary_quality_through_the_api_equals_sklearn(client: TestClient) -> None:
    out = roundtrip(client, model=MODEL, n=600, seed=2024)

    assert {p["label"] for p in out["predictions"]} == set(CLASSES)  # both classes predicted
    _assert_classifier_quality(out, CLASSES, "binary")


def _roundtrip_in_child(trained_home: Path, tmp_path: Path, model: str, n: int) -> dict[str, Any]:
    """A child process imports ``service.service`` serving ``model`` (chosen at import)."""
    result = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("service_roundtrip.py")), model, str(n), "7"],
        cwd=REPO,
        env={**service_env(trained_home, tmp_path, model=model), "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def test_multiclass_quality_through_the_api_equals_sklearn(
    trained_home: Path, tmp_path: Path
) -> None:
    out = _roundtrip_in_child(trained_home, tmp_path, "iris-classifier", 300)

    assert out["snapshot"]["model"]["task"] == "multiclass"
    _assert_classifier_quality(out, ["setosa", "versicolor", "virginica"], "multiclass")


def test_regression_quality_through_the_api_equals_sklearn(
    trained_home: Path, tmp_path: Path
) -> None:
    out = _roundtrip_in_child(trained_home, tmp_path, "diabetes-regressor", 300)

    y = out["labels"]
    predictions = out["predictions"]
    assert all(p["label"] is None and p["scores"] is None for p in predictions)
    values = [p["value"] for p in predictions]
    assert out["feedback_counts"] == _counts(matched=300)
    window = out["snapshot"]["windows"]["5m"]
    assert (window["n_predictions"], window["n_labels"]) == (300, 300)
    quality = window["quality"]
    for key, reference in (
        ("mae", mean_absolute_error),
        ("rmse", root_mean_squared_error),
        ("mape", mean_absolute_percentage_error),
        ("r2", r2_score),
    ):
        assert quality[key]["value"] == pytest.approx(reference(y, values), rel=1e-9), key
        assert quality[key]["n"] == 300


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
