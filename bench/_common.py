"""Shared helpers: median timing loops and a scratch BENTOML_HOME holding the demo models."""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from harness.serving import REPO
from service.predictor import Predictor
from service.train import train


def timings(func: Callable[[], object], *, repeats: int, warmup: int = 3) -> list[float]:
    """Wall time of each of ``repeats`` calls of ``func``, after ``warmup`` calls."""
    for _ in range(warmup):
        func()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return times


def median_seconds(func: Callable[[], object], *, repeats: int, warmup: int = 3) -> float:
    """Median wall time of ``func`` over ``repeats`` calls after ``warmup`` calls."""
    return statistics.median(timings(func, repeats=repeats, warmup=warmup))


def p99(times: list[float]) -> float:
    """The 99th percentile (nearest rank) of ``times``."""
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, max(0, round(0.99 * len(ordered)) - 1))]


def demo_predictor() -> Predictor:
    """The demo fraud model, trained in process, with its spec stamped version ``bench``."""
    estimator, spec = train("fraud-detector")
    return Predictor(estimator, spec.with_version("bench"))


def trained_home() -> Path:
    """A fresh BENTOML_HOME holding the demo models (trained here, a few seconds)."""
    home = Path(tempfile.mkdtemp(prefix="bench-bentoml-"))
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}
    subprocess.run(
        [sys.executable, "-m", "service.train"], cwd=REPO, env=env, check=True, capture_output=True
    )
    return home


@contextlib.contextmanager
def store_urls(store: str) -> Iterator[tuple[Callable[[str], str | None], int | None]]:
    """A ``MONITOR_STORE_URL`` per tag for ``store``, and the database server's pid.

    SQLite: no URL (each server's own file) and no pid. PostgreSQL: a private cluster,
    started here and stopped on exit, a schema per tag (the tag must be a schema name).
    """
    if store == "sqlite":
        yield (lambda tag: None), None
        return
    # Imported here: psycopg is only loaded where PostgreSQL is used.
    from harness.postgres import PostgresCluster

    with PostgresCluster.start_new() as cluster:
        assert cluster.process is not None and cluster.process.proc is not None
        yield (lambda tag: cluster.url(schema=tag)), cluster.process.proc.pid
