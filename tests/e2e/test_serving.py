"""One real 2-worker server exporting to an in-test OTLP receiver: traces, metrics, store, joins.

The tests share one module-scoped server (same configuration, no conflicts): each
identifies its own requests by trace id and prediction id, never by totals.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from harness.otlp import (
    SERVICE_INSTANCE_ID,
    Attributes,
    OTLPReceiver,
    attributes,
    span_index,
    wait_for,
)
from harness.serving import Server
from instrumentation.store.sqlite import SQLiteStore

from .traffic import (
    MODEL,
    labelled_body,
    ok_json,
    otlp_env,
    post_concurrently,
    predict_body,
    trace_id,
)

pytestmark = pytest.mark.e2e

MAX_BATCH = 5
SPAN_WAIT = 20.0


@pytest.fixture(scope="module")
def sink() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def server(
    sink: OTLPReceiver, trained_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    env = {
        **otlp_env(sink, interval_ms=500),
        "MONITOR_MAX_BATCH": str(MAX_BATCH),
        # Spans leave BentoML's BatchSpanProcessor within 0.2 s instead of 5 s.
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    with Server(tmp_path_factory.mktemp("serving"), trained_home, env) as running:
        yield running


@pytest.fixture
def store(server: Server) -> Iterator[SQLiteStore]:
    """The server's own store file, opened from the test process."""
    opened = SQLiteStore(server.store_path)
    yield opened
    opened.close()


def unique_ids(prefix: str, n: int) -> list[str]:
    run = uuid.uuid4().hex[:8]
    return [f"{prefix}-{run}-{i}" for i in range(n)]


def spans_named(
    sink: OTLPReceiver, name: str, trace_ids: list[str]
) -> dict[str, tuple[Attributes, Span]] | None:
    """The one ``name`` span of each trace, once all have arrived (else None)."""
    wanted = set(trace_ids)
    found: dict[str, tuple[Attributes, Span]] = {}
    for resource, span in sink.spans():
        tid = span.trace_id.hex()
        if span.name == name and tid in wanted:
            assert tid not in found, f"two {name} spans in trace {tid}"
            found[tid] = (resource, span)
    return found if len(found) == len(wanted) else None


def wait_spans(sink: OTLPReceiver, name: str, trace_ids: list[str]) -> dict[str, Any]:
    return wait_for(
        lambda: spans_named(sink, name, trace_ids),
        timeout=SPAN_WAIT,
        message=lambda: (
            f"{name} spans for {len(trace_ids)} traces; got "
            f"{len(spans_named_partial(sink, name, trace_ids))}"
        ),
    )


def spans_named_partial(sink: OTLPReceiver, name: str, trace_ids: list[str]) -> list[Span]:
    wanted = set(trace_ids)
    return [s for _, s in sink.spans() if s.name == name and s.trace_id.hex() in wanted]


def prediction_ids(body: Any) -> list[str]:
    return [p["prediction_id"] for p in body["predictions"]]


# --- 1. one trace ------------------------------------------------------------


def test_predict_span_is_a_child_of_the_bentoml_server_span(
    server: Server, sink: OTLPReceiver
) -> None:
    with server.client() as client:
        responses = [
            client.post("/predict", json=predict_body(k + 1, seed=100 + k)) for k in range(4)
        ]
    bodies = [ok_json(r) for r in responses]
    trace_ids = [trace_id(r) for r in responses]
    assert len(set(trace_ids)) == len(trace_ids)

    def parents_arrived() -> dict[str, tuple[Span, Span]] | None:
        predicts = spans_named(sink, "ml.predict", trace_ids)
        if predicts is None:
            return None
        index = span_index(sink.spans())
        pairs = {}
        for tid, (_, span) in predicts.items():
            parent = index.get((tid, span.parent_span_id.hex()))
            if parent is None:
                return None
            pairs[tid] = (span, parent[1])
        return pairs

    pairs = wait_for(
        parents_arrived, timeout=SPAN_WAIT, message="ml.predict spans and their parents"
    )
    for response, body, tid in zip(responses, bodies, trace_ids, strict=True):
        predict, parent = pairs[tid]
        assert parent.name == "POST /predict"
        assert parent.kind == Span.SpanKind.SPAN_KIND_SERVER
        assert parent.trace_id == predict.trace_id
        assert predict.parent_span_id == parent.span_id
        assert predict.trace_id.hex() == tid  # == x-bentoml-trace-id
        # BentoML's request id is its server span's id.
        assert parent.span_id.hex() == response.headers["x-bentoml-request-id"]
        attrs = attributes(predict.attributes)
        assert attrs["ml.model.name"] == MODEL
        assert attrs["ml.model.version"] == body["model"]["version"]
        assert attrs["ml.prediction.ids"] == prediction_ids(body)
        assert attrs["ml.prediction.count"] == len(body["predictions"])


# --- 2. metrics from every worker ---------------------------------------------


def test_metrics_arrive_from_every_worker(server: Server, sink: OTLPReceiver) -> None:
    def instances_of(metric: str) -> set[str]:
        return {res[SERVICE_INSTANCE_ID] for res, _ in sink.metric_points(metric)}

    def both_seen() -> bool:
        return all(len(instances_of(m)) >= 2 for m in ("ml.predictions", "ml.prediction.duration"))

    rows_sent = 0
    deadline = time.monotonic() + 45.0
    for round_ in range(8):
        bodies = [predict_body(2, seed=1000 * round_ + k) for k in range(16)]
        for response in post_concurrently(server.base_url, "/predict", bodies):
            ok_json(response)
        rows_sent += 32
        # One export interval is 0.5 s; give both workers a few.
        end = min(deadline, time.monotonic() + 3.0)
        while time.monotonic() < end and not both_seen():
            time.sleep(0.1)
        if both_seen() or time.monotonic() >= deadline:
            break
    assert both_seen(), (
        f"after {rows_sent} rows, ml.predictions came from {instances_of('ml.predictions')} "
        f"and ml.prediction.duration from {instances_of('ml.prediction.duration')}: "
        "expected two worker instance ids each"
    )
    with server.client() as client:
        model = ok_json(client.post("/predict", json=predict_body(1, seed=1)))["model"]
    for metric in ("ml.predictions", "ml.prediction.duration"):
        for resource, point in sink.metric_points(metric):
            assert attributes(point.attributes) == {
                "ml.model.name": MODEL,
                "ml.model.version": model["version"],
            }, f"{metric} from {resource[SERVICE_INSTANCE_ID]}"
    # Cumulative counts: the workers' latest points together cover at least this test's rows
    # (once the export after the last request has arrived).
    wait_for(
        lambda: sink.counter_total("ml.predictions") >= rows_sent,
        timeout=10.0,
        message=lambda: (
            f"ml.predictions total {sink.counter_total('ml.predictions')} < {rows_sent}"
        ),
    )

    # A worker's spans carry its metrics' service.instance.id (not BentoML's worker index).
    def span_instances() -> set[str]:
        return {res[SERVICE_INSTANCE_ID] for res, span in sink.spans() if span.name == "ml.predict"}

    wait_for(
        lambda: span_instances() == instances_of("ml.predictions"),
        timeout=10.0,
        message=lambda: (
            f"ml.predict spans from {span_instances()}, "
            f"metrics from {instances_of('ml.predictions')}"
        ),
    )


# --- 3. the store holds every prediction with its span ------------------------


def test_every_prediction_is_stored_with_its_span(
    server: Server, sink: OTLPReceiver, store: SQLiteStore
) -> None:
    client_ids = unique_ids("store", 6)
    bodies = [predict_body(3, seed=300 + k) for k in range(6)]
    bodies += [predict_body(2, seed=310 + k, ids=client_ids[2 * k : 2 * k + 2]) for k in range(3)]
    responses = post_concurrently(server.base_url, "/predict", bodies)
    results = [ok_json(r) for r in responses]
    trace_ids = [trace_id(r) for r in responses]
    spans = wait_spans(sink, "ml.predict", trace_ids)

    all_ids = [pid for body in results for pid in prediction_ids(body)]
    assert set(client_ids) <= set(all_ids)
    stored = store.get_predictions(MODEL, all_ids)
    assert sorted(stored) == sorted(all_ids)
    for tid, body in zip(trace_ids, results, strict=True):
        _, span = spans[tid]
        for prediction in body["predictions"]:
            record = stored[prediction["prediction_id"]]
            assert (record.trace_id, record.span_id) == (tid, span.span_id.hex())
            assert record.label == prediction["label"]
            assert record.version == body["model"]["version"]
            assert record.feedback is None


# --- 4. a label joins on a worker that never saw the prediction ---------------


def test_feedback_joins_across_workers(
    server: Server, sink: OTLPReceiver, store: SQLiteStore
) -> None:
    ids = unique_ids("fb", 48)
    labels: dict[str, Any] = {}
    bodies = []
    for k in range(24):
        body, truth = labelled_body(2, seed=400 + k, ids=ids[2 * k : 2 * k + 2])
        bodies.append(body)
        labels.update(zip(ids[2 * k : 2 * k + 2], truth, strict=True))
    responses = post_concurrently(server.base_url, "/predict", bodies)
    for response in responses:
        ok_json(response)
    predict_spans = wait_spans(sink, "ml.predict", [trace_id(r) for r in responses])
    stored = store.get_predictions(MODEL, ids)
    assert sorted(stored) == sorted(ids)
    predicted_on = {
        pid: predict_spans[record.trace_id][0][SERVICE_INSTANCE_ID]
        for pid, record in stored.items()
    }

    cross_worker = []
    pending = list(ids)
    for _round in range(4):
        requests = [pending[i : i + 2] for i in range(0, 12, 2)]
        pending = pending[12:]
        feedback = [
            {"labels": [{"prediction_id": pid, "label": labels[pid]} for pid in group]}
            for group in requests
        ]
        responses = post_concurrently(server.base_url, "/feedback", feedback, threads=6)
        feedback_spans = wait_spans(sink, "ml.feedback", [trace_id(r) for r in responses])
        for group, response in zip(requests, responses, strict=True):
            body = ok_json(response)
            assert body["results"] == [{"prediction_id": p, "status": "matched"} for p in group]
            assert body["counts"]["matched"] == len(group)
            resource, span = feedback_spans[trace_id(response)]
            attrs = attributes(span.attributes)
            assert attrs["ml.feedback.matched_ids"] == group
            assert attrs["ml.feedback.count"] == len(group)
            links = {(link.trace_id.hex(), link.span_id.hex()) for link in span.links}
            assert links == {(stored[p].trace_id, stored[p].span_id) for p in group}
            assert sorted(
                attributes(link.attributes)["ml.prediction.id"] for link in span.links
            ) == sorted(group)
            for pid in group:
                if predicted_on[pid] != resource[SERVICE_INSTANCE_ID]:
                    cross_worker.append((pid, predicted_on[pid], resource[SERVICE_INSTANCE_ID]))
        if cross_worker:
            break
    assert cross_worker, (
        "every label landed on the worker that made its prediction; "
        f"workers seen: {sorted(set(predicted_on.values()))}"
    )
    joined = store.get_predictions(MODEL, [pid for pid, _, _ in cross_worker])
    for pid, _, _ in cross_worker:
        assert joined[pid].feedback == labels[pid]


# --- 6. bad input: a clear 4xx naming the field, nothing stored ----------------


def error_text(body: Any) -> str:
    """Everything an error body says, with pydantic locations as ``a[0].b`` paths."""
    parts = []
    for item in body if isinstance(body, list) else [body]:
        parts.append(str(item.get("error", "")))
        for detail in item.get("detail", []):
            path = ""
            for step in detail["loc"]:
                path += f"[{step}]" if isinstance(step, int) else f".{step}"
            parts.append(f"{path.lstrip('.')}: {detail['msg']}")
    return "\n".join(parts)


DROP = object()
"""Marks a feature to delete in :func:`with_features`."""


def with_features(body: dict[str, Any], row: int, **changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(body)
    features = body["instances"][row]["features"]
    for name, value in changes.items():
        if value is DROP:
            del features[name]
        else:
            features[name] = value
    return body


def test_bad_input_gets_a_clear_4xx_and_nothing_is_stored(
    server: Server, store: SQLiteStore
) -> None:
    ids = iter(unique_ids("bad", 200))

    def body(n: int) -> dict[str, Any]:
        return predict_body(n, seed=600, ids=[next(ids) for _ in range(n)])

    taken = body(1)
    taken_id = taken["instances"][0]["id"]
    with server.client() as client:
        ok_json(client.post("/predict", json=taken))
    original = store.get_predictions(MODEL, [taken_id])[taken_id]

    no_features = body(2)
    del no_features["instances"][1]["features"]
    extra = body(2)
    extra["instances"][0]["extra"] = 1
    duplicate = body(2)
    duplicate["instances"][1]["id"] = duplicate["instances"][0]["id"]
    reused = body(3)
    reused["instances"][1]["id"] = taken_id

    cases: list[tuple[str, Any, int, str]] = [
        ("empty", {"instances": []}, 400, "instances: expected at least 1"),
        ("too many", body(MAX_BATCH + 1), 400, f"instances: {MAX_BATCH + 1} given"),
        ("unknown feature", with_features(body(2), 1, zzz=1.0), 400, "instances[1].features.zzz"),
        (
            "missing feature",
            with_features(body(2), 1, hour=DROP),
            400,
            "instances[1].features.hour",
        ),
        (
            "string for number",
            with_features(body(2), 0, amount="12.5"),
            400,
            "instances[0].features.amount: expected a number",
        ),
        (
            "number for category",
            with_features(body(2), 1, merchant_category=3),
            400,
            "instances[1].features.merchant_category: expected a string",
        ),
        (
            "bool for number",
            with_features(body(2), 0, transactions_24h=True),
            400,
            "instances[0].features.transactions_24h: expected a number",
        ),
        ("malformed json", '{"instances": [{"id": "x", "features": {', 400, "Invalid JSON"),
        ("missing features", no_features, 400, "instances[1].features: Field required"),
        ("extra field", extra, 400, "instances[0].extra: Extra inputs are not permitted"),
        ("duplicate ids", duplicate, 409, "instances[1].id: "),
        ("reused id", reused, 409, f"instances[1].id: prediction id {taken_id!r} already exists"),
    ]
    sent_ids: list[str] = []
    failures = []
    with server.client() as client:
        for name, payload, status, expected in cases:
            if isinstance(payload, str):
                response = client.post(
                    "/predict", content=payload, headers={"content-type": "application/json"}
                )
            else:
                response = client.post("/predict", json=payload)
                sent_ids += [i["id"] for i in payload["instances"] if "id" in i]
            text = error_text(response.json()) if response.content else ""
            if response.status_code != status or expected not in text:
                failures.append(f"{name}: {response.status_code} {response.text}")
        assert not failures, "\n".join(failures)

        # Nothing of any rejected request was written, and the taken id was not overwritten.
        assert store.get_predictions(MODEL, [i for i in sent_ids if i != taken_id]) == {}
        assert store.get_predictions(MODEL, [taken_id]) == {taken_id: original}

        # The server is still serving.
        good = body(2)
        assert [
            p["prediction_id"] for p in ok_json(client.post("/predict", json=good))["predictions"]
        ] == [i["id"] for i in good["instances"]]


def test_every_worker_logs_where_its_store_is(server: Server) -> None:
    # BentoML leaves the root logger at WARNING; the service lets its INFO lines through.
    lines = [line for line in server.log().splitlines() if "prediction store:" in line]
    assert len(lines) == 2, server.log_tail()
    assert all(line.endswith(f"prediction store: {server.store_path}") for line in lines)
