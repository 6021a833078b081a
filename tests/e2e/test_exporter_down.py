"""Telemetry never breaks inference: a down or blackholed OTLP backend costs requests nothing.

Each server exports every span and metric (sample rate 1, 200 ms metric interval) to
an endpoint that either refuses connections or accepts them and never answers. Every
prediction and label must still succeed within the client's timeout, be stored, and
``GET /monitor`` must keep working; stopping the server must not hang either.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from harness.serving import free_port
from instrumentation.store.sqlite import SQLiteStore

from .conftest import StartServer
from .traffic import MODEL, labelled_body, ok_json

pytestmark = pytest.mark.e2e

REQUEST_TIMEOUT = 10.0
"""Generous bound: a stalled request would wait on the exporter's own 10 s timeout first."""


@pytest.fixture
def blackhole() -> Iterator[str]:
    """A TCP endpoint on 127.0.0.1 that accepts connections and never reads or replies."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    listener.close()


@pytest.mark.parametrize(
    ("backend", "protocol"), [("blackholed", "grpc"), ("refused", "http/protobuf")]
)
def test_predictions_and_labels_succeed_with_the_backend_down(
    start_server: StartServer, blackhole: str, backend: str, protocol: str
) -> None:
    endpoint = blackhole if backend == "blackholed" else f"http://127.0.0.1:{free_port()}"
    server = start_server(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            "OTEL_METRIC_EXPORT_INTERVAL": "200",
            "MONITOR_TRACE_SAMPLE_RATE": "1.0",
        }
    )
    ids: list[str] = []
    with server.client(timeout=REQUEST_TIMEOUT) as client:
        for seed in range(20):
            body, labels = labelled_body(5, seed=1000 + seed)
            predictions = ok_json(client.post("/predict", json=body))["predictions"]
            batch = [p["prediction_id"] for p in predictions]
            ids += batch
            feedback = {
                "labels": [
                    {"prediction_id": i, "label": t} for i, t in zip(batch, labels, strict=True)
                ]
            }
            assert ok_json(client.post("/feedback", json=feedback))["counts"]["matched"] == 5
        snapshot = ok_json(client.get("/monitor"))
    assert snapshot["windows"]["5m"]["n_labels"] == len(ids)
    store = SQLiteStore(server.store_path)
    try:
        assert set(store.get_predictions(MODEL, ids)) == set(ids)
    finally:
        store.close()
    assert server.stop(timeout=30) is not None  # a typical orchestrator grace period
    assert not server.killed, "shutdown hung on the unreachable exporter:\n" + server.log_tail()
