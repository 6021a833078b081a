"""``MONITOR_PROMETHEUS_PORT``: the service serves its metrics for Prometheus, a port per worker."""

from __future__ import annotations

import socket
from collections.abc import Callable

import httpx
import pytest
from starlette.testclient import TestClient

from harness.serving import free_port
from instrumentation import PrometheusEndpoint
from service.settings import load_settings
from service.train import make_dataset


def test_each_worker_gets_the_port_after_the_previous_one() -> None:
    settings = load_settings({"MONITOR_PROMETHEUS_PORT": "9464", "MONITOR_PROMETHEUS_HOST": "::1"})

    assert [settings.prometheus_endpoint(i) for i in (None, 1, 2, 3)] == [
        PrometheusEndpoint("::1", 9464),  # not in a BentoML worker: the first port
        PrometheusEndpoint("::1", 9464),
        PrometheusEndpoint("::1", 9465),
        PrometheusEndpoint("::1", 9466),
    ]
    assert load_settings({}).prometheus_endpoint(2) is None


def test_the_service_serves_its_metrics_on_the_configured_port(
    make_client: Callable[..., TestClient],
) -> None:
    port = free_port()
    client = make_client(MONITOR_PROMETHEUS_PORT=str(port))
    instances, _ = make_dataset(3, seed=7)

    assert client.post("/predict", json={"instances": instances}).status_code == 200

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5.0).text
    (predictions,) = [line for line in text.splitlines() if line.startswith("ml_predictions_total")]
    assert predictions.endswith(" 3.0")
    assert 'ml_model_name="fraud-detector"' in predictions
    (info,) = [line for line in text.splitlines() if line.startswith("target_info{")]
    assert 'service_name="model_monitor"' in info


def test_a_taken_port_is_logged_and_the_service_still_serves(
    make_client: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]

        client = make_client(MONITOR_PROMETHEUS_PORT=str(port))
        instances, _ = make_dataset(2, seed=8)
        response = client.post("/predict", json={"instances": instances})

    assert response.status_code == 200
    (record,) = [r for r in caplog.records if "MONITOR_PROMETHEUS_PORT" in r.getMessage()]
    assert record.levelname == "ERROR"
    assert record.getMessage() == (
        f"MONITOR_PROMETHEUS_PORT={port}: worker 1 cannot serve metrics on 127.0.0.1:{port} "
        "(Address already in use); it serves requests without a scrape endpoint"
    )
