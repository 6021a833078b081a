"""Feedback ingest: labels per second in process (batches of 1000), then served (1, 100, 1000).

The store is SQLite, or with ``--store postgresql`` a private PostgreSQL cluster on
loopback, started once for the run: the in-process part and the server each get a
schema of their own in it.

In process: ``ModelMonitor.feedback``, every aggregate updated, spans unsampled
(BentoML's default), 1000 labels per call; the figure is the cost of the join and
its cells, without HTTP (the bench's own heap frozen first, as a served worker's
start-up heap is).

Served: a real ``bentoml serve`` (2 workers) on the same kind of store, makes
predictions, then sends their labels in batches of each size from 4 client threads
and reports labels/s and the median request time; the ratio column is throughput
relative to batches of 1 measured in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.sdk.metrics import MeterProvider

from bench._common import demo_predictor, store_urls, trained_home
from harness.serving import Server
from instrumentation import ModelMonitor, PredictionInput, SQLiteStore
from instrumentation.config import StoreURL
from instrumentation.store import open_store
from instrumentation.store.protocol import PredictionStore
from service.train import make_dataset


def _predict_ids(client: httpx.Client, instances: list[Any]) -> list[str]:
    ids: list[str] = []
    for start in range(0, len(instances), 500):
        response = client.post("/predict", json={"instances": instances[start : start + 500]})
        response.raise_for_status()
        ids += [p["prediction_id"] for p in response.json()["predictions"]]
    return ids


def _send(client: httpx.Client, items: list[dict[str, Any]]) -> float:
    start = time.perf_counter()
    response = client.post("/feedback", json={"labels": items})
    response.raise_for_status()
    assert response.json()["counts"]["matched"] == len(items), response.json()["counts"]
    return time.perf_counter() - start


@contextlib.contextmanager
def _store(url: str | None) -> Iterator[PredictionStore]:
    """The store ``url`` names (None: a fresh SQLite file), closed after."""
    if url is None:
        store: PredictionStore = SQLiteStore(
            Path(tempfile.mkdtemp(prefix="bench-feedback-")) / "store.db"
        )
    else:
        store = open_store(StoreURL.parse(url))
    try:
        yield store
    finally:
        store.close()


def in_process(
    labels: int, *, batch: int = 1000, url: str | None = None, passes: int = 3
) -> list[float]:
    """Labels per second through ``ModelMonitor.feedback`` in this process, per pass.

    Each pass labels ``labels`` fresh predictions (``url``: the store; None, a new
    SQLite file per pass). One pass on this shared machine moved by ±30% between
    runs of the same code; callers report the median of the passes.
    """
    rates = []
    for _ in range(passes):
        with _store(url) as store:
            rates.append(_labels_per_second(store, labels, batch))
    return rates


def _labels_per_second(store: PredictionStore, labels: int, batch: int) -> float:
    predictor = demo_predictor()
    spec = predictor.spec
    monitor = ModelMonitor(spec, store, meter_provider=MeterProvider())
    instances, truth = make_dataset(labels, seed=7)
    inputs = [PredictionInput(i["features"], None, i["groups"]) for i in instances]
    ids: list[str] = []
    for start in range(0, labels, batch):
        part = inputs[start : start + batch]
        with monitor.predict(part) as rec:
            classes, scores = predictor.classify([i.features for i in part])
            ids += [r.prediction_id for r in rec.set_outputs(labels=classes, scores=scores)]
    items = list(zip(ids, truth, strict=True))
    # The bench's own heap (the dataset, the predictor, the imports) is out of the
    # collector's reach, as a served worker's start-up heap is (service.py freezes it):
    # a full collection walking 200k objects the join never made is not its cost.
    gc.collect()
    gc.freeze()
    begin = time.perf_counter()
    for start in range(0, labels, batch):
        outcome = monitor.feedback(items[start : start + batch])
        assert outcome.counts["matched"] == len(items[start : start + batch]), outcome.counts
    rate = labels / (time.perf_counter() - begin)
    gc.unfreeze()
    return rate


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Run the bench; returns labels/s ``in_process`` and ``served_<batch>`` per batch size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=6000, help="labels per batch size")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--in-process-only", action="store_true")
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args(argv)
    with store_urls(args.store) as (store_url, _):
        rates = in_process(max(args.labels, 20_000), url=store_url("feedback_in_process"))
        rate = statistics.median(rates)
        figures = {"in_process": rate}
        print(
            f"in process ({args.store}), batches of 1000, every aggregate updated: "
            f"{rate:,.0f} labels/s (median of {len(rates)} passes: "
            f"{', '.join(f'{r:,.0f}' for r in rates)})"
        )
        if not args.in_process_only:
            figures |= served_rates(args.labels, args.threads, store_url("feedback_served"))
    return figures


def served_rates(labels: int, threads: int, url: str | None) -> dict[str, float]:
    """Labels/s ``served_<batch>`` through a 2-worker server (``url``: its store, else SQLite)."""
    env = {"MONITOR_MAX_BATCH": "1000"} | ({"MONITOR_STORE_URL": url} if url else {})
    figures: dict[str, float] = {}
    workdir = Path(tempfile.mkdtemp(prefix="bench-feedback-"))
    server = Server(workdir, trained_home(), env)
    with server, server.client() as client:
        print(f"{'batch':>5} {'labels/s':>9} {'x batch=1':>9} {'median req ms':>13}")
        baseline = None
        for batch in (1, 100, 1000):
            n = labels if batch > 1 else min(labels, 1500)
            instances, truth = make_dataset(n, seed=batch)
            ids = _predict_ids(client, instances)
            items = [{"prediction_id": i, "label": t} for i, t in zip(ids, truth, strict=True)]
            batches = [items[s : s + batch] for s in range(0, len(items), batch)]
            start = time.perf_counter()
            with ThreadPoolExecutor(threads) as pool:
                times = list(pool.map(lambda b: _send(client, b), batches))
            rate = len(items) / (time.perf_counter() - start)
            figures[f"served_{batch}"] = rate
            baseline = baseline or rate
            print(
                f"{batch:>5} {rate:9.0f} {rate / baseline:9.1f} "
                f"{statistics.median(times) * 1e3:13.2f}"
            )
    return figures


if __name__ == "__main__":
    main()
