"""Shared helpers: median timing loops and a scratch BENTOML_HOME holding the demo models."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from service.predictor import Predictor
from service.serving import REPO
from service.train import train


def median_seconds(func: Callable[[], object], *, repeats: int, warmup: int = 3) -> float:
    """Median wall time of ``func`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        func()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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
