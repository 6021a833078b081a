"""Privacy by default: no raw feature value and no group value leaves in telemetry.

A real 2-worker server exports every span (sample rate 1) and metric (500 ms) to an
in-test OTLP receiver. The traffic carries values that cannot appear by chance: a
category and group values that are unique tokens, numbers with unusual digits. After
predictions and labels have been exported, every field of every export request is
walked — span names, attributes, events, links, status, resource and scope
attributes, metric names, descriptions, data point and exemplar attributes — and
none may hold one of those values.

The one documented exception: ``ml.group`` on the ``ml.fairness.*`` gauges, where
group values appear (capped by ``MONITOR_MAX_GROUP_VALUES``). The test also checks
that they do appear there, so the walk is known to reach what the server sent.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric

from harness.otlp import OTLPReceiver, attributes, wait_for

from .conftest import StartServer
from .traffic import ok_json, otlp_env, post_concurrently, predict_body, trace_id

pytestmark = pytest.mark.e2e

ROWS = 48
BATCH = 4
EXPORT_WAIT = 30.0

# Values nothing else in an export could contain.
CATEGORY = "catzq7731"
NUMBERS = {
    "amount": 4817.293571,
    "hour": 17.918273,
    "account_age_days": 9283.746151,
    "transactions_24h": 61.80427,
}
OUT_OF_RANGE_HOUR = 99.715263
"""Sent once, refused (a 400 naming the field): an error path must not leak either."""
GROUPS = {"region": ("grpq7f3kn", "grpq7f3ks"), "age_band": ("grpx9w2my", "grpx9w2mo")}
FEATURE_NEEDLES = (
    CATEGORY,
    *(f"{v:.6f}"[:7] for v in (*NUMBERS.values(), OUT_OF_RANGE_HOUR)),  # e.g. "4817.29"
)
"""Substrings of a feature value in any text form: float32 and rounded reprs included."""
GROUP_NEEDLES = ("grpq7f3k", "grpx9w2m")
ALLOWED_GROUP_KEY = "ml.group"
ALLOWED_GROUP_METRICS = "ml.fairness."


@dataclass(frozen=True)
class Leaf:
    """One scalar somewhere in an export request, with where it sits."""

    path: str
    metric: str | None  # the enclosing metric's name
    key: str | None  # the enclosing attribute's key
    value: Any


def leaves(message: Message, path: str = "", metric: str | None = None) -> Iterator[Leaf]:
    """Every string and number in ``message``, however deeply nested."""
    yield from _leaves(message, path, metric, None)


def _leaves(message: Message, path: str, metric: str | None, key: str | None) -> Iterator[Leaf]:
    if isinstance(message, Metric):
        metric = message.name
    if isinstance(message, KeyValue):
        key = message.key
    for field, value in message.ListFields():
        values = value if field.is_repeated else [value]
        for index, item in enumerate(values):
            where = f"{path}.{field.name}" + (f"[{index}]" if field.is_repeated else "")
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                yield from _leaves(item, where, metric, key)
            elif field.type != FieldDescriptor.TYPE_BYTES:  # ids and hashes, not text
                yield Leaf(where, metric, key, item)


def leaks(leaf: Leaf) -> str | None:
    """What ``leaf`` gives away, or None."""
    if isinstance(leaf.value, str):
        text = leaf.value
        for needle in FEATURE_NEEDLES:
            if needle in text:
                return f"feature value {needle!r}"
        for needle in GROUP_NEEDLES:
            allowed = leaf.key == ALLOWED_GROUP_KEY and (leaf.metric or "").startswith(
                ALLOWED_GROUP_METRICS
            )
            if needle in text and not allowed:
                return f"group value {needle!r}"
    elif isinstance(leaf.value, float) and leaf.key is not None:  # an attribute's number
        for raw in (*NUMBERS.values(), OUT_OF_RANGE_HOUR):
            if math.isclose(leaf.value, raw, rel_tol=1e-6):
                return f"feature value {raw}"
    return None


def distinctive_instances() -> list[dict[str, Any]]:
    """Valid rows whose every feature and group value is one of the tokens above."""
    instances = predict_body(ROWS, seed=5)["instances"]
    for index, instance in enumerate(instances):
        instance["features"].update(NUMBERS, merchant_category=CATEGORY)
        instance["groups"] = {name: pair[index % 2] for name, pair in GROUPS.items()}
    return instances


def everything_received(receiver: OTLPReceiver) -> list[Message]:
    # The raw export requests: nothing filtered by signal, name or shape.
    with receiver._lock:
        return [*receiver._traces, *receiver._metrics]


def group_gauge_values(receiver: OTLPReceiver) -> set[str]:
    found = set()
    for request in everything_received(receiver):
        for leaf in leaves(request):
            if leaf.key == ALLOWED_GROUP_KEY and isinstance(leaf.value, str):
                found.add(leaf.value)
    return found


def test_no_feature_or_group_value_is_exported(
    start_server: StartServer, receiver: OTLPReceiver
) -> None:
    server = start_server(
        {
            **otlp_env(receiver, interval_ms=500),
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "MONITOR_MIN_GROUP_SAMPLES": "1",
        }
    )
    instances = distinctive_instances()
    bodies = [{"instances": instances[i : i + BATCH]} for i in range(0, ROWS, BATCH)]
    predicted = post_concurrently(server.base_url, "/predict", bodies)
    ids = [p["prediction_id"] for r in predicted for p in ok_json(r)["predictions"]]
    labels = [
        {"prediction_id": pid, "label": "fraud" if i % 3 == 0 else "legit"}
        for i, pid in enumerate(ids)
    ]
    labelled = post_concurrently(
        server.base_url,
        "/feedback",
        [{"labels": labels[i : i + BATCH]} for i in range(0, ROWS, BATCH)],
    )
    assert all(ok_json(r)["counts"]["matched"] == BATCH for r in labelled)
    bad = dict(instances[0], features={**instances[0]["features"], "hour": OUT_OF_RANGE_HOUR})
    with server.client() as client:
        refused = client.post("/predict", json={"instances": [bad]})
    assert refused.status_code == 400, refused.text

    # Everything the traffic causes has been exported: each request's spans (feedback
    # spans with their links), and the fairness gauges with both groups of each attribute.
    traces = {trace_id(r) for r in (*predicted, *labelled)}

    def exported() -> bool:
        spans = receiver.spans()
        names = {s.trace_id.hex(): set() for _, s in spans}
        for _, span in spans:
            names[span.trace_id.hex()].add(span.name)
        linked = sum(len(s.links) for _, s in spans if s.name == "ml.feedback")
        wanted = {value for pair in GROUPS.values() for value in pair}
        return (
            traces <= names.keys()
            and all({"ml.predict", "ml.feedback"} & names[t] for t in traces)
            and linked >= ROWS
            and wanted <= group_gauge_values(receiver)
        )

    wait_for(exported, timeout=EXPORT_WAIT, message="spans, links and fairness gauges")

    requests = everything_received(receiver)
    found = [
        f"{leaf.path} (metric {leaf.metric}, attribute {leaf.key}) = {leaf.value!r}: {what}"
        for request in requests
        for leaf in leaves(request, type(request).__name__)
        if (what := leaks(leaf)) is not None
    ]
    assert not found, "\n".join(found[:20])
    # The walk saw the attributes it judged: span, link and resource attributes included.
    seen = {leaf.key for request in requests for leaf in leaves(request)}
    assert {"ml.prediction.ids", "ml.feedback.matched_ids", "service.instance.id"} <= seen
    assert any(attributes(link.attributes) for _, s in receiver.spans() for link in s.links)
