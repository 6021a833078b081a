"""The demo's client side: request statistics and a feedback pipeline that answers late."""

from __future__ import annotations

import heapq
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Stats:
    """Client-side counters, shared by the traffic threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies_ms: list[float] = field(default_factory=list)
    requests: int = 0
    rows: int = 0
    errors: int = 0
    labels_sent: int = 0
    feedback_counts: dict[str, int] = field(default_factory=dict)


class LabelPipeline:
    """Sends each prediction's true label ``delay`` seconds later, in batches.

    Adds ~2% duplicates (same label again) and ~1% unknown ids, as a real
    feedback source would.
    """

    def __init__(self, client: httpx.Client, stats: Stats, *, delay: float, seed: int) -> None:
        self._client = client
        self._stats = stats
        self._delay = delay
        self._rng = random.Random(seed)
        self._queue: list[tuple[float, str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> LabelPipeline:
        """Start the sending thread."""
        self._thread.start()
        return self

    def add(self, ids: Sequence[str], labels: Sequence[Any]) -> None:
        """Queue the true labels of predictions just made."""
        due = time.monotonic() + self._delay
        with self._lock:
            for pid, label in zip(ids, labels, strict=True):
                heapq.heappush(self._queue, (due, pid, label))

    def _due(self, now: float) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        with self._lock:
            while self._queue and self._queue[0][0] <= now and len(items) < 500:
                _, pid, label = heapq.heappop(self._queue)
                items.append({"prediction_id": pid, "label": label})
        extra = [dict(i) for i in items if self._rng.random() < 0.02]
        if items and self._rng.random() < 0.3:
            extra.append(
                {"prediction_id": f"unknown-{self._rng.getrandbits(32):x}", "label": "legit"}
            )
        return items + extra

    def _send(self, items: list[dict[str, Any]]) -> None:
        response = self._client.post("/feedback", json={"labels": items})
        response.raise_for_status()
        counts = response.json()["counts"]
        with self._stats.lock:
            self._stats.labels_sent += len(items)
            for status, n in counts.items():
                self._stats.feedback_counts[status] = self._stats.feedback_counts.get(status, 0) + n

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            items = self._due(time.monotonic())
            if items:
                self._send(items)

    def drain(self) -> None:
        """Send everything still queued now, then stop."""
        self._stop.set()
        self._thread.join()
        while items := self._due(float("inf")):
            self._send(items)

    def pending(self) -> int:
        """Labels not yet sent."""
        with self._lock:
            return len(self._queue)


def predict_batch(
    client: httpx.Client, stats: Stats, labels: LabelPipeline, batch: list[Any], truth: list[Any]
) -> None:
    """Send one ``/predict`` request; record its latency and hand its ids to ``labels``."""
    started = time.perf_counter()
    try:
        response = client.post("/predict", json={"instances": batch})
        response.raise_for_status()
    except httpx.HTTPError:
        with stats.lock:
            stats.errors += 1
        return
    elapsed = (time.perf_counter() - started) * 1000.0
    ids = [p["prediction_id"] for p in response.json()["predictions"]]
    labels.add(ids, truth)
    with stats.lock:
        stats.latencies_ms.append(elapsed)
        stats.requests += 1
        stats.rows += len(ids)
