"""Two replicas, one PostgreSQL: labels join wherever they land, and a store outage loses nothing.

Two ``bentoml serve`` processes of the same model (separate BENTOML_HOME copies, ports and
spools, 2 workers each) share a private PostgreSQL cluster. Predictions go through A,
labels through B. Then PostgreSQL stops mid-traffic: A keeps answering (spooling), and
once PostgreSQL is back every prediction acknowledged meanwhile accepts its label via B.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

from harness.otlp import SERVICE_INSTANCE_ID, OTLPReceiver, wait_for
from harness.postgres import PostgresCluster
from harness.serving import Server

from .conftest import StartServer
from .traffic import labelled_body, ok_json, otlp_env

pytestmark = pytest.mark.e2e

CLASSES = ["legit", "fraud"]


@pytest.fixture
def cluster() -> Iterator[PostgresCluster]:
    try:
        running = PostgresCluster.start_new()
    except RuntimeError as exc:
        pytest.fail(f"the replica tests need PostgreSQL: {exc}", pytrace=False)
    yield running
    running.stop()


def start_replica(
    start_server: StartServer, url: str, receiver: OTLPReceiver, tmp_path: Path, name: str
) -> Server:
    return start_server(
        {
            # Gauge leases last 3 export intervals: 2 s intervals keep a CPU-starved
            # holder from losing its lease (a legitimate hand-over) during the test.
            **otlp_env(receiver, interval_ms=2000),
            "MONITOR_STORE_URL": url,
            "MONITOR_SPOOL_DIR": str(tmp_path / f"spool-{name}"),  # each host its own disk
        }
    )


def predict(server: Server, n: int, seed: int) -> tuple[list[str], list[str], list[str]]:
    body, labels = labelled_body(n, seed)
    with server.client() as client:
        answer = ok_json(client.post("/predict", json=body))
    predictions = answer["predictions"]
    assert all(p["recorded"] for p in predictions)
    return [p["prediction_id"] for p in predictions], [p["label"] for p in predictions], labels


def retried(server: Server, method: str, path: str, **kwargs: Any) -> Any:
    """A call made as a client should: on 503, wait ``Retry-After`` (bounded) and call again.

    Feedback answers 503 while spooled predictions cannot reach the store yet (the
    dead connections a restart leaves in each pool no longer do: they are replaced
    on checkout, see ``test_postgres_restart.py``).
    """
    with server.client() as client:
        for _ in range(10):
            response = client.request(method, path, **kwargs)
            if response.status_code != 503:
                break
            time.sleep(min(1.0, float(response.headers["retry-after"])))
        return ok_json(response)


def label(server: Server, ids: list[str], labels: list[str]) -> dict[str, int]:
    body = {"labels": [{"prediction_id": i, "label": y} for i, y in zip(ids, labels, strict=True)]}
    return dict(retried(server, "POST", "/feedback", json=body)["counts"])


def snapshot(server: Server) -> dict[str, Any]:
    return dict(retried(server, "GET", "/monitor"))


def test_replicas_share_one_truth_and_survive_a_store_outage(
    cluster: PostgresCluster, receiver: OTLPReceiver, start_server: StartServer, tmp_path: Path
) -> None:
    url = cluster.create_database("monitor")
    a = start_replica(start_server, url, receiver, tmp_path, "a")
    b = start_replica(start_server, url, receiver, tmp_path, "b")

    ids, predicted, truth = [], [], []
    for seed in range(6):
        i, p, t = predict(a, 10, seed=900 + seed)
        ids += i
        predicted += p
        truth += t
    counts = label(b, ids, truth)
    assert counts["matched"] == len(ids), counts

    window_a, window_b = snapshot(a)["windows"], snapshot(b)["windows"]
    assert window_a == window_b
    quality = window_a["5m"]["quality"]
    assert quality["accuracy"]["value"] == pytest.approx(accuracy_score(truth, predicted), abs=1e-9)
    precision, recall, f1, _ = precision_recall_fscore_support(
        truth, predicted, labels=CLASSES, zero_division=0
    )
    for k, cls in enumerate(CLASSES):
        assert quality["precision"]["per_class"][cls]["value"] == pytest.approx(precision[k])
        assert quality["recall"]["per_class"][cls]["value"] == pytest.approx(recall[k])
        assert quality["f1"]["per_class"][cls]["value"] == pytest.approx(f1[k])

    # Window gauges: one lease holder across both replicas (4 worker processes).
    exports = wait_for(
        lambda: receiver.gauge_exports("ml.quality.accuracy"),
        timeout=20.0,
        message="no window gauges exported",
    )
    assert len({resource[SERVICE_INSTANCE_ID] for resource, _ in exports}) == 1

    # PostgreSQL goes away mid-traffic: A keeps predicting; nothing acknowledged is lost.
    cluster.stop_server()
    during: list[tuple[str, str]] = []
    for seed in range(5):
        i, _, t = predict(a, 4, seed=950 + seed)
        during += list(zip(i, t, strict=True))
    cluster.start()

    wait_for(
        lambda: snapshot_when_up(a) == 0,
        timeout=60.0,
        message="A's spooled predictions never reached the store",
        interval=0.5,
    )
    counts = label(b, [i for i, _ in during], [t for _, t in during])
    assert counts["matched"] == len(during), counts
    assert snapshot(b)["windows"]["5m"]["n_labels"] == len(ids) + len(during)


def snapshot_when_up(server: Server) -> int | None:
    """Requests still spooled on ``server``'s host, or None while its store cannot answer."""
    with server.client() as client:
        response = client.get("/monitor")
    if response.status_code != 200:
        return None
    return int(response.json()["spooled_requests"])
