"""Send generated traffic and its true labels through the API, then read ``GET /monitor``.

Used in-process by the service tests, and as a script in a child process for the
models other than the one ``service.service`` was imported with (the served model is
fixed at import by ``MONITOR_MODEL``)::

    python tests/service/service_roundtrip.py MODEL N SEED   # prints JSON
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any


def service_env(trained_home: Path, workdir: Path, *, model: str) -> dict[str, str]:
    """The environment a service process needs, isolated in ``workdir``."""
    prometheus = workdir / "prometheus"
    prometheus.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONITOR_", "OTEL_"))}
    return {
        **env,
        "BENTOML_HOME": str(trained_home),
        "BENTOML_DO_NOT_TRACK": "true",
        "MONITOR_MODEL": model,
        "MONITOR_STORE_URL": f"sqlite:///{workdir / 'store.db'}",
        "PROMETHEUS_MULTIPROC_DIR": str(prometheus),
    }


def roundtrip(client: Any, *, model: str, n: int, seed: int) -> dict[str, Any]:
    """Predict ``n`` rows of ``make_dataset``, label them all, return everything seen."""
    from service.train import make_dataset

    instances, labels = make_dataset(n, seed, model=model)
    predicted = client.post("/predict", json={"instances": instances})
    assert predicted.status_code == 200, predicted.text
    predictions = predicted.json()["predictions"]
    feedback = client.post(
        "/feedback",
        json={
            "labels": [
                {"prediction_id": p["prediction_id"], "label": y}
                for p, y in zip(predictions, labels, strict=True)
            ]
        },
    )
    assert feedback.status_code == 200, feedback.text
    snapshot = client.get("/monitor")
    assert snapshot.status_code == 200, snapshot.text
    return {
        "labels": labels,
        "predictions": predictions,
        "feedback_counts": feedback.json()["counts"],
        "snapshot": snapshot.json(),
    }


def main(argv: list[str]) -> int:
    """Run one round trip against a freshly imported service; print it as JSON."""
    model, n, seed = argv[0], int(argv[1]), int(argv[2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # only this child's stderr would show them
        from starlette.testclient import TestClient

    from service.service import ModelService

    with TestClient(ModelService.to_asgi()) as client:
        out = roundtrip(client, model=model, n=n, seed=seed)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
