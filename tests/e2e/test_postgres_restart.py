"""A PostgreSQL restart under load: no 5xx, and every acknowledged prediction is stored.

One ``bentoml serve`` (2 workers) on a private PostgreSQL cluster. Four client
threads send ``/predict`` and ``/feedback`` (labels for predictions acknowledged
earlier) on fresh connections, so both workers serve. PostgreSQL is restarted
(fast shutdown, then start) twice: once in a pause of the load, so that the first
requests after it meet pools holding only dead connections (before the checkout
check, each worker answered one of them 503); once mid-load, where predictions
made while the server is down are spooled and replayed, and ``/feedback`` may
answer 503 only while it is down. At the end every acknowledged id is stored.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from harness.otlp import wait_for
from harness.postgres import PostgresCluster

from .conftest import StartServer
from .traffic import labelled_body

pytestmark = pytest.mark.e2e

CLIENTS = 4
ROWS = 4


@pytest.fixture
def cluster() -> Iterator[PostgresCluster]:
    try:
        running = PostgresCluster.start_new()
    except RuntimeError as exc:
        pytest.fail(f"the restart test needs PostgreSQL: {exc}", pytrace=False)
    yield running
    running.stop()


class Load:
    """Bounded loopback load: each client alternates a prediction and a feedback request."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.stop = threading.Event()
        self.running = threading.Event()
        self.running.set()
        self.in_flight = 0
        self.lock = threading.Lock()
        self.acknowledged: dict[str, object] = {}
        self.answers: list[tuple[float, str, int]] = []  # (sent at, path, status)

    def client(self, seed: int) -> None:
        rng = random.Random(seed)
        headers = {"connection": "close"}  # a new TCP connection each: both workers serve
        for n in range(400):  # bounded, whatever happens
            self.running.wait(timeout=120.0)
            if self.stop.is_set():
                return
            with self.lock:
                if not self.running.is_set():
                    continue  # paused meanwhile
                self.in_flight += 1
            try:
                self._round(rng, seed, n, headers)
            finally:
                with self.lock:
                    self.in_flight -= 1

    def pause(self) -> None:
        """Let the requests in flight finish, start no more until :meth:`resume`."""
        with self.lock:
            self.running.clear()
        wait_for(lambda: self.in_flight == 0, timeout=60.0, message="requests hang", interval=0.05)

    def resume(self) -> None:
        self.running.set()

    def _round(self, rng: random.Random, seed: int, n: int, headers: dict[str, str]) -> None:
        """Feedback first (after a pause, a worker's first request is a label), then predict."""
        with self.lock:
            known = rng.sample(sorted(self.acknowledged), min(8, len(self.acknowledged)))
            items = [{"prediction_id": i, "label": self.acknowledged[i]} for i in known]
        if items:
            self._post("/feedback", {"labels": items}, headers)
        body, truth = labelled_body(ROWS, seed=seed * 1000 + n)
        response = self._post("/predict", body, headers)
        if response.status_code == 200:
            ids = [p["prediction_id"] for p in response.json()["predictions"]]
            with self.lock:
                self.acknowledged.update(zip(ids, truth, strict=True))

    def _post(self, path: str, body: object, headers: dict[str, str]) -> httpx.Response:
        sent = time.monotonic()
        response = httpx.post(f"{self.base_url}{path}", json=body, headers=headers, timeout=30.0)
        self._answered(sent, path, response.status_code)
        return response

    def _answered(self, sent: float, path: str, status: int) -> None:
        with self.lock:
            self.answers.append((sent, path, status))


def stored_ids(cluster: PostgresCluster) -> set[str]:
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        return {pid for (pid,) in conn.execute("SELECT prediction_id FROM monitor.predictions")}


def spooled(base_url: str) -> int | None:
    response = httpx.get(f"{base_url}/monitor", timeout=30.0)
    return int(response.json()["spooled_requests"]) if response.status_code == 200 else None


def test_a_postgres_restart_under_load_answers_no_5xx_and_loses_nothing(
    cluster: PostgresCluster, start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server(
        {
            "MONITOR_STORE_URL": cluster.url(),
            "MONITOR_WORKERS": "2",
            "MONITOR_SPOOL_DIR": str(tmp_path / "spool"),
        }
    )
    load = Load(server.base_url)
    clients = [threading.Thread(target=load.client, args=(s,)) for s in range(CLIENTS)]
    for thread in clients:
        thread.start()
    try:
        wait_for(lambda: len(load.answers) >= 40, timeout=60.0, message="no load", interval=0.1)
        # In a pause: the next requests of both workers meet only dead connections.
        load.pause()
        cluster.stop_server()
        cluster.start()
        resumed_at = time.monotonic()
        load.resume()
        wait_for(
            lambda: sum(sent > resumed_at for sent, _, _ in load.answers) >= 40,
            timeout=120.0,
            message="too little load after the first restart",
            interval=0.1,
        )
        down_at = time.monotonic()
        cluster.stop_server()
        cluster.start()
        up_at = time.monotonic()
        wait_for(
            lambda: sum(sent > up_at for sent, _, _ in load.answers) >= 80,
            timeout=120.0,
            message="too little load after the restart",
            interval=0.2,
        )
    finally:
        load.stop.set()
        load.resume()
        for thread in clients:
            thread.join(timeout=60.0)

    failed = [(round(s - down_at, 2), p, c) for s, p, c in load.answers if c >= 500]
    while_down = [f for f in failed if 0 <= f[0] < up_at - down_at]
    after = [f for f in failed if f not in while_down]
    # While the server is down, /feedback may answer 503 (Retry-After): the store cannot
    # join. Predictions never fail, and nothing fails once PostgreSQL is back.
    assert after == [], f"5xx after the restart: {after}"
    assert all(p == "/feedback" and c == 503 for _, p, c in while_down), while_down
    assert sum(s > up_at and c == 200 for s, _, c in load.answers) >= 80

    wait_for(lambda: spooled(server.base_url) == 0, timeout=60.0, message="spool not replayed")
    missing = set(load.acknowledged) - stored_ids(cluster)
    assert not missing, f"{len(missing)} acknowledged predictions not stored"
