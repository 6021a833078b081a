"""``POST /feedback`` in process: a status per item, TTL, batch caps, the bearer token."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from api_helpers import (
    MODEL,
    error_text,
    instances_of,
    predict_ok,
    send_feedback,
    served_version,
    status_counts,
)
from starlette.testclient import TestClient

from instrumentation import SQLiteStore
from service.auth import UNAUTHORIZED_MESSAGE


def test_feedback_reports_a_status_per_item(client: TestClient, store: SQLiteStore) -> None:
    ids = [p["prediction_id"] for p in predict_ok(client, instances_of(3))]
    first = send_feedback(client, [(ids[0], "fraud")])
    assert first.status_code == 200, first.text
    assert first.json() == {
        "results": [{"prediction_id": ids[0], "status": "matched"}],
        "counts": status_counts(matched=1),
    }

    response = send_feedback(
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
        "counts": status_counts(duplicate=1, conflict=1, unknown=1, invalid=4, matched=1),
    }
    stored = store.get_predictions(MODEL, ids)
    assert [stored[pid].feedback for pid in ids] == ["fraud", None, "legit"]
    assert client.get("/monitor").json()["windows"]["5m"]["n_labels"] == 2


def test_a_label_after_the_ttl_is_expired(
    make_client: Callable[..., TestClient], store: SQLiteStore
) -> None:
    client = make_client(MONITOR_PREDICTION_TTL="1s")
    (prediction,) = predict_ok(client, instances_of(1))
    time.sleep(1.05)

    response = send_feedback(client, [(prediction["prediction_id"], "fraud")])

    assert response.status_code == 200, response.text
    assert response.json()["counts"] == status_counts(expired=1)
    assert client.get("/monitor").json()["windows"]["5m"]["n_labels"] == 0


def test_oversized_and_empty_feedback_is_refused_whole(
    make_client: Callable[..., TestClient], store: SQLiteStore
) -> None:
    client = make_client(MONITOR_MAX_BATCH="5")
    ids = [p["prediction_id"] for p in predict_ok(client, instances_of(5))]
    before = store.sum_aggregates(MODEL, served_version(client), since_bucket=0)

    oversized = send_feedback(client, [(pid, "fraud") for pid in ids] + [("extra", "fraud")])
    empty = client.post("/feedback", json={"labels": []})

    assert oversized.status_code == 400
    assert error_text(oversized) == "labels: 6 given, at most 5 per request (MONITOR_MAX_BATCH)"
    assert empty.status_code == 400
    assert error_text(empty) == "labels: expected at least 1 label"
    assert all(r.feedback is None for r in store.get_predictions(MODEL, ids).values())
    assert store.sum_aggregates(MODEL, served_version(client), since_bucket=0) == before
    assert '["labels"]' not in before


def test_malformed_feedback_items_get_a_400_locating_the_field(client: TestClient) -> None:
    response = client.post(
        "/feedback", json={"labels": [{"prediction_id": "a", "label": "fraud", "extra": 1}]}
    )

    assert response.status_code == 400
    assert [(d["loc"], d["type"]) for d in response.json()["detail"]] == [
        (["labels", 0, "extra"], "extra_forbidden")
    ]


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
    ids = [p["prediction_id"] for p in predict_ok(client, instances_of(2))]  # no token needed here
    before = store.sum_aggregates(MODEL, served_version(client), since_bucket=0)

    refused = send_feedback(client, [(pid, "fraud") for pid in ids], headers=headers)

    assert refused.status_code == 401
    assert refused.json() == {"error": UNAUTHORIZED_MESSAGE}
    assert refused.headers["www-authenticate"] == "Bearer"
    assert all(r.feedback is None for r in store.get_predictions(MODEL, ids).values())
    assert store.sum_aggregates(MODEL, served_version(client), since_bucket=0) == before
    accepted = send_feedback(
        client, [(pid, "fraud") for pid in ids], headers={"Authorization": "Bearer s3cret"}
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["counts"] == status_counts(matched=2)


def test_with_a_token_set_the_token_is_checked_before_the_body(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(MONITOR_FEEDBACK_TOKEN="s3cret")

    refused = client.post(
        "/feedback", content=b"{not json", headers={"content-type": "application/json"}
    )

    assert refused.status_code == 401
    assert refused.json() == {"error": UNAUTHORIZED_MESSAGE}
