"""Shared helpers of the in-process API tests: bodies, calls and expected shapes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import joblib
from starlette.testclient import TestClient

from instrumentation import ModelSpec
from service.train import make_dataset

REPO = Path(__file__).resolve().parents[2]
MODEL = "fraud-detector"
CLASSES = ["legit", "fraud"]
FEATURES = "amount, hour, account_age_days, transactions_24h, merchant_category, channel"
STATUSES = ("matched", "duplicate", "conflict", "unknown", "invalid", "expired")


def error_text(response: Any) -> str:
    """The ``error`` text of a 4xx body (BentoML wraps its own exceptions' body in a list)."""
    body = response.json()
    if isinstance(body, list):
        (body,) = body
    return str(body["error"])


def instances_of(n: int, seed: int = 0) -> list[dict[str, Any]]:
    return make_dataset(n, seed)[0]


def predict_ok(client: TestClient, instances: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    response = client.post("/predict", json={"instances": list(instances)})
    assert response.status_code == 200, response.text
    return list(response.json()["predictions"])


def send_feedback(client: TestClient, labels: Sequence[tuple[str, Any]], **kwargs: Any) -> Any:
    body = {"labels": [{"prediction_id": pid, "label": label} for pid, label in labels]}
    return client.post("/feedback", json=body, **kwargs)


def status_counts(**nonzero: int) -> dict[str, int]:
    return {status: nonzero.get(status, 0) for status in STATUSES}


def stored_model(trained_home: Path, model: str) -> tuple[Any, ModelSpec]:
    root = trained_home / "models" / model
    version = (root / "latest").read_text().strip()
    spec = ModelSpec.from_dict(json.loads((root / version / "monitor-spec.json").read_text()))
    return joblib.load(root / version / "model.pkl"), spec.with_version(version)


def served_version(client: TestClient) -> str:
    return str(client.get("/monitor").json()["model"]["version"])
