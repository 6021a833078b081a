"""Traces in a real trace store: a 2-worker server exports to Arize Phoenix, read back over REST.

Phoenix keeps parent/child, attributes and events but drops span links (and span
kind), so the feedback → prediction *links* are verified at the in-test OTLP
receiver (``test_serving.py::test_feedback_joins_across_workers``). Here the join is
followed the way a Phoenix user follows it: from an ``ml.feedback`` span's
``ml.feedback.matched_ids`` to the ``ml.predict`` spans that list those ids.

Needs ``make phoenix`` (``make test`` runs it); without it the tests fail, they do
not skip.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.backends import PHOENIX_VENV, Phoenix, Span
from harness.otlp import wait_for
from harness.serving import Server

from .traffic import MODEL, labelled_body, ok_json, post_concurrently, predict_body, trace_id

NOT_INSTALLED = (
    f"Arize Phoenix is not installed in {PHOENIX_VENV}: run `make phoenix` "
    "(`make test` installs it before running the suite)"
)

pytestmark = pytest.mark.e2e

SPAN_WAIT = 30.0
"""Seconds for spans to reach Phoenix's database (export delay 0.2 s + its insert batching)."""


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Phoenix]:
    if not Phoenix.installed():
        pytest.fail(NOT_INSTALLED, pytrace=False)
    with Phoenix(tmp_path_factory.mktemp("phoenix")) as running:
        yield running


@pytest.fixture(scope="module", params=["http/protobuf", "grpc"])
def protocol(request: pytest.FixtureRequest) -> str:
    """Phoenix takes OTLP traces both ways: over HTTP on its web port, and over gRPC."""
    return str(request.param)


@pytest.fixture(scope="module")
def project(protocol: str) -> str:
    """A project of its own per protocol, named by the ``openinference.project.name`` resource."""
    return f"model-monitor-{protocol.replace('/', '-')}"


@pytest.fixture(scope="module")
def server(
    phoenix: Phoenix,
    protocol: str,
    project: str,
    trained_home: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    env = {
        # Traces only: Phoenix has no OTLP metrics receiver.
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": phoenix.otlp_endpoint(protocol),
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": protocol,
        # BentoML's resource reads OTEL_RESOURCE_ATTRIBUTES; Phoenix files spans by this one.
        "OTEL_RESOURCE_ATTRIBUTES": f"openinference.project.name={project}",
        "MONITOR_TRACE_SAMPLE_RATE": "1.0",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    with Server(tmp_path_factory.mktemp("phoenix-serving"), trained_home, env) as running:
        yield running


def spans_by_trace(spans: list[Span]) -> dict[str, dict[str, list[Span]]]:
    """``{trace id: {span name: [spans]}}``."""
    index: dict[str, dict[str, list[Span]]] = {}
    for span in spans:
        index.setdefault(span["context"]["trace_id"], {}).setdefault(span["name"], []).append(span)
    return index


def wait_for_spans(
    phoenix: Phoenix, project: str, trace_ids: list[str], names: tuple[str, ...]
) -> dict[str, dict[str, list[Span]]]:
    """Phoenix's spans of ``trace_ids``, once every trace has a span of each of ``names``."""

    def complete() -> dict[str, dict[str, list[Span]]] | None:
        index = spans_by_trace(phoenix.spans(project, trace_ids))
        done = all(name in index.get(tid, {}) for tid in trace_ids for name in names)
        return index if done else None

    def missing() -> str:
        index = spans_by_trace(phoenix.spans(project, trace_ids))
        gaps = [(tid, n) for tid in trace_ids for n in names if n not in index.get(tid, {})]
        wanted = len(trace_ids) * len(names)
        return f"{len(gaps)} of {wanted} spans not in Phoenix, e.g. (trace, name) {gaps[:3]}"

    return wait_for(complete, timeout=SPAN_WAIT, message=missing, interval=0.5)


def one(spans: dict[str, list[Span]], name: str) -> Span:
    assert len(spans[name]) == 1, f"{len(spans[name])} {name} spans in one trace"
    return spans[name][0]


def test_predict_span_is_a_child_of_the_server_span_in_phoenix(
    server: Server, phoenix: Phoenix, project: str
) -> None:
    bodies = [predict_body(k % 3 + 1, seed=900 + k) for k in range(8)]
    responses = post_concurrently(server.base_url, "/predict", bodies)
    results = [ok_json(r) for r in responses]
    trace_ids = [trace_id(r) for r in responses]
    assert len(set(trace_ids)) == len(trace_ids)

    stored = wait_for_spans(phoenix, project, trace_ids, ("ml.predict", "POST /predict"))

    for tid, result in zip(trace_ids, results, strict=True):
        predict = one(stored[tid], "ml.predict")
        http = one(stored[tid], "POST /predict")
        assert http["parent_id"] is None, "BentoML's server span is the trace's root"
        assert predict["context"]["trace_id"] == http["context"]["trace_id"] == tid
        assert predict["parent_id"] == http["context"]["span_id"]
        ids = [p["prediction_id"] for p in result["predictions"]]
        assert predict["attributes"] == {
            "ml.model.name": MODEL,
            "ml.model.version": result["model"]["version"],
            "ml.prediction.count": len(ids),
            "ml.prediction.ids": ids,
        }
        assert predict["status_code"] == "UNSET"


def test_feedback_span_carries_matched_ids_and_model_in_phoenix(
    server: Server, phoenix: Phoenix, project: str
) -> None:
    run = uuid.uuid4().hex[:8]
    ids = [f"phx-{run}-{i}" for i in range(12)]
    labels: dict[str, Any] = {}
    bodies = []
    for k in range(6):
        body, truth = labelled_body(2, seed=950 + k, ids=ids[2 * k : 2 * k + 2])
        bodies.append(body)
        labels.update(zip(ids[2 * k : 2 * k + 2], truth, strict=True))
    predicted = post_concurrently(server.base_url, "/predict", bodies)
    (version,) = {ok_json(r)["model"]["version"] for r in predicted}

    groups = [ids[2 * k : 2 * k + 2] for k in range(6)]
    unknown = f"phx-{run}-never-predicted"
    feedback = [
        {"labels": [{"prediction_id": pid, "label": labels[pid]} for pid in group]}
        for group in groups
    ]
    feedback[0]["labels"].append({"prediction_id": unknown, "label": labels[ids[0]]})
    answered = post_concurrently(server.base_url, "/feedback", feedback, threads=6)
    for group, response in zip(groups, answered, strict=True):
        matched = [
            r["prediction_id"] for r in ok_json(response)["results"] if r["status"] == "matched"
        ]
        assert matched == group

    feedback_traces = [trace_id(r) for r in answered]
    stored = wait_for_spans(phoenix, project, feedback_traces, ("ml.feedback", "POST /feedback"))
    for tid, group, body in zip(feedback_traces, groups, feedback, strict=True):
        span = one(stored[tid], "ml.feedback")
        http = one(stored[tid], "POST /feedback")
        assert span["parent_id"] == http["context"]["span_id"]
        assert span["attributes"] == {
            "ml.model.name": MODEL,
            "ml.model.version": version,
            "ml.feedback.count": len(body["labels"]),
            "ml.feedback.matched_ids": group,  # the unknown id is not among them
            "ml.feedback.links_dropped": 0,
        }

    # No links in Phoenix: the matched ids lead to the prediction spans instead.
    predict_traces = [trace_id(r) for r in predicted]
    predictions = wait_for_spans(phoenix, project, predict_traces, ("ml.predict",))
    listed = [
        pid
        for spans in predictions.values()
        for span in spans["ml.predict"]
        for pid in span["attributes"]["ml.prediction.ids"]
    ]
    assert sorted(listed) == sorted(ids), "each matched id is on exactly one ml.predict span"
