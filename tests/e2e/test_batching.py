"""Adaptive batching (``MONITOR_ADAPTIVE_BATCHING=1``) under a real ``bentoml serve``, 2 workers.

Concurrent ``/predict`` requests share model calls; each keeps its own ``ml.predict`` span
in its own trace, and every batch's ``ml.predict.batch`` span, the root of its own trace,
links to the ``ml.predict`` span of every request it served (read at an OTLP receiver).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from harness.otlp import OTLPReceiver, attributes, wait_for
from service.predictor import Predictor
from service.train import train

from .conftest import StartServer
from .traffic import MODEL, labelled_body, ok_json, otlp_env, post_concurrently, trace_id

pytestmark = pytest.mark.e2e

MAX_ROWS = 8
"""``MONITOR_BATCH_MAX_ROWS``: small, so the 20-row request is split over batches."""


def test_each_batch_links_to_every_request_it_served(
    start_server: StartServer, receiver: OTLPReceiver
) -> None:
    server = start_server(
        otlp_env(receiver, interval_ms=1000)
        | {"MONITOR_ADAPTIVE_BATCHING": "1", "MONITOR_BATCH_MAX_ROWS": str(MAX_ROWS)}
    )
    # Past 100 self-calls per worker: BentoML's client renews its session at 100.
    sizes = [1 + i % 3 for i in range(279)] + [20]
    bodies, labels = [], {}
    for n, size in enumerate(sizes):
        ids = [f"req{n}-row{i}" for i in range(size)]
        body, truth = labelled_body(size, seed=900 + n, ids=ids)
        bodies.append(body)
        labels.update(zip(ids, truth, strict=True))
    responses = post_concurrently(server.base_url, "/predict", bodies, threads=16)

    # The same answers as without batching: ids as given, in order, the model's outputs.
    estimator, spec = train(MODEL)  # deterministic: the served model
    direct = Predictor(estimator, spec)
    requests: dict[str, list[str]] = {}  # trace id -> the request's prediction ids
    for body, response in zip(bodies, responses, strict=True):
        answer = ok_json(response)
        instances = body["instances"]
        assert [p["prediction_id"] for p in answer["predictions"]] == [i["id"] for i in instances]
        assert all(p["recorded"] for p in answer["predictions"])
        labels_of, scores_of = direct.classify([i["features"] for i in instances])
        for prediction, label, row in zip(answer["predictions"], labels_of, scores_of, strict=True):
            assert prediction["label"] == label
            expected = dict(zip(spec.classes, row, strict=True))
            assert prediction["scores"] == pytest.approx(expected, abs=1e-12)
        requests[trace_id(response)] = [i["id"] for i in instances]
    total = sum(sizes)

    def exported() -> tuple[dict[str, Span], list[Span]] | None:
        spans = [span for _, span in receiver.spans()]
        predict = {s.trace_id.hex(): s for s in spans if s.name == "ml.predict"}
        batches = [s for s in spans if s.name == "ml.predict.batch"]
        batched_rows = sum(attributes(s.attributes)["ml.batch.rows"] for s in batches)
        if set(requests) <= set(predict) and batched_rows >= total:
            return predict, batches
        return None

    predict, batches = wait_for(exported, timeout=30.0, message="ml.predict(.batch) spans")
    servers = {
        s.span_id: s for _, s in receiver.spans() if s.name == "POST /predict" and s.trace_id
    }

    # Each request: its ml.predict span in its own trace, a child of its POST /predict span.
    request_span = {}
    for trace, ids in requests.items():
        span = predict[trace]
        assert attributes(span.attributes)["ml.prediction.ids"] == ids
        assert servers[span.parent_span_id].trace_id == span.trace_id
        request_span[(span.trace_id.hex(), span.span_id.hex())] = len(ids)

    # Each batch: a root (no stale parent), in no request's trace, linking to the
    # ml.predict span of every request whose rows it served, with their row counts.
    served: Counter[tuple[str, str]] = Counter()
    for batch in batches:
        attrs = attributes(batch.attributes)
        assert batch.parent_span_id == b""
        assert batch.trace_id.hex() not in requests
        assert attrs["ml.model.name"] == MODEL
        assert 1 <= attrs["ml.batch.rows"] <= MAX_ROWS
        assert attrs["ml.batch.requests"] == len(batch.links)
        assert attrs["ml.batch.links_dropped"] == 0
        rows = 0
        for link in batch.links:
            key = (link.trace_id.hex(), link.span_id.hex())
            assert key in request_span, "a batch links to a span that is no request's ml.predict"
            count = attributes(link.attributes)["ml.prediction.count"]
            served[key] += count
            rows += count
        assert rows == attrs["ml.batch.rows"]
    # Every row of every request was served by exactly one linked batch; some batches
    # served several requests (batching happened), and the 20-row request was split.
    assert served == request_span
    assert max(len(b.links) for b in batches) >= 2
    assert sum(attributes(b.attributes)["ml.batch.rows"] for b in batches) == total
    big = next(k for k, n in request_span.items() if n == 20)
    assert sum(1 for b in batches for link in b.links if _key(link) == big) >= 20 // MAX_ROWS

    # Every prediction was stored, and its label joins.
    with server.client() as client:
        assert ok_json(client.get("/monitor"))["stored_predictions"] == total
        feedback = [{"prediction_id": pid, "label": label} for pid, label in labels.items()]
        result = ok_json(client.post("/feedback", json={"labels": feedback}))
    assert result["counts"]["matched"] == total


def test_batched_predict_answers_bad_requests_as_predict_does(
    start_server: StartServer,
) -> None:
    repeated, _ = labelled_body(2, seed=1, ids=["same", "same"])
    taken, _ = labelled_body(1, seed=2, ids=["taken"])
    bad_requests = [
        repeated,
        taken,  # the second time
        {"instances": [{"features": {"nope": 1}}]},
        {"instances": []},
        {"rows": []},
    ]
    answers = []
    for batching in ("0", "1"):
        server = start_server({"MONITOR_ADAPTIVE_BATCHING": batching, "MONITOR_WORKERS": "1"})
        with server.client() as client:
            ok_json(client.post("/predict", json=taken))
            answers.append([client.post("/predict", json=body) for body in bad_requests])
        server.stop()
    unbatched, batched = answers
    assert [r.status_code for r in batched] == [409, 409, 400, 400, 400]
    assert [r.json() for r in batched] == [r.json() for r in unbatched]


def test_the_batch_route_serves_no_prediction_to_outside_callers(
    start_server: StartServer,
) -> None:
    server = start_server({"MONITOR_ADAPTIVE_BATCHING": "1"})
    with server.client() as client:
        answer = client.post("/predict_batch", json={"items": ["0" * 32 + ":0", "junk"]})
        monitor = ok_json(client.get("/monitor"))
    assert ok_json(answer) == [False, False]
    assert monitor["stored_predictions"] == 0


def _key(link: Any) -> tuple[str, str]:
    return (link.trace_id.hex(), link.span_id.hex())
