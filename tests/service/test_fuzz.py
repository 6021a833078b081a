"""Fuzzing every operation of the service's own ``/docs.json`` in process, with every check.

schemathesis turns the OpenAPI document the app serves (the fraud model's features,
ranges and group keys, the ``MONITOR_MAX_BATCH`` bounds, the monitoring routes) into
request strategies: *positive* requests follow the schema, *negative* ones break it
(wrong types, missing fields, bytes that are not JSON, no body at all). Every answer
passes all of schemathesis's checks (:data:`ALL_CHECKS`: no 5xx, only declared
statuses, bodies and headers as declared, schema-valid requests accepted and
schema-breaking ones refused) and ours:

- a 4xx whose body names the problem: BentoML's schema check (``{"error": "1
  validation error for …", "detail": [{"loc", "msg", "type"}, …]}``) or one of ours
  (``<field>: <what was expected>``, the field path starting at ``instances`` or
  ``labels``);
- a 200 for every schema-valid body, unless it breaks a rule the schema cannot say
  (:func:`expected_predict_refusal` lists them, with the field the error must name);
- ``GET /monitor`` still strict JSON after every fuzzed request, since what can break
  it is the data that request stored (a snapshot that is not strict JSON is a 500).

The coverage and examples phases need schemathesis's own runner:
``tests/e2e/test_openapi_contract.py`` runs ``schemathesis run`` with every phase against
a real server; this file is the fast, in-process part.

Each operation is one in-process service on its own store, fed every example in turn,
so state accumulates the way it does in production (ids already taken, labels already
given). Examples are bounded (:data:`MAX_EXAMPLES` per operation and mode) and so is
each example's time (:data:`DEADLINE_MS`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from api_helpers import CLASSES, error_text, instances_of, predict_ok
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import CHECKS
from schemathesis.config import SchemathesisConfig
from starlette.testclient import TestClient

REPO = Path(__file__).resolve().parents[2]
ALL_CHECKS = CHECKS.get_all()
"""Every check schemathesis has (``--checks all``); ``ignored_auth`` and the stateful ones
pass trivially here: the document declares no security scheme and no links."""
MONITORING = [
    ("/monitor", GenerationMode.POSITIVE),
    ("/monitor", GenerationMode.NEGATIVE),
    ("/monitor/history", GenerationMode.POSITIVE),
    ("/monitor/history", GenerationMode.NEGATIVE),
    ("/ui", GenerationMode.POSITIVE),  # no parameter to break
]

MAX_EXAMPLES = 100
"""Per operation and generation mode: ~4 s each in process, the whole file ~50 s."""
DEADLINE_MS = 2000
"""One request plus one snapshot; generous for two shared cores, tight for a hang."""
FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=DEADLINE_MS,
    database=None,  # no .hypothesis/ directory in the worktree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
SCHEMA_ERROR = "json_invalid"
"""pydantic's error type for a body that is not JSON (a lone UTF-16 surrogate included)."""


@pytest.fixture
def openapi(client: TestClient) -> Any:
    """The OpenAPI document this app serves, loaded into schemathesis with our settings."""
    config = SchemathesisConfig.from_path(REPO / "schemathesis.toml")
    return schemathesis.openapi.from_dict(client.get("/docs.json").json(), config=config)


def send(client: TestClient, case: Case) -> httpx.Response:
    """Send ``case`` through the in-process client, serialized as schemathesis would.

    JSON bodies are encoded with ``json.dumps`` (ASCII escapes, like ``requests``), so
    strings with lone surrogates reach the server as ``\\udXXX`` escapes instead of
    failing to encode in the client.
    """
    kwargs = case.as_transport_kwargs(base_url=str(client.base_url))
    content: bytes | None = kwargs.get("data")
    if "json" in kwargs:
        content = json.dumps(kwargs["json"]).encode()
    return client.request(
        kwargs["method"],
        kwargs["url"],
        headers=kwargs["headers"],
        content=content,
        params=kwargs.get("params"),
    )


def has_lone_surrogate(value: Any) -> bool:
    """Whether any string in ``value`` holds a UTF-16 surrogate (not valid in JSON text)."""
    if isinstance(value, str):
        return any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, dict):
        return any(has_lone_surrogate(k) or has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_lone_surrogate(v) for v in value)
    return False


def assert_names_the_problem(response: httpx.Response) -> None:
    """A 4xx body carries an error text that says which field and what was expected."""
    body = response.json()
    if isinstance(body, dict) and "detail" in body:  # BentoML's schema check
        assert body["error"].split(" ", 1)[1].startswith(("validation error", "validation errors"))
        assert body["detail"], response.text
        for detail in body["detail"]:
            assert {"loc", "msg", "type"} <= detail.keys(), response.text
            assert detail["msg"], response.text
        return
    text = error_text(response)
    field, _, expected = text.partition(": ")
    assert field.startswith(("instances", "labels")), text
    assert expected, text


def expected_predict_refusal(body: Any, taken: set[str]) -> tuple[int, str] | None:
    """The status and error prefix a schema-valid ``/predict`` body gets, or None for a 200.

    The rules the OpenAPI document cannot express, in the order the service checks them:
    ids unique within the request and not taken before (and JSON text, which a string
    holding a lone surrogate is not).
    """
    if has_lone_surrogate(body):
        return 400, SCHEMA_ERROR
    instances = body["instances"]
    first_seen: dict[str, int] = {}
    for index, instance in enumerate(instances):
        given_id = instance.get("id")
        if given_id in first_seen:
            return 409, f"instances[{index}].id: "
        if given_id is not None:
            first_seen[given_id] = index
    for index, instance in enumerate(instances):
        if instance.get("id") in taken:
            return 409, f"instances[{index}].id: "
    return None


def check_monitor(client: TestClient) -> None:
    """``GET /monitor`` still answers with strict JSON after whatever was just stored."""
    snapshot = client.get("/monitor")
    assert snapshot.status_code == 200, snapshot.text
    json.loads(snapshot.text, parse_constant=_reject_constant)


def _reject_constant(name: str) -> None:
    raise AssertionError(f"/monitor sent {name}, which is not JSON")


def check_answer(case: Case, response: httpx.Response) -> None:
    """The checks every fuzzed answer must pass, whatever the operation."""
    assert response.status_code < 500, f"{response.status_code}: {response.text}"
    case.validate_response(response, checks=ALL_CHECKS)
    if response.status_code != 200:
        assert 400 <= response.status_code < 500, response.status_code
        assert_names_the_problem(response)


@pytest.mark.parametrize("mode", MODES, ids=str)
def test_fuzzed_predictions_get_a_200_or_a_4xx_naming_the_field(
    client: TestClient,
    openapi: Any,
    mode: GenerationMode,
) -> None:
    taken: set[str] = set()
    counts = {"200": 0, "4xx": 0}

    @FUZZ_SETTINGS
    @given(case=openapi["/predict"]["POST"].as_strategy(generation_mode=mode))
    def fuzz(case: Case) -> None:
        response = send(client, case)
        check_answer(case, response)
        counts["200" if response.status_code == 200 else "4xx"] += 1
        if mode is GenerationMode.POSITIVE:
            expected = expected_predict_refusal(case.body, taken)
            if expected is None:
                assert response.status_code == 200, response.text
            else:
                status, prefix = expected
                assert response.status_code == status, response.text
                if prefix == SCHEMA_ERROR:
                    assert [d["type"] for d in response.json()["detail"]] == [prefix]
                else:
                    assert error_text(response).startswith(prefix), response.text
        if response.status_code == 200:
            predictions = response.json()["predictions"]
            assert len(predictions) == len(case.body["instances"])
            for instance, prediction in zip(case.body["instances"], predictions, strict=True):
                if instance.get("id") is not None:
                    assert prediction["prediction_id"] == instance["id"]
                taken.add(prediction["prediction_id"])
        check_monitor(client)

    fuzz()
    if mode is GenerationMode.POSITIVE:
        assert counts["200"] > 0, "no schema-valid body was accepted: the fuzzer proved nothing"


@pytest.mark.parametrize("mode", MODES, ids=str)
def test_fuzzed_feedback_gets_a_status_per_label_or_a_4xx_naming_the_field(
    client: TestClient,
    openapi: Any,
    mode: GenerationMode,
) -> None:
    # Real predictions, so that fuzzed labels also reach matched / duplicate / conflict /
    # invalid, not only "unknown" for the random ids the schema yields.
    known = [p["prediction_id"] for p in predict_ok(client, instances_of(20, seed=7))]

    @FUZZ_SETTINGS
    @given(
        case=openapi["/feedback"]["POST"].as_strategy(generation_mode=mode),
        aim=st.data(),
    )
    def fuzz(case: Case, aim: st.DataObject) -> None:
        labels = case.body.get("labels") if isinstance(case.body, dict) else None
        if mode is GenerationMode.POSITIVE and labels:
            for item in labels:
                if aim.draw(st.booleans(), label="known id"):
                    item["prediction_id"] = aim.draw(st.sampled_from(known), label="id")
                if aim.draw(st.booleans(), label="a class"):
                    item["label"] = aim.draw(st.sampled_from(CLASSES), label="label")
        response = send(client, case)
        check_answer(case, response)
        if mode is GenerationMode.POSITIVE:
            if has_lone_surrogate(case.body):
                assert response.status_code == 400, response.text
            else:
                assert response.status_code == 200, response.text
                answer = response.json()
                assert [r["prediction_id"] for r in answer["results"]] == [
                    item["prediction_id"] for item in labels
                ]
                assert sum(answer["counts"].values()) == len(labels)
        check_monitor(client)

    fuzz()


@pytest.mark.parametrize(("path", "mode"), MONITORING, ids=str)
def test_fuzzed_monitoring_requests_get_what_the_document_says(
    client: TestClient, openapi: Any, path: str, mode: GenerationMode
) -> None:
    predict_ok(client, instances_of(20, seed=11))  # figures to show

    @FUZZ_SETTINGS
    @given(case=openapi[path]["GET"].as_strategy(generation_mode=mode))
    def fuzz(case: Case) -> None:
        response = send(client, case)
        assert response.status_code < 500, f"{response.status_code}: {response.text}"
        case.validate_response(response, checks=ALL_CHECKS)
        if response.status_code != 200:
            assert error_text(response), response.text

    fuzz()
