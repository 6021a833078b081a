"""SIGTERM flushes the last metrics and spans (``@bentoml.on_shutdown``; atexit never runs)."""

from __future__ import annotations

import pytest

from harness.otlp import SERVICE_INSTANCE_ID, OTLPReceiver, wait_for

from .conftest import StartServer
from .traffic import ok_json, otlp_env, post_concurrently, predict_body, trace_id

pytestmark = pytest.mark.e2e


def test_sigterm_flushes_metrics_and_spans(
    start_server: StartServer, receiver: OTLPReceiver
) -> None:
    env = {
        **otlp_env(receiver, interval_ms=60_000),  # no periodic metric export during the test
        "OTEL_BSP_SCHEDULE_DELAY": "60000",  # nor a periodic span export
    }
    server = start_server(env)
    bodies = [predict_body(k % 3 + 1, seed=700 + k) for k in range(12)]
    responses = post_concurrently(server.base_url, "/predict", bodies)
    rows = sum(len(ok_json(r)["predictions"]) for r in responses)
    trace_ids = {trace_id(r) for r in responses}
    assert receiver.metric_points("ml.predictions") == []
    assert receiver.spans() == []

    server.stop()

    assert not server.killed, f"SIGTERM did not stop the server:\n{server.log_tail()}"
    # The exporters finished before the workers exited; allow the receiver's threads a moment.
    wait_for(
        lambda: receiver.counter_total("ml.predictions") == rows,
        timeout=5.0,
        message=lambda: (
            f"ml.predictions total {receiver.counter_total('ml.predictions')} != {rows}"
        ),
    )
    predict_spans = [s for _, s in receiver.spans() if s.name == "ml.predict"]
    assert {s.trace_id.hex() for s in predict_spans} == trace_ids
    assert len(predict_spans) == len(bodies)
    # Every worker that served a request flushed its own metrics.
    serving_workers = {
        res[SERVICE_INSTANCE_ID] for res, s in receiver.spans() if s.name == "ml.predict"
    }
    metric_workers = {
        res[SERVICE_INSTANCE_ID] for res, _ in receiver.metric_points("ml.predictions")
    }
    assert len(metric_workers) == len(serving_workers)
    assert server.log().count("Completed cleanup hook: flush") == 2
