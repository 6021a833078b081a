"""``/docs.json`` as a contract: BentoML's OpenAPI document, completed with what it cannot know.

BentoML documents its own APIs (``POST /predict``, ``POST /feedback``) from their
pydantic models, but not the routes of the Starlette app mounted beside them, not
the bounds the service checks itself, and not the errors it really answers with
(it declares ``detail`` a string and its 400, 404 and 500 for every API).
:func:`complete_document` adds:

- ``GET /monitor``, ``GET /monitor/history`` and ``GET /ui``, with their parameters
  and response schemas (:mod:`service.schemas`);
- a required JSON body on the APIs, ``minItems: 1`` and ``maxItems: MONITOR_MAX_BATCH``
  on ``instances`` and ``labels`` (read from the running service, per request);
- every error the service answers, with the one error shape it uses (``ErrorBody``):
  400, 401 (a token set), 409 (a reused id), 413 (``MONITOR_MAX_BODY_BYTES``), 415
  (not JSON), 503 (the store is down, with ``Retry-After``).

:class:`OpenAPIMiddleware` serves the completed document in place of BentoML's. It
reads BentoML's answer as any client would, so nothing private is touched; if the
document stops naming the APIs where OpenAPI puts them, completing it raises
:class:`service.bentoml_internals.BentoMLInternalsChanged`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Final

from pydantic import BaseModel

from service.bentoml_internals import BentoMLInternalsChanged
from service.content_type import JSON, JSON_APIS
from service.schemas import ErrorBody, MonitorHistory, MonitorSnapshot
from service.ui import DURATION_PATTERN, EPOCH_RANGE, RFC3339_PATTERN

DOCS_PATH: Final = "/docs.json"
REF: Final = "#/components/schemas/{model}"
TAG: Final = {"name": "Monitoring", "description": "The figures, their history and the page."}
LISTS: Final = {"/predict": "instances", "/feedback": "labels"}
"""Each API's list field, bounded by ``MONITOR_MAX_BATCH``."""

COMPARE_PATTERN: Final = r"^[^,]*[^,\s][^,]*,[^,]*[^,\s][^,]*$"
TIME_SCHEMA: Final = {
    "anyOf": [
        {"type": "number", "minimum": EPOCH_RANGE[0], "maximum": EPOCH_RANGE[1]},
        {"type": "string", "format": "date-time", "pattern": RFC3339_PATTERN},
    ]
}

ERRORS: Final = {
    HTTPStatus.BAD_REQUEST: "The body or a parameter is not what this document says; "
    "the error names the field.",
    HTTPStatus.UNAUTHORIZED: "A token is set (MONITOR_FEEDBACK_TOKEN for /feedback, "
    "MONITOR_READ_TOKEN for the figures) and 'Authorization: Bearer <token>' did not carry it.",
    HTTPStatus.CONFLICT: "A client id is already a prediction id, or repeats another "
    "instance's id in the same request; nothing of the request was stored.",
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: "The body is larger than MONITOR_MAX_BODY_BYTES; "
    "it was not read.",
    HTTPStatus.UNSUPPORTED_MEDIA_TYPE: "Content-Type is not application/json.",
    HTTPStatus.INTERNAL_SERVER_ERROR: "A fault of the service; the server log has it.",
    HTTPStatus.SERVICE_UNAVAILABLE: "The prediction store cannot answer now; retry after "
    "Retry-After seconds.",
}
API_ERRORS: Final = {
    "/predict": (400, 409, 413, 415, 500),
    "/feedback": (400, 401, 413, 415, 500, 503),
}


def complete_document(document: dict[str, Any], *, max_batch: int) -> dict[str, Any]:
    """BentoML's OpenAPI ``document`` with the monitoring routes, bounds and errors added."""
    document = copy.deepcopy(document)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for model in (ErrorBody, MonitorSnapshot, MonitorHistory):
        schemas.update(_components(model))
    for name in ("InvalidArgument", "NotFound", "InternalServerError"):
        schemas.pop(name, None)  # BentoML's error shapes, replaced by ErrorBody
    paths = document.setdefault("paths", {})
    for path in JSON_APIS:
        operation = _api_operation(paths, path)
        body = operation["requestBody"]
        body["required"] = True
        listed = _request_schema(body, schemas)["properties"][LISTS[path]]
        listed.update(minItems=1, maxItems=max_batch)
        listed["description"] = (
            f"{listed.get('description', '')} At least 1, at most {max_batch} (MONITOR_MAX_BATCH)."
        ).strip()
        operation["responses"] = {
            "200": operation["responses"]["200"],
            **_errors(*API_ERRORS[path]),
        }
    paths.update(_monitoring_paths())
    tags = document.setdefault("tags", [])
    if TAG not in tags:
        tags.append(TAG)
    return document


def _components(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template=REF, by_alias=True)
    return {**schema.pop("$defs", {}), model.__name__: schema}


def _api_operation(paths: dict[str, Any], path: str) -> dict[str, Any]:
    try:
        operation: dict[str, Any] = paths[path]["post"]
        operation["requestBody"]["content"][JSON]["schema"]  # noqa: B018  # present, or raise
        operation["responses"]["200"]  # noqa: B018
    except (KeyError, TypeError) as exc:
        raise BentoMLInternalsChanged(
            f"BentoML's OpenAPI document has no POST {path} with a JSON body and a 200 "
            "(paths[...].post.requestBody.content); update service/openapi.py for this "
            "BentoML version"
        ) from exc
    return operation


def _request_schema(body: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    """The body's schema object, following one ``$ref`` into the components."""
    schema: dict[str, Any] = body["content"][JSON]["schema"]
    ref = schema.get("$ref")
    return schemas[ref.rsplit("/", 1)[1]] if ref else schema


def _errors(*statuses: int) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    for status in statuses:
        answer: dict[str, Any] = {
            "description": ERRORS[HTTPStatus(status)],
            "content": {JSON: {"schema": {"$ref": REF.format(model=ErrorBody.__name__)}}},
        }
        if status == HTTPStatus.SERVICE_UNAVAILABLE:
            answer["headers"] = {
                "Retry-After": {"description": "Seconds", "schema": {"type": "integer"}}
            }
        answers[str(status)] = answer
    return answers


def _ok(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {JSON: {"schema": {"$ref": REF.format(model=model.__name__)}}},
    }


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _monitoring_paths() -> dict[str, Any]:
    duration = {"type": "string", "pattern": DURATION_PATTERN}
    return {
        "/monitor": _get(
            "monitor",
            "The figures now",
            "Quality, fairness, drift and estimated performance per window, computed from the "
            "store at call time. With MONITOR_READ_TOKEN set, send "
            "'Authorization: Bearer <token>'.",
            {"200": _ok(MonitorSnapshot, "The snapshot."), **_errors(400, 401, 503)},
            _query(
                "compare",
                {"type": "string", "pattern": COMPARE_PATTERN},
                "'version,baseline': adds a comparison of two model versions.",
            ),
        ),
        "/monitor/history": _get(
            "monitor_history",
            "The figures over time",
            "For each model version and figure, the window ending at each step. Rules between "
            "the parameters, answered with a 400 naming them: step and window are whole buckets "
            "(60 s), 'from' is not after 'to', the range holds at most 5000 steps.",
            {"200": _ok(MonitorHistory, "The history."), **_errors(400, 401, 503)},
            _query("window", duration, "Default: the first of MONITOR_WINDOWS."),
            _query("step", duration, "Default: the fewest whole buckets giving ≤ 240."),
            _query("from", TIME_SCHEMA, "Epoch seconds or ISO-8601; default to - window."),
            _query("to", TIME_SCHEMA, "Epoch seconds or ISO-8601; default now."),
        ),
        "/ui": _get(
            "ui",
            "The monitoring page",
            "A live page drawing /monitor and /monitor/history; it holds no figures and asks "
            "for the read token when one is set.",
            {
                "200": {
                    "description": "The page.",
                    "content": {"text/html": {"schema": {"type": "string"}}},
                }
            },
        ),
    }


def _get(
    operation: str,
    summary: str,
    description: str,
    responses: dict[str, Any],
    *parameters: dict[str, Any],
) -> dict[str, Any]:
    """A ``GET`` operation of the monitoring routes."""
    get: dict[str, Any] = {
        "tags": [TAG["name"]],
        "operationId": operation,
        "summary": summary,
        "description": description,
    }
    if parameters:
        get["parameters"] = list(parameters)
    return {"get": {**get, "responses": responses}}


class OpenAPIMiddleware:
    """Serves ``GET /docs.json`` completed by :func:`complete_document`.

    ``max_batch`` is called per request, so the document states the running
    service's ``MONITOR_MAX_BATCH``. Other requests pass through untouched.
    """

    def __init__(self, app: Callable[..., Any], *, max_batch: Callable[[], int]) -> None:
        self.app = app
        self.max_batch = max_batch

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Hold BentoML's answer to ``/docs.json``, complete it, then send it."""
        if scope["type"] != "http" or scope["path"] != DOCS_PATH or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def hold(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, hold)
        body = b"".join(chunks)
        if start.get("status") == HTTPStatus.OK:
            document = complete_document(json.loads(body), max_batch=self.max_batch())
            body = json.dumps(document).encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        await send(
            {
                **start,
                "headers": [*headers, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
