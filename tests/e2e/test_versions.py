"""A deploy does not blind the monitor: labels for v1's predictions keep completing v1's figures.

v1 serves and predicts; v2 of the same model is deployed on the same store; the labels
for v1's predictions arrive after the deploy. ``GET /monitor`` on v2 and the gauges v2's
workers export to a real OTLP receiver both show v1's figures, each equal to scikit-learn
on v1's rows, next to v2's, and the counters carry the version that predicted.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.metrics import accuracy_score, recall_score

from harness.otlp import SERVICE_INSTANCE_ID, OTLPReceiver, gauge_key, wait_for
from harness.serving import copy_home

from .conftest import StartServer
from .traffic import (
    MODEL,
    labelled_body,
    ok_json,
    otlp_env,
    save_another_version,
    shared_store,
)

pytestmark = pytest.mark.e2e


def test_labels_after_a_deploy_keep_the_old_versions_figures_alive(
    tmp_path: Path, trained_home: Path, receiver: OTLPReceiver, start_server: StartServer
) -> None:
    home = copy_home(trained_home, tmp_path)
    v1, v2 = save_another_version(home)
    shared = shared_store(tmp_path)
    old = start_server({**shared, "MONITOR_MODEL": f"{MODEL}:{v1}"}, home=home)
    body, truth_v1 = labelled_body(40, seed=1200)
    with old.client() as client:
        made_v1 = ok_json(client.post("/predict", json=body))["predictions"]
    old.stop()  # the deploy: v1 no longer serves

    new = start_server(
        {**shared, **otlp_env(receiver, interval_ms=500), "MONITOR_MODEL": f"{MODEL}:{v2}"},
        home=home,
    )
    body, truth_v2 = labelled_body(30, seed=1300)
    with new.client() as client:
        made_v2 = ok_json(client.post("/predict", json=body))["predictions"]
        labels = [
            {"prediction_id": p["prediction_id"], "label": y}
            for p, y in [*zip(made_v1, truth_v1, strict=True), *zip(made_v2, truth_v2, strict=True)]
        ]
        counts = ok_json(client.post("/feedback", json={"labels": labels}))["counts"]
        snapshot = ok_json(client.get("/monitor"))
    assert counts["matched"] == 70

    assert list(snapshot["versions"]) == [v2, v1]
    expected = {}
    for version, made, truth in ((v1, made_v1, truth_v1), (v2, made_v2, truth_v2)):
        predicted = [p["label"] for p in made]
        window = snapshot["versions"][version]["windows"]["5m"]
        expected[version] = accuracy_score(truth, predicted)
        assert window["n_labels"] == len(made)
        assert window["quality"]["accuracy"]["value"] == pytest.approx(expected[version], abs=1e-9)
        assert window["quality"]["recall"]["per_class"]["fraud"]["value"] == pytest.approx(
            recall_score(truth, predicted, pos_label="fraud", zero_division=0), abs=1e-9
        )
    comparison = snapshot["comparison"]
    assert (comparison["version"], comparison["baseline"]) == (v2, v1)
    assert comparison["windows"]["5m"]["accuracy"]["value"] == pytest.approx(
        expected[v2] - expected[v1], abs=1e-9
    )

    # At the receiver: v1's figures come from v2's workers, under v1's version.
    def gauges() -> dict[str, float] | None:
        for _, values in reversed(receiver.gauge_exports("ml.")):
            found = {
                version: values.get(
                    gauge_key(
                        "ml.quality.accuracy",
                        {"ml.model.name": MODEL, "ml.model.version": version, "ml.window": "5m"},
                    )
                )
                for version in (v1, v2)
            }
            if all(v is not None for v in found.values()):
                return {k: float(v) for k, v in found.items() if v is not None}
        return None

    exported = wait_for(gauges, timeout=20.0, message="no per-version accuracy gauges")
    assert exported[v1] == pytest.approx(expected[v1], abs=1e-9)
    assert exported[v2] == pytest.approx(expected[v2], abs=1e-9)
    assert wait_for(
        lambda: confusion_by_version(receiver) == {v1: 40.0, v2: 30.0} or None,
        timeout=20.0,
        message=lambda: f"ml.confusion by version: {confusion_by_version(receiver)}",
    )


def confusion_by_version(receiver: OTLPReceiver) -> dict[str, float]:
    """``ml.confusion`` totals by ``ml.model.version`` (latest cumulative value per stream)."""
    latest: dict[tuple[object, ...], tuple[str, float]] = {}
    for resource, point in receiver.metric_points("ml.confusion"):
        attrs = {a.key: a.value.string_value for a in point.attributes}
        stream = (resource.get(SERVICE_INSTANCE_ID), tuple(sorted(attrs.items())))
        value = float(getattr(point, point.WhichOneof("value")))
        latest[stream] = (attrs["ml.model.version"], max(value, latest.get(stream, ("", 0.0))[1]))
    totals: dict[str, float] = {}
    for version, value in latest.values():
        totals[version] = totals.get(version, 0.0) + value
    return totals
