"""SQLite against PostgreSQL on the store's hot paths, in one run, with ratios.

Fills each store with ``--rows`` predictions (requests of ``--batch`` rows, each
with ~30 pre-summed aggregate cells, as the monitor writes them), by one thread
and by ``--threads`` threads; labels a fifth of them; times a 24 h-style window
sum. PostgreSQL is a private cluster on 127.0.0.1 (``harness/postgres.py``),
so the figures are loopback ones: a networked server adds its round-trip time to
each of the few round trips per request.

    python -m bench.store_compare --rows 100000
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from harness.postgres import PostgresCluster
from instrumentation import SQLiteStore
from instrumentation.store.buckets import bucket_of
from instrumentation.store.postgres import PostgresStore
from instrumentation.store.protocol import (
    Increments,
    Label,
    PredictionRecord,
    PredictionStore,
    per_label,
)

T0 = 1_800_000_000.0
CLASSES = ("fraud", "legit")


def _request(n: int, start: int, rng: random.Random) -> tuple[list[PredictionRecord], Increments]:
    records, increments = [], Increments()
    for i in range(start, start + n):
        created = T0 + i * 0.05  # 100k rows span ~83 minutes of buckets
        label = rng.choice(CLASSES)
        records.append(
            PredictionRecord(
                f"p{i}",
                "v1",
                created,
                label,
                None,
                (0.3, 0.7),
                {"region": f"r{i % 5}"},
                "1" * 32,
                "2" * 16,
            )
        )
        bucket = bucket_of(created)
        increments.add("v1", bucket, ("predictions",))
        increments.add("v1", bucket, ("predicted", label))
        for feature in range(12):
            increments.add("v1", bucket, ("drift", f"f{feature}", str(rng.randrange(10))))
        increments.add("v1", bucket, ("score_sum", label), 0.7)
    return records, increments


@per_label
def _aggregate(record: PredictionRecord, label: Label, now: float, out: Increments) -> None:
    bucket = bucket_of(now)
    out.add(record.version, bucket, ("labels",))
    out.add(record.version, bucket, ("confusion", str(label), str(record.label)))
    out.add(record.version, bucket, ("group_confusion", record.groups["region"], str(label)))


def _fill(store: PredictionStore, rows: int, batch: int, threads: int) -> float:
    """Seconds to add ``rows`` predictions in requests of ``batch`` from ``threads`` threads."""
    starts = list(range(0, rows, batch))

    def send(start: int) -> None:
        records, increments = _request(min(batch, rows - start), start, random.Random(start))
        store.add_predictions("m", records, increments, max_group_values=50)

    began = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(send, starts))
    return time.perf_counter() - began


def _label(store: PredictionStore, ids: list[str], batch: int) -> float:
    began = time.perf_counter()
    for start in range(0, len(ids), batch):
        labels: list[tuple[str, Label | None]] = [(p, "fraud") for p in ids[start : start + batch]]
        store.apply_labels("m", labels, now=T0 + 6000, ttl=86400, aggregate=_aggregate)
    return time.perf_counter() - began


def _window_ms(store: PredictionStore, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        store.sum_aggregates("m", "v1", since_bucket=0)
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


@contextmanager
def _stores(workdir: Path) -> Iterator[dict[str, Callable[[str], PredictionStore]]]:
    with PostgresCluster.start_new() as cluster:
        yield {
            "sqlite": lambda name: SQLiteStore(workdir / f"{name}.db"),
            "postgresql": lambda name: PostgresStore(cluster.url(), schema=name),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=10, help="rows per request")
    parser.add_argument("--threads", type=int, default=4, help="for the concurrent fill")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-stores-"))
    labelled = [f"p{i}" for i in range(0, args.rows, 5)]
    results: dict[str, dict[str, float]] = {}
    with _stores(workdir) as openers:
        for name, opener in openers.items():
            serial, concurrent = opener(f"{name}_serial"), opener(f"{name}_threads")
            results[name] = {
                "predictions/s, 1 thread": args.rows / _fill(serial, args.rows, args.batch, 1),
                f"predictions/s, {args.threads} threads": args.rows
                / _fill(concurrent, args.rows, args.batch, args.threads),
                "labels/s": len(labelled) / _label(serial, labelled, args.batch),
                "sum_aggregates ms": _window_ms(serial, args.repeats),
            }
            serial.close()
            concurrent.close()
    print(f"{args.rows} predictions in requests of {args.batch}; {len(labelled)} labels")
    print(f"{'':28} {'sqlite':>10} {'postgresql':>11} {'pg/sqlite':>10}")
    for metric in results["sqlite"]:
        lite, pg = results["sqlite"][metric], results["postgresql"][metric]
        print(f"{metric:28} {lite:10.1f} {pg:11.1f} {pg / lite:10.2f}")


if __name__ == "__main__":
    main()
