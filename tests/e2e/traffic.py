"""Request bodies and concurrent HTTP traffic for end-to-end tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from numpy.typing import NDArray

from harness.otlp import OTLPReceiver
from harness.serving import REPO, clean_environ
from service.train import make_dataset

MODEL = "fraud-detector"
"""The model ``bentoml serve`` serves by default (and the store's model key)."""


def otlp_env(receiver: OTLPReceiver, *, interval_ms: int) -> dict[str, str]:
    """Server environment exporting every span and metric to ``receiver`` over gRPC."""
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_METRIC_EXPORT_INTERVAL": str(interval_ms),
        "MONITOR_TRACE_SAMPLE_RATE": "1.0",
    }


def labelled_body(
    n: int, seed: int, *, ids: Sequence[str] | None = None
) -> tuple[dict[str, Any], list[Any]]:
    """A valid ``/predict`` body of ``n`` generated instances (client ids if given), and labels."""
    instances, labels = make_dataset(n, seed)
    if ids is not None:
        assert len(ids) == n
        for instance, client_id in zip(instances, ids, strict=True):
            instance["id"] = client_id
    return {"instances": instances}, labels


def predict_body(n: int, seed: int, *, ids: Sequence[str] | None = None) -> dict[str, Any]:
    """A valid ``/predict`` body of ``n`` generated instances, with client ids if given."""
    return labelled_body(n, seed, ids=ids)[0]


def post_concurrently(
    base_url: str, path: str, bodies: Sequence[Any], *, threads: int = 8
) -> list[httpx.Response]:
    """POST each body from ``threads`` threads, each on a fresh connection, in body order.

    ``Connection: close`` makes every request a new TCP connection, which the kernel
    hands to whichever worker accepts first: that is what spreads work over workers.
    """
    headers = {"connection": "close"}

    def post(body: Any) -> httpx.Response:
        return httpx.post(f"{base_url}{path}", json=body, headers=headers, timeout=30.0)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(post, bodies))


def ok_json(response: httpx.Response) -> Any:
    """The JSON body of a 200 response (fails with the body otherwise)."""
    assert response.status_code == 200, f"{response.status_code}: {response.text}"
    return response.json()


def trace_id(response: httpx.Response) -> str:
    """The request's trace id (hex) from BentoML's ``x-bentoml-trace-id`` header."""
    return response.headers["x-bentoml-trace-id"]


# --- drift arithmetic done independently of the library, for comparisons -------------


def reference_counts(reference: Mapping[str, Any], values: Sequence[Any]) -> NDArray[np.float64]:
    """Counts of ``values`` in the bins of one saved reference (``monitor-spec.json``).

    Numeric bins are (−inf, e0], (e0, e1], …, (e_last, +inf) (``searchsorted`` left);
    categories are compared as strings, anything not in the reference counts in its
    last (unseen) bin.
    """
    size = len(reference["shares"])
    if reference["kind"] == "numeric":
        index = np.searchsorted(np.asarray(reference["edges"]), np.asarray(values, dtype=float))
    else:
        known = {c: i for i, c in enumerate(reference["categories"][:-1])}
        index = np.array([known.get(str(v), size - 1) for v in values])
    return np.bincount(index, minlength=size).astype(float)


def expected_psi(reference: Mapping[str, Any], values: Sequence[Any], *, epsilon: float) -> float:
    """PSI = Σ (ref − cur)·ln(ref / cur) over the reference bins, both shares floored."""
    counts = reference_counts(reference, values)
    ref = np.maximum(np.asarray(reference["shares"], dtype=float), epsilon)
    cur = np.maximum(counts / counts.sum(), epsilon)
    return float(np.sum((ref - cur) * np.log(ref / cur)))


def shared_store(tmp_path: Path) -> dict[str, str]:
    """One SQLite store (and spool) for servers that follow each other, as in a deploy."""
    return {
        "MONITOR_STORE_URL": f"sqlite:///{tmp_path / 'shared' / 'store.db'}",
        "MONITOR_SPOOL_DIR": str(tmp_path / "spool"),
    }


def save_another_version(home: Path) -> tuple[str, str]:
    """Save the demo model again in ``home`` (a BENTOML_HOME): ``(previous, newest)`` versions."""
    latest = home / "models" / MODEL / "latest"
    previous = latest.read_text().strip()
    env = {**clean_environ(), "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}
    subprocess.run(
        [sys.executable, "-m", "service.train", "--model", MODEL],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
    )
    newest = latest.read_text().strip()
    assert newest != previous, "saving the model again made no new version"
    return previous, newest
