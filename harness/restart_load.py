"""A PostgreSQL restart under load: what a 2-worker server answered, and what it stored.

:func:`restart_under_load` drives a served template whose store is a private
:class:`~harness.postgres.PostgresCluster`: client threads send ``/predict`` and
``/feedback`` (labels for predictions acknowledged earlier) on fresh connections,
so both workers serve, while PostgreSQL is restarted (fast shutdown, then start):
once in a pause of the load, so that the first requests after it meet pools
holding only dead connections; then mid-load, once or until ``seconds`` have
passed. :class:`Outcome` sorts the 5xx answers into those of requests in flight while the database
was down (where ``/feedback`` may answer 503: the store cannot join) and the rest.
``tests/e2e/test_postgres_restart.py`` asserts on it; ``bench/postgres_restart.py``
counts it.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx
import psycopg

from harness.otlp import wait_for
from harness.postgres import PostgresCluster
from service.train import make_dataset

CLIENTS: Final = 4
ROWS: Final = 4
"""Rows per ``/predict`` request."""

Answer = tuple[float, float, str, int]
"""(sent at, answered at, both on the monotonic clock; path; status)."""


def server_env(cluster: PostgresCluster, spool_dir: Path) -> dict[str, str]:
    """The server's environment: 2 workers on ``cluster``, spooling into ``spool_dir``."""
    return {
        "MONITOR_STORE_URL": cluster.url(),
        "MONITOR_WORKERS": "2",
        "MONITOR_SPOOL_DIR": str(spool_dir),
    }


class Load:
    """Bounded loopback load: each client alternates a prediction and a feedback request.

    Args:
        base_url: the server.
        rounds: a client's rounds at most, whatever happens (one round: a feedback
            request, once some prediction is acknowledged, then a prediction).
    """

    def __init__(self, base_url: str, *, rounds: int = 400) -> None:
        self.base_url = base_url
        self.rounds = rounds
        self.stop = threading.Event()
        self.running = threading.Event()
        self.running.set()
        self.in_flight = 0
        self.lock = threading.Lock()
        self.acknowledged: dict[str, object] = {}
        self.answers: list[Answer] = []

    def client(self, seed: int) -> None:
        """One client's loop (a thread's target); returns on :attr:`stop` or after its rounds."""
        rng = random.Random(seed)
        headers = {"connection": "close"}  # a new TCP connection each: both workers serve
        for n in range(self.rounds):
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
        """Start requests again after :meth:`pause`."""
        self.running.set()

    def sent_after(self, moment: float) -> int:
        """Answers to requests sent after ``moment`` (monotonic)."""
        with self.lock:
            return sum(sent > moment for sent, *_ in self.answers)

    def _round(self, rng: random.Random, seed: int, n: int, headers: dict[str, str]) -> None:
        """Feedback first (after a pause, a worker's first request is a label), then predict."""
        with self.lock:
            known = rng.sample(sorted(self.acknowledged), min(8, len(self.acknowledged)))
            items = [{"prediction_id": i, "label": self.acknowledged[i]} for i in known]
        if items:
            self._post("/feedback", {"labels": items}, headers)
        instances, truth = make_dataset(ROWS, seed * 1_000_000 + n)
        response = self._post("/predict", {"instances": instances}, headers)
        if response.status_code == 200:
            ids = [p["prediction_id"] for p in response.json()["predictions"]]
            with self.lock:
                self.acknowledged.update(zip(ids, truth, strict=True))

    def _post(self, path: str, body: object, headers: dict[str, str]) -> httpx.Response:
        sent = time.monotonic()
        response = httpx.post(f"{self.base_url}{path}", json=body, headers=headers, timeout=30.0)
        with self.lock:
            self.answers.append((sent, time.monotonic(), path, response.status_code))
        return response


@dataclass(frozen=True)
class Outcome:
    """What the clients got back while PostgreSQL restarted."""

    answers: list[Answer]
    acknowledged: dict[str, object]
    """Prediction id → label, for every prediction answered 200."""
    outages: list[tuple[float, float]]
    """(stopped at, accepting connections again at) of each mid-load restart."""

    def failed(self) -> list[Answer]:
        """Every 5xx answer."""
        return [a for a in self.answers if a[3] >= 500]

    def failed_while_down(self) -> list[Answer]:
        """The 5xx answers to requests in flight while PostgreSQL was down mid-load."""
        return [a for a in self.failed() if self._down(a)]

    def failed_while_up(self) -> list[Answer]:
        """The 5xx answers to requests that met PostgreSQL up throughout (there should be none).

        A request in flight when the shutdown began counts as down: a label request whose
        ``COMMIT`` was on its way may have committed, so it is answered 503, not retried.
        """
        return [a for a in self.failed() if not self._down(a)]

    def ok_after_last_restart(self) -> int:
        """200 answers to requests sent once PostgreSQL was back from the last restart."""
        up = self.outages[-1][1]
        return sum(sent > up and status == 200 for sent, _, _, status in self.answers)

    def relative(self, answers: list[Answer]) -> list[Answer]:
        """``answers`` timed from the first mid-load stop, rounded (for messages)."""
        first = self.outages[0][0]
        return [
            (round(sent - first, 2), round(answered - first, 2), path, status)
            for sent, answered, path, status in answers
        ]

    def _down(self, answer: Answer) -> bool:
        sent, answered, *_ = answer
        return any(sent < up and answered >= down for down, up in self.outages)


def restart_under_load(
    cluster: PostgresCluster,
    base_url: str,
    *,
    seconds: float = 0.0,
    after: int = 80,
    rounds: int = 400,
) -> Outcome:
    """Restart ``cluster`` in a pause of the load, then mid-load until ``seconds`` have passed.

    Args:
        cluster: the server's store.
        base_url: the server (2 workers, see :func:`server_env`).
        seconds: keep restarting mid-load until this long since the start (at least once).
        after: answers to wait for after each restart, before the next or the end.
        rounds: each client's bound (:class:`Load`).
    """
    began = time.monotonic()
    load = Load(base_url, rounds=rounds)
    clients = [threading.Thread(target=load.client, args=(s,)) for s in range(CLIENTS)]
    for thread in clients:
        thread.start()
    outages: list[tuple[float, float]] = []
    try:
        wait_for(lambda: len(load.answers) >= 40, timeout=60.0, message="no load", interval=0.1)
        # In a pause: the next requests of both workers meet only dead connections.
        load.pause()
        cluster.stop_server()
        cluster.start()
        resumed_at = time.monotonic()
        load.resume()
        _await_load(load, resumed_at, 40)
        while not outages or time.monotonic() - began < seconds:
            down_at = time.monotonic()
            cluster.stop_server()
            cluster.start()
            outages.append((down_at, time.monotonic()))
            _await_load(load, outages[-1][1], after)
    finally:
        load.stop.set()
        load.resume()
        for thread in clients:
            thread.join(timeout=60.0)
    with load.lock:
        return Outcome(list(load.answers), dict(load.acknowledged), outages)


def _await_load(load: Load, since: float, answers: int) -> None:
    wait_for(
        lambda: load.sent_after(since) >= answers,
        timeout=120.0,
        message=f"fewer than {answers} answers after a restart",
        interval=0.1,
    )


def stored_ids(cluster: PostgresCluster) -> set[str]:
    """Every prediction id in the store (the default schema)."""
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        return {pid for (pid,) in conn.execute("SELECT prediction_id FROM monitor.predictions")}


def spooled(base_url: str) -> int | None:
    """Requests waiting in the server's spool (``/monitor``), or None if it did not answer."""
    response = httpx.get(f"{base_url}/monitor", timeout=30.0)
    return int(response.json()["spooled_requests"]) if response.status_code == 200 else None
