from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix

from instrumentation.metrics.estimate import (
    _ADD_ERROR,
    _CLASSES_ERROR,
    _REALISED_ERROR,
    _SUMS_SHAPE_ERROR,
    EstimateSums,
    estimated_quality,
    estimation_error,
)
from instrumentation.metrics.quality import (
    _INDEX_ERROR,
    _PROBABILITIES_SUM_ERROR,
    classification_quality,
)

TRIALS = 2000


def _calibrated(rng: np.random.Generator, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores and labels drawn so that the scores are calibrated by construction."""
    if k == 2:
        p1 = rng.uniform(size=n)
        p = np.column_stack([1 - p1, p1])
    else:
        p = rng.dirichlet(np.ones(k), size=n)
    u = rng.uniform(size=(n, 1))
    y = np.minimum((u > np.cumsum(p, axis=1)).sum(axis=1), k - 1)  # y ~ Categorical(p)
    return p, y


def _bulk_sums(p: np.ndarray, predicted: np.ndarray) -> EstimateSums:
    """The same sums as adding ``EstimateSums.from_row`` row by row, built in one go."""
    k = p.shape[1]
    onehot = np.eye(k)[predicted]
    c = p[np.arange(len(p)), predicted]
    return EstimateSums(
        len(p),
        float(c.sum()),
        float((c * c).sum()),
        tuple(int(x) for x in onehot.sum(axis=0)),
        tuple(float(x) for x in (onehot * p).sum(axis=0)),
        tuple(float(x) for x in p.sum(axis=0)),
    )


def _row_sums(p: np.ndarray, predicted: np.ndarray) -> EstimateSums:
    total = EstimateSums.zero(p.shape[1])
    for row, j in zip(p, predicted, strict=True):
        total = total + EstimateSums.from_row(row.tolist(), int(j))
    return total


def _classes(k: int) -> list[str]:
    return [f"c{i}" for i in range(k)]


@pytest.mark.parametrize("k", [2, 3])
def test_realised_accuracy_falls_inside_the_interval_when_calibrated(k: int) -> None:
    # Measured coverage of the continuity-corrected interval is ~96%; over 2000 trials the
    # chance of dropping below 95% with a correct interval is ~1%, with this seed it is fixed.
    rng = np.random.default_rng(20240611 + k)
    inside = 0
    for _ in range(TRIALS):
        n = int(rng.integers(50, 300))
        p, y = _calibrated(rng, n, k)
        predicted = p.argmax(axis=1)
        est = estimated_quality(_bulk_sums(p, predicted), _classes(k))["accuracy"]
        inside += est["lower"] <= float((predicted == y).mean()) <= est["upper"]
    assert 0.95 <= inside / TRIALS <= 0.99


@pytest.mark.parametrize(("power", "sign"), [(3.0, 1.0), (0.3, -1.0)])
@pytest.mark.parametrize("k", [2, 3])
def test_miscalibrated_scores_give_a_signed_estimation_error(
    power: float, sign: float, k: int
) -> None:
    """Scores pushed toward 0/1 (over-confident) over-estimate: error > 0; the reverse < 0."""
    rng = np.random.default_rng(5)
    p, y = _calibrated(rng, 5000, k)
    predicted = p.argmax(axis=1)
    distorted = p**power  # power > 1 pushes toward 0/1, power < 1 toward uniform
    distorted /= distorted.sum(axis=1, keepdims=True)
    estimated = estimated_quality(_bulk_sums(distorted, predicted), _classes(k))
    realised = classification_quality(
        confusion_matrix(y, predicted, labels=list(range(k))), _classes(k)
    )
    error = estimation_error(estimated, realised)
    assert sign * error["accuracy"] > 0.05
    calibrated = estimation_error(
        estimated_quality(_bulk_sums(p, predicted), _classes(k)), realised
    )
    assert abs(calibrated["accuracy"]) < 0.02


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [2, 3, 5])
def test_row_by_row_sums_equal_sums_built_at_once(seed: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(k), size=120)
    predicted = rng.integers(0, k, size=120)  # need not be the argmax (thresholds)
    by_row, bulk = _row_sums(p, predicted), _bulk_sums(p, predicted)
    assert (by_row.n, by_row.predicted_count) == (bulk.n, bulk.predicted_count)
    assert by_row.conf_sum == pytest.approx(bulk.conf_sum, abs=1e-9)
    assert by_row.conf_sq_sum == pytest.approx(bulk.conf_sq_sum, abs=1e-9)
    assert by_row.predicted_prob_sum == pytest.approx(bulk.predicted_prob_sum, abs=1e-9)
    assert by_row.prob_sum == pytest.approx(bulk.prob_sum, abs=1e-9)
    halves = _row_sums(p[:50], predicted[:50]) + _row_sums(p[50:], predicted[50:])
    assert halves.predicted_count == by_row.predicted_count
    assert halves.prob_sum == pytest.approx(by_row.prob_sum, abs=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [2, 3, 4])
def test_expected_confusion_equals_direct_computation(seed: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(k), size=80)
    predicted = p.argmax(axis=1)
    out = estimated_quality(_row_sums(p, predicted), _classes(k))
    confusion = out["expected_confusion"]
    for c in range(k):
        mine = predicted == c
        tp, fp, fn = p[mine, c].sum(), (1 - p[mine, c]).sum(), p[~mine, c].sum()
        assert confusion["tp"][c] == pytest.approx(tp, abs=1e-9)
        assert confusion["fp"][c] == pytest.approx(fp, abs=1e-9)
        assert confusion["fn"][c] == pytest.approx(fn, abs=1e-9)
        name = f"c{c}"
        expected_p = tp / (tp + fp) if mine.any() else None
        expected_r = tp / (tp + fn)
        assert out["precision"]["per_class"][name]["value"] == pytest.approx(expected_p, abs=1e-9)
        assert out["recall"]["per_class"][name]["value"] == pytest.approx(expected_r, abs=1e-9)
        assert out["f1"]["per_class"][name]["value"] == pytest.approx(
            2 * tp / (2 * tp + fp + fn), abs=1e-9
        )
    assert confusion["classes"] == _classes(k)


def test_binary_headline_is_the_positive_class() -> None:
    rows = [([0.9, 0.1], 0), ([0.3, 0.7], 1), ([0.4, 0.6], 1), ([0.8, 0.2], 0)]
    sums = sum((EstimateSums.from_row(p, j) for p, j in rows), EstimateSums.zero(2))
    out = estimated_quality(sums, ["no", "yes"])
    assert out["positive_class"] == "yes"
    for key in ("precision", "recall", "f1"):
        assert out[key]["positive"] == out[key]["per_class"]["yes"]
    assert out["precision"]["positive"]["value"] == pytest.approx(1.3 / 2)  # TP 1.3, FP 0.7
    assert out["recall"]["positive"]["value"] == pytest.approx(1.3 / 1.6)  # FN 0.3
    assert out["precision"]["positive"]["n"] == 2
    accuracy = out["accuracy"]
    assert accuracy["value"] == pytest.approx((0.9 + 0.7 + 0.6 + 0.8) / 4)
    half = (1.959963984540054 * np.sqrt(3.0 - (0.81 + 0.49 + 0.36 + 0.64)) + 0.5) / 4
    assert accuracy["lower"] == pytest.approx(accuracy["value"] - half)
    assert accuracy["upper"] == 1.0  # clipped


def test_multiclass_has_no_positive_headline_and_skips_undefined_classes() -> None:
    sums = EstimateSums.from_row([0.6, 0.3, 0.1], 0) + EstimateSums.from_row([0.2, 0.7, 0.1], 1)
    out = estimated_quality(sums, ["a", "b", "c"])
    assert out["positive_class"] is None
    assert "positive" not in out["precision"]
    assert out["precision"]["per_class"]["c"] == {
        "value": None,
        "n": 0,
        "lower": None,
        "upper": None,
    }
    assert out["precision"]["macro"]["value"] == pytest.approx((0.6 + 0.7) / 2)
    assert out["recall"]["per_class"]["c"]["value"] == 0.0


def test_empty_window_is_undefined() -> None:
    out = estimated_quality(EstimateSums.zero(3), ["a", "b", "c"])
    undefined = {"value": None, "n": 0, "lower": None, "upper": None}
    assert out["accuracy"] == undefined
    for key in ("precision", "recall", "f1"):
        assert out[key]["macro"] == undefined
        assert all(mv == undefined for mv in out[key]["per_class"].values())


def test_estimation_error_is_estimated_minus_realised() -> None:
    estimated = estimated_quality(
        EstimateSums.from_row([0.8, 0.2], 0) + EstimateSums.from_row([0.4, 0.6], 1), ["n", "y"]
    )
    realised = classification_quality([[1, 0], [0, 1]], ["n", "y"])
    error = estimation_error(estimated, realised)
    assert error["accuracy"] == pytest.approx(0.7 - 1.0)
    assert error["precision"]["positive"] == pytest.approx(0.6 - 1.0)
    assert error["precision"]["per_class"]["n"] == pytest.approx(0.8 - 1.0)
    realised_empty = classification_quality([[0, 0], [0, 0]], ["n", "y"])
    assert estimation_error(estimated, realised_empty) == {
        "accuracy": None,
        **{
            key: {"per_class": {"n": None, "y": None}, "macro": None, "positive": None}
            for key in ("precision", "recall", "f1")
        },
    }


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: EstimateSums.from_row([0.5, 0.6], 0), _PROBABILITIES_SUM_ERROR),
        (
            lambda: EstimateSums.from_row([0.5, 0.5], 2),
            _INDEX_ERROR.format(name="predicted_index", k=2, value=2),
        ),
        (lambda: EstimateSums.zero(2) + EstimateSums.zero(3), _ADD_ERROR),
        (lambda: EstimateSums(0, 0.0, 0.0, (0,), (0.0,), (0.0,)), _SUMS_SHAPE_ERROR),
        (lambda: EstimateSums(0, 0.0, 0.0, (0, 0), (0.0,), (0.0, 0.0)), _SUMS_SHAPE_ERROR),
        (
            lambda: estimated_quality(EstimateSums.zero(2), ["a", "b", "c"]),
            _CLASSES_ERROR.format(k=2, got=3),
        ),
        (
            lambda: estimation_error(
                estimated_quality(EstimateSums.zero(2), ["a", "b"]),
                classification_quality([[0, 0], [0, 0]], ["a", "z"]),
            ),
            _REALISED_ERROR,
        ),
    ],
)
def test_bad_input_raises_with_a_precise_message(call: Any, message: str) -> None:
    with pytest.raises(ValueError) as exc:
        call()
    assert str(exc.value) == message


def test_sums_are_frozen_and_hashable() -> None:
    sums = EstimateSums.from_row([0.25, 0.75], 1)
    assert hash(sums) == hash(EstimateSums.from_row([0.25, 0.75], 1))
    with pytest.raises(AttributeError):
        sums.n = 2  # type: ignore[misc]
