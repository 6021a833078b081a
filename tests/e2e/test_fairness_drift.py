"""Fairness and drift on a real 2-worker ``bentoml serve``, checked against fairlearn and numpy.

Each test starts its own server exporting to an in-test OTLP receiver, sends
generated traffic, and compares ``GET /monitor`` and the exported gauges with
the reference libraries computed on exactly the rows it sent.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pytest
from fairlearn.metrics import (
    MetricFrame,
)
from fairlearn_reference import AGGS, DISPARITIES, EQUALIZED_ODDS, METHODS, RATES
from scipy.spatial.distance import jensenshannon

from harness.otlp import GaugeKey, OTLPReceiver, gauge_key, wait_for
from harness.serving import Server
from instrumentation.metrics.drift import PSI_EPSILON
from service.train import Shift, make_dataset

from .conftest import StartServer
from .traffic import (
    MODEL,
    expected_psi,
    ok_json,
    otlp_env,
    post_concurrently,
    reference_counts,
)

pytestmark = pytest.mark.e2e

WINDOWS = ("5m", "1h")
MIN_GROUP_SAMPLES = 5
EXPORT_INTERVAL_MS = 500
GAUGE_WAIT = 20.0
TOLERANCE = 1e-9
POSITIVE = "fraud"
MISSING = "__missing__"


def server_env(receiver: OTLPReceiver) -> dict[str, str]:
    return {
        **otlp_env(receiver, interval_ms=EXPORT_INTERVAL_MS),
        "MONITOR_WINDOWS": ",".join(WINDOWS),
        "MONITOR_MIN_GROUP_SAMPLES": str(MIN_GROUP_SAMPLES),
    }


def predict_all(
    server: Server, instances: list[dict[str, Any]], *, batch: int
) -> tuple[str, list[dict[str, Any]]]:
    """POST ``instances`` in concurrent batches; the model version and predictions in order."""
    bodies = [{"instances": instances[i : i + batch]} for i in range(0, len(instances), batch)]
    results = [ok_json(r) for r in post_concurrently(server.base_url, "/predict", bodies)]
    versions = {body["model"]["version"] for body in results}
    assert len(versions) == 1, versions
    predictions = [p for body in results for p in body["predictions"]]
    assert len(predictions) == len(instances)
    return versions.pop(), predictions


def monitor(server: Server) -> dict[str, Any]:
    with server.client() as client:
        snapshot: dict[str, Any] = ok_json(client.get("/monitor"))
    return snapshot


def close(ours: float | None, expected: float, what: str) -> None:
    """``ours`` equals a reference float to TOLERANCE; NaN there is ``None`` here."""
    if math.isnan(expected):
        assert ours is None, f"{what}: {ours} where the reference is NaN"
    else:
        assert ours is not None, f"{what}: None where the reference is {expected}"
        assert ours == pytest.approx(expected, abs=TOLERANCE), what


def latest_export(
    receiver: OTLPReceiver,
    prefix: str,
    ready: Callable[[dict[GaugeKey, float]], bool],
    describe: Callable[[dict[GaugeKey, float]], str],
) -> dict[GaugeKey, float]:
    """The newest collection of ``prefix`` gauges for which ``ready`` holds (bounded wait)."""

    def probe() -> dict[GaugeKey, float] | None:
        for _, values in reversed(receiver.gauge_exports(prefix)):
            if ready(values):
                return values
        return None

    def message() -> str:
        exports = receiver.gauge_exports(prefix)
        if not exports:
            return f"no {prefix}* gauges received"
        return f"{len(exports)} exports of {prefix}*, the newest: {describe(exports[-1][1])}"

    return wait_for(probe, timeout=GAUGE_WAIT, message=message, interval=0.2)


# --- fairness --------------------------------------------------------------------------


def denominators(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, int]:
    """Each rate's sample count: rows, rows, predicted positives, positives, negatives."""
    n = len(y_true)
    return {
        "selection_rate": n,
        "accuracy": n,
        "precision": int(y_pred.sum()),
        "tpr": int(y_true.sum()),
        "fpr": int(n - y_true.sum()),
    }


class FairlearnReference:
    """fairlearn 0.15 and sklearn on the labelled rows of one sensitive attribute."""

    def __init__(self, y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray) -> None:
        sizes = {str(g): int((groups == g).sum()) for g in np.unique(groups)}
        self.small = {g: n for g, n in sizes.items() if n < MIN_GROUP_SAMPLES}
        frame = MetricFrame(metrics=RATES, y_true=y_true, y_pred=y_pred, sensitive_features=groups)
        self.overall = {k: float(v) for k, v in frame.overall.items()}
        self.overall_n = denominators(y_true, y_pred)
        self.by_group = {
            str(g): {k: float(v) for k, v in row.items()}
            for g, row in frame.by_group.iterrows()
            if str(g) not in self.small
        }
        self.group_n = {
            g: denominators(y_true[groups == g], y_pred[groups == g]) for g in self.by_group
        }
        # Groups below MONITOR_MIN_GROUP_SAMPLES are left out of the disparities:
        # they equal fairlearn's on the rows of the remaining groups.
        keep = ~np.isin(groups, list(self.small))
        t, p, s = y_true[keep], y_pred[keep], groups[keep]
        self.kept_rows = int(keep.sum())
        self.disparities: dict[str, Any] = {
            name: {m: fn(t, p, sensitive_features=s, method=m) for m in METHODS}
            for name, fn in DISPARITIES.items()
        }
        for name, fn in EQUALIZED_ODDS.items():
            self.disparities[name] = {
                agg: {m: fn(t, p, sensitive_features=s, method=m, agg=agg) for m in METHODS}
                for agg in AGGS
            }

    def disparity_leaves(self) -> list[tuple[str, dict[str, str], float]]:
        """(metric, extra gauge attributes, fairlearn value) for every disparity figure."""
        leaves = []
        for name, node in self.disparities.items():
            if name in EQUALIZED_ODDS:
                for agg in AGGS:
                    for m in METHODS:
                        attrs = {"ml.fairness.agg": agg, "ml.fairness.method": m}
                        leaves.append((name, attrs, float(node[agg][m])))
            else:
                for m in METHODS:
                    leaves.append((name, {"ml.fairness.method": m}, float(node[m])))
        return leaves


def check_rates(
    report: Mapping[str, Any], rates: Mapping[str, float], n: Mapping[str, int]
) -> None:
    for rate, expected in rates.items():
        leaf = report[rate]
        assert leaf["n"] == n[rate], rate
        if n[rate] == 0:  # honest None where fairlearn/sklearn give 0.0 or NaN
            assert leaf["value"] is None and (expected == 0.0 or math.isnan(expected)), rate
        else:
            close(leaf["value"], expected, rate)
            assert leaf["lower"] <= leaf["value"] <= leaf["upper"], rate


def check_fairness_block(block: Mapping[str, Any], ref: FairlearnReference) -> None:
    assert set(block["groups"]) == set(ref.by_group) | set(ref.small)
    for group, n in ref.small.items():
        assert block["groups"][group] == {"n": n, "insufficient_data": True}
    for group, rates in ref.by_group.items():
        assert block["groups"][group]["n"] == ref.group_n[group]["accuracy"]
        check_rates(block["groups"][group], rates, ref.group_n[group])
    check_rates(block["overall"], ref.overall, ref.overall_n)
    for name, attrs, expected in ref.disparity_leaves():
        node = block["disparities"][name]
        if "ml.fairness.agg" in attrs:
            node = node[attrs["ml.fairness.agg"]]
        leaf = node[attrs["ml.fairness.method"]]
        close(leaf["value"], expected, f"{name} {attrs}")
        assert leaf["n"] == ref.kept_rows


def expected_fairness_gauges(
    refs: Mapping[str, FairlearnReference],
    snapshot: Mapping[str, Any],
    base: Mapping[str, str],
) -> dict[GaugeKey, float]:
    """Every ``ml.fairness.*`` series the lease holder must export, with its value.

    Values and sample counts come from fairlearn/numpy; only the Wilson bounds are
    taken from ``GET /monitor`` (the exported figure must be the reported one).
    """
    expected: dict[GaugeKey, float] = {}
    for window in WINDOWS:
        for attribute, ref in refs.items():
            attrs = {**base, "ml.window": window, "ml.sensitive_attribute": attribute}
            report = snapshot["windows"][window]["fairness"][attribute]["groups"]
            for group, rates in ref.by_group.items():
                at = {**attrs, "ml.group": group}
                for rate, value in rates.items():
                    expected[gauge_key(f"ml.fairness.{rate}.samples", at)] = ref.group_n[group][
                        rate
                    ]
                    if ref.group_n[group][rate] == 0:
                        continue  # undefined: no value, no interval
                    expected[gauge_key(f"ml.fairness.{rate}", at)] = value
                    for bound in ("lower", "upper"):
                        expected[gauge_key(f"ml.fairness.{rate}.{bound}", at)] = report[group][
                            rate
                        ][bound]
            for name, extra, value in ref.disparity_leaves():
                at = {**attrs, **extra}
                expected[gauge_key(f"ml.fairness.{name}.samples", at)] = ref.kept_rows
                if not math.isnan(value):
                    expected[gauge_key(f"ml.fairness.{name}", at)] = value
    return expected


def test_fairness_by_group_equals_fairlearn(
    receiver: OTLPReceiver, start_server: StartServer
) -> None:
    # The receiver is requested first so it outlives the server: the server's shutdown
    # flush then reaches it at once instead of retrying against a closed port.
    server = start_server(server_env(receiver))

    # Labels flipped for 45% of region "south": the model is worse there.
    instances, truth = make_dataset(600, seed=11, shift=Shift(flip_region="south", flip_rate=0.45))
    tiny, tiny_truth = make_dataset(MIN_GROUP_SAMPLES - 1, seed=12)
    for item in tiny:
        item["groups"]["region"] = "tiny"  # too few rows to report or compare
    bare, bare_truth = make_dataset(MIN_GROUP_SAMPLES + 1, seed=13)
    for item in bare:
        del item["groups"]  # no group values at all: __missing__ for both attributes
    instances += tiny + bare
    truth += tiny_truth + bare_truth
    version, predictions = predict_all(server, instances, batch=25)

    # Labels later, concurrently, for all but every tenth generated row.
    labelled = [i for i in range(len(instances)) if i >= 600 or i % 10 != 3]
    items = [
        {"prediction_id": predictions[i]["prediction_id"], "label": truth[i]} for i in labelled
    ]
    bodies = [{"labels": items[k : k + 30]} for k in range(0, len(items), 30)]
    responses = post_concurrently(server.base_url, "/feedback", bodies, threads=6)
    for body, response in zip(bodies, responses, strict=True):
        assert ok_json(response)["results"] == [
            {"prediction_id": item["prediction_id"], "status": "matched"} for item in body["labels"]
        ]
    repeat = ok_json(post_concurrently(server.base_url, "/feedback", [{"labels": items[:5]}])[0])
    assert repeat["counts"]["duplicate"] == 5  # idempotent: changes nothing below

    snapshot = monitor(server)
    y_true = np.array([truth[i] == POSITIVE for i in labelled], dtype=int)
    y_pred = np.array([predictions[i]["label"] == POSITIVE for i in labelled], dtype=int)
    refs = {
        attribute: FairlearnReference(
            y_true,
            y_pred,
            np.array([instances[i].get("groups", {}).get(attribute, MISSING) for i in labelled]),
        )
        for attribute in ("region", "age_band")
    }
    assert refs["region"].small == {"tiny": MIN_GROUP_SAMPLES - 1}
    assert MISSING in refs["region"].by_group and MISSING in refs["age_band"].by_group
    # The bias is visible: a non-trivial disparity, not a degenerate 0 or 1.
    assert 0.1 < refs["region"].disparities["equal_opportunity_difference"]["between_groups"] < 1

    for window in WINDOWS:
        report = snapshot["windows"][window]
        assert report["n_predictions"] == len(instances)
        assert report["n_labels"] == len(labelled)
        for attribute, ref in refs.items():
            check_fairness_block(report["fairness"][attribute], ref)

    # The exported gauges: the newest collection that reflects every label.
    base = {"ml.model.name": MODEL, "ml.model.version": version}
    expected = expected_fairness_gauges(refs, snapshot, base)
    samples = {k: v for k, v in expected.items() if k[0].endswith(".samples")}

    def complete(values: dict[GaugeKey, float]) -> bool:
        return all(values.get(k) == n for k, n in samples.items())

    def describe(values: dict[GaugeKey, float]) -> str:
        missing = [k for k, n in samples.items() if values.get(k) != n]
        return f"{len(missing)} of {len(samples)} sample counts differ, e.g. {missing[:2]}"

    exported = latest_export(receiver, "ml.fairness.", complete, describe)
    assert set(exported) == set(expected), (
        f"unexpected series {sorted(set(exported) - set(expected))[:3]}, "
        f"missing {sorted(set(expected) - set(exported))[:3]}"
    )
    for key, value in expected.items():
        assert exported[key] == pytest.approx(value, abs=TOLERANCE), key


# --- drift and the estimate before labels ----------------------------------------------


def test_drift_and_estimate_before_labels(
    receiver: OTLPReceiver, start_server: StartServer
) -> None:
    # The receiver is requested first so it outlives the server: the server's shutdown
    # flush then reaches it at once instead of retrying against a closed port.
    server = start_server(server_env(receiver))
    empty = monitor(server)["windows"]["1h"]
    assert empty["drift"]["features"]["amount"]["psi"] == {
        "value": None,
        "n": 0,
        "lower": None,
        "upper": None,
    }
    assert empty["drift"]["features"]["amount"]["drifted"] is None

    # Baseline-like traffic, except that every amount is three times larger.
    instances: list[dict[str, Any]] = []
    predictions: list[dict[str, Any]] = []
    for round_ in range(4):
        batch, _ = make_dataset(200, seed=20 + round_, shift=Shift(amount_scale=3.0))
        version, predicted = predict_all(server, batch, batch=40)
        instances += batch
        predictions += predicted
    n = len(instances)
    snapshot = monitor(server)

    spec_path = server.home / "models" / MODEL / version / "monitor-spec.json"
    reference = json.loads(spec_path.read_text())["reference"]
    columns: dict[str, Sequence[Any]] = {
        name: [item["features"][name] for item in instances] for name in reference["features"]
    }
    outputs: dict[str, Sequence[Any]] = {
        "label": [p["label"] for p in predictions],
        "score": [p["scores"][POSITIVE] for p in predictions],
    }
    assert set(outputs) == set(reference["prediction"])
    assert PSI_EPSILON == 1e-4  # the floor the README documents

    def expected_stats(ref: Mapping[str, Any], values: Sequence[Any]) -> dict[str, float]:
        counts = reference_counts(ref, values)
        return {
            "psi": expected_psi(ref, values, epsilon=PSI_EPSILON),
            "js_distance": float(jensenshannon(ref["shares"], counts / counts.sum(), base=2)),
        }

    features = {f: expected_stats(reference["features"][f], v) for f, v in columns.items()}
    prediction = {o: expected_stats(reference["prediction"][o], v) for o, v in outputs.items()}
    for window in WINDOWS:
        report = snapshot["windows"][window]
        drift = report["drift"]
        threshold = drift["psi_threshold"]
        assert threshold == 0.2
        assert set(drift["features"]) == set(features)
        for section, stats in (("features", features), ("prediction", prediction)):
            for name, expected in stats.items():
                got = drift[section][name]
                for statistic, value in expected.items():
                    assert got[statistic]["n"] == n
                    close(got[statistic]["value"], value, f"{window} {name} {statistic}")
        psi = {f: drift["features"][f]["psi"]["value"] for f in features}
        assert psi["amount"] >= threshold and drift["features"]["amount"]["drifted"] is True
        for feature in set(features) - {"amount"}:
            assert psi[feature] < threshold, (feature, psi[feature])
            assert drift["features"][feature]["drifted"] is False, feature

        # No label yet: realised quality is honestly undefined, the estimate is not.
        assert report["n_labels"] == 0
        assert report["quality"]["accuracy"]["value"] is None
        estimate = report["estimated"]["accuracy"]
        confidence = [max(p["scores"].values()) for p in predictions]
        close(estimate["value"], float(np.mean(confidence)), f"{window} estimated accuracy")
        assert estimate["n"] == n
        assert 0.0 <= estimate["lower"] < estimate["value"] < estimate["upper"] <= 1.0

    # The exported gauges: the newest collection covering every prediction.
    base = {"ml.model.name": MODEL, "ml.model.version": version, "ml.window": "1h"}

    def at(feature: str) -> dict[str, str]:
        return {**base, "ml.feature": feature}

    def complete(values: dict[GaugeKey, float]) -> bool:
        return all(values.get(gauge_key("ml.drift.psi.samples", at(f))) == n for f in features)

    def describe(values: dict[GaugeKey, float]) -> str:
        return str({f: values.get(gauge_key("ml.drift.psi.samples", at(f))) for f in features})

    exported = latest_export(receiver, "ml.", complete, describe)
    for feature, expected in features.items():
        value = exported[gauge_key("ml.drift.psi", at(feature))]
        assert value == pytest.approx(expected["psi"], abs=TOLERANCE), feature
        drifted = exported[gauge_key("ml.drift.drifted", at(feature))]
        if feature == "amount":
            assert value >= threshold and drifted == 1.0
        else:
            assert value < threshold and drifted == 0.0, feature
    accuracy = snapshot["windows"]["1h"]["estimated"]["accuracy"]
    for suffix, field in (
        ("", "value"),
        (".lower", "lower"),
        (".upper", "upper"),
        (".samples", "n"),
    ):
        exported_figure = exported[gauge_key(f"ml.estimated.accuracy{suffix}", base)]
        assert exported_figure == pytest.approx(accuracy[field], abs=TOLERANCE), suffix
