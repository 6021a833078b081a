"""Checks of our own for ``schemathesis run``, loaded with ``SCHEMATHESIS_HOOKS=openapi_checks``.

schemathesis's checks (``--checks all``) hold the answers to the document; these add
what the document cannot say:

- an error answer is ``{"error": "<text>"}``, and on ``/predict`` and ``/feedback`` the
  text names the field (``<field>: <what was expected>``) unless it is BentoML's schema
  check, whose ``detail`` lists each problem with its ``loc``;
- whatever a request stored, ``GET /monitor`` still answers with strict JSON (a NaN
  in a snapshot would be a 500 for every reader after it).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import schemathesis

ERROR_STATUSES = frozenset({400, 401, 409, 413, 415, 503})
"""The error answers the document declares with its ``ErrorBody``."""
APIS = ("/predict", "/feedback")


@schemathesis.check
def error_names_the_problem(ctx: Any, response: Any, case: Any) -> bool | None:
    """A declared error answer is an ``ErrorBody`` whose text says what was wrong."""
    if response.status_code not in ERROR_STATUSES:
        return None
    body = json.loads(response.content)
    assert isinstance(body, dict), f"an error body is an object, got {body!r}"
    text = body.get("error")
    assert isinstance(text, str) and text, f"no error text in {body!r}"
    if "detail" in body:  # BentoML's schema check: each problem with where it is
        assert body["detail"], body
        for problem in body["detail"]:
            assert {"loc", "msg", "type"} <= problem.keys(), body
        return None
    if case.operation.path in APIS:
        field, _, expected = text.partition(": ")
        assert field and expected, f"the error text names no field: {text!r}"
    return None


def _reject_constant(name: str) -> None:
    raise AssertionError(f"/monitor sent {name}, which is not JSON")


@schemathesis.check
def monitor_still_answers(ctx: Any, response: Any, case: Any) -> bool | None:
    """After a request to an API, ``GET /monitor`` is a 200 with strict JSON."""
    if case.operation.path not in APIS:
        return None
    scheme, netloc, *_ = urlsplit(response.request.url)
    snapshot = httpx.get(urlunsplit((scheme, netloc, "/monitor", "", "")), timeout=30)
    assert snapshot.status_code == 200, snapshot.text
    json.loads(snapshot.text, parse_constant=_reject_constant)
    return None
