"""Feedback ingest against a served model: labels per second for batches of 1, 100 and 1000.

Starts a real ``bentoml serve`` (2 workers, SQLite store), makes predictions,
then sends their labels in batches of each size from 4 client threads and reports
labels/s and the median request time; the ratio column is throughput relative to
batches of 1 measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench._common import trained_home
from service.train import make_dataset
from tests.harness.serving import Server


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=6000, help="labels per batch size")
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-feedback-"))
    server = Server(workdir, trained_home(), {"MONITOR_MAX_BATCH": "1000"})
    with server, server.client() as client:
        print(f"{'batch':>5} {'labels/s':>9} {'x batch=1':>9} {'median req ms':>13}")
        baseline = None
        for batch in (1, 100, 1000):
            n = args.labels if batch > 1 else min(args.labels, 1500)
            instances, truth = make_dataset(n, seed=batch)
            ids = _predict_ids(client, instances)
            items = [{"prediction_id": i, "label": t} for i, t in zip(ids, truth, strict=True)]
            batches = [items[s : s + batch] for s in range(0, len(items), batch)]
            start = time.perf_counter()
            with ThreadPoolExecutor(args.threads) as pool:
                times = list(pool.map(lambda b: _send(client, b), batches))
            rate = len(items) / (time.perf_counter() - start)
            baseline = baseline or rate
            print(
                f"{batch:>5} {rate:9.0f} {rate / baseline:9.1f} "
                f"{statistics.median(times) * 1e3:13.2f}"
            )


if __name__ == "__main__":
    main()
