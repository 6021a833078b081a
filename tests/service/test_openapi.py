"""``/docs.json`` says what the service does, and the service answers what it says.

Each test pins one thing schemathesis found wrong before (see
``tests/e2e/test_openapi_contract.py``): routes missing from the document, bounds it
did not state, error shapes it declared wrongly, a 500 for a malformed content type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from api_helpers import MODEL, instances_of, predict_ok
from starlette.testclient import TestClient

from instrumentation import SQLiteStore
from service.bentoml_internals import BentoMLInternalsChanged
from service.content_type import UNSUPPORTED_MESSAGE
from service.openapi import complete_document
from service.schemas import ErrorBody, MonitorHistory, MonitorSnapshot
from service.ui import TIME_PARAMETER

ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_every_route_the_service_adds_is_in_the_document(client: TestClient) -> None:
    document = client.get("/docs.json").json()
    paths = document["paths"]

    monitor = paths["/monitor"]["get"]
    assert [p["name"] for p in monitor["parameters"]] == ["compare"]
    assert monitor["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/MonitorSnapshot"
    }
    history = paths["/monitor/history"]["get"]
    assert [p["name"] for p in history["parameters"]] == ["window", "step", "from", "to"]
    assert history["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/MonitorHistory"
    }
    assert list(paths["/ui"]["get"]["responses"]["200"]["content"]) == ["text/html"]
    for path in ("/monitor", "/monitor/history"):
        responses = paths[path]["get"]["responses"]
        assert sorted(responses) == ["200", "400", "401", "503"]
        assert responses["503"]["headers"]["Retry-After"]["schema"] == {"type": "integer"}
    schemas = document["components"]["schemas"]
    for ref in _refs(document):
        assert ref.rsplit("/", 1)[1] in schemas, ref


def test_the_apis_declare_their_bounds_and_every_error_they_answer(
    make_client: Callable[..., TestClient],
) -> None:
    document = make_client(MONITOR_MAX_BATCH="5").get("/docs.json").json()

    for path, field, statuses in [
        ("/predict", "instances", ["200", "400", "409", "413", "415", "500"]),
        ("/feedback", "labels", ["200", "400", "401", "413", "415", "500", "503"]),
    ]:
        operation = document["paths"][path]["post"]
        body = operation["requestBody"]
        assert body["required"] is True
        listed = body["content"]["application/json"]["schema"]["properties"][field]
        assert (listed["minItems"], listed["maxItems"]) == (1, 5)
        assert sorted(operation["responses"]) == statuses
        for status in statuses[1:]:
            assert operation["responses"][status]["content"]["application/json"]["schema"] == (
                ERROR_REF
            )
    assert not {"InvalidArgument", "NotFound", "InternalServerError"} & set(
        document["components"]["schemas"]
    )


def test_groups_may_not_take_the_names_of_the_missing_and_overflow_buckets(
    client: TestClient,
) -> None:
    schemas = client.get("/docs.json").json()["components"]["schemas"]
    region = schemas["Instance"]["properties"]["groups"]["properties"]["region"]

    assert region["anyOf"][0]["not"] == {"enum": ["__missing__", "__other__"]}
    features = schemas["Instance"]["properties"]["features"]["properties"]
    assert (features["amount"]["minimum"], features["amount"]["maximum"]) == (0.0, 1e100)


@pytest.mark.parametrize("path", ["/predict", "/feedback"])
@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data",  # no boundary: was a 500 from BentoML's form parser
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",
        "text/plain",
    ],
)
def test_a_body_that_is_not_json_gets_a_415_before_it_is_read(
    client: TestClient, store: SQLiteStore, path: str, content_type: str
) -> None:
    response = client.post(
        path, content=b'{"instances": []}', headers={"content-type": content_type}
    )

    assert response.status_code == 415
    assert response.json() == {"error": UNSUPPORTED_MESSAGE.format(given=content_type)}
    assert response.headers["accept-post"] == "application/json"
    assert store.count_predictions(MODEL) == 0


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "Application/JSON"])
def test_json_with_parameters_or_in_capitals_is_json(client: TestClient, content_type: str) -> None:
    response = client.post(
        "/predict",
        json={"instances": instances_of(1)},
        headers={"content-type": content_type},
    )

    assert response.status_code == 200, response.text


def test_our_refusals_are_error_objects_not_lists(client: TestClient) -> None:
    (taken,) = predict_ok(client, [{**instances_of(1)[0], "id": "tx-1"}])
    empty = client.post("/predict", json={"instances": []})
    reused = client.post("/predict", json={"instances": [{**instances_of(1)[0], "id": "tx-1"}]})
    bad_feature = client.post(
        "/predict", json={"instances": [{**instances_of(1)[0], "features": {}}]}
    )

    assert (empty.status_code, empty.json()) == (
        400,
        {"error": "instances: expected at least 1 instance"},
    )
    assert reused.status_code == 409
    assert reused.json()["error"].startswith("instances[0].id: ")
    assert bad_feature.status_code == 400
    assert bad_feature.json()["error"].startswith("instances[0].features.")
    for response in (empty, reused, bad_feature):
        ErrorBody.model_validate(response.json())
    assert taken["prediction_id"] == "tx-1"


def test_the_figures_match_their_declared_schemas(client: TestClient) -> None:
    predict_ok(client, instances_of(10))

    MonitorSnapshot.model_validate(client.get("/monitor").json())
    MonitorHistory.model_validate(client.get("/monitor/history").json())


@pytest.mark.parametrize(
    ("name", "value"),
    [("from", "1e300"), ("to", "-1e300"), ("from", "nan"), ("to", ""), ("from", "2026-12-01")],
)
def test_history_times_outside_the_document_are_a_400_naming_the_parameter(
    client: TestClient, name: str, value: str
) -> None:
    response = client.get("/monitor/history", params={name: value})

    assert response.status_code == 400  # 1e300 was a 500, nan a message naming nothing
    assert response.json() == {"error": TIME_PARAMETER.format(name=name, value=value)}


def test_a_document_without_the_apis_fails_loudly() -> None:
    with pytest.raises(BentoMLInternalsChanged, match=r"no POST /predict .* service/openapi.py"):
        complete_document({"paths": {}}, max_batch=5)
