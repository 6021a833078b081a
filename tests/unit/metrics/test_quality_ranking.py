"""ROC AUC from binned scores and expected calibration error, against sklearn and raw rows."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    roc_auc_score,
)

from instrumentation.metrics.quality import (
    _CALIBRATION_SHAPE_ERROR,
    _COUNTS_ERROR,
    _HISTOGRAM_SHAPE_ERROR,
    _OVR_ROWS_ERROR,
    _OVR_SHAPE_ERROR,
    _UNIT_ERROR,
    CALIBRATION_BINS,
    SCORE_BINS,
    calibration_bin,
    expected_calibration_error,
    roc_auc_binned,
    roc_auc_ovr_macro,
    score_bin,
)

SEEDS = [0, 1, 2, 3]


# --- ROC AUC ----------------------------------------------------------------------------------


def _histogram(scores: np.ndarray) -> np.ndarray:
    counts = np.zeros(SCORE_BINS)
    for s in scores:
        counts[score_bin(float(s))] += 1
    return counts


def test_score_bin_edges() -> None:
    assert score_bin(0.0) == 0
    assert score_bin(0.0009) == 0
    assert score_bin(0.5) == 500
    assert score_bin(0.9995) == SCORE_BINS - 1
    assert score_bin(1.0) == SCORE_BINS - 1


@pytest.mark.parametrize("value", [-0.1, 1.1, math.nan, "0.5"])
def test_score_bin_rejects_out_of_range(value: Any) -> None:
    with pytest.raises(ValueError) as exc:
        score_bin(value)
    assert str(exc.value) == _UNIT_ERROR.format(name="p", value=value)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n", [30, 2000])
def test_roc_auc_binned_within_its_bound_of_sklearn(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    y[:2] = [0, 1]
    scores = np.clip(rng.normal(0.4 + 0.2 * y, 0.2), 0, 1)
    scores[2:10] = np.round(scores[2:10], 1)  # a few exact ties too
    out = roc_auc_binned(_histogram(scores[y == 1]), _histogram(scores[y == 0]))
    exact = roc_auc_score(y, scores)
    assert abs(out["value"] - exact) <= out["max_error"] + 1e-12
    assert out["n"] == n
    assert out["lower"] is None and out["upper"] is None


@pytest.mark.parametrize("seed", SEEDS)
def test_roc_auc_binned_is_exact_when_no_bin_is_shared(seed: int) -> None:
    rng = np.random.default_rng(seed)
    bins = rng.permutation(SCORE_BINS)[:300]
    scores = (bins + 0.5) / SCORE_BINS
    y = (rng.uniform(size=300) < scores).astype(int)
    out = roc_auc_binned(_histogram(scores[y == 1]), _histogram(scores[y == 0]))
    assert out["max_error"] == 0.0
    assert out["value"] == pytest.approx(roc_auc_score(y, scores), abs=1e-12)


def test_roc_auc_binned_all_pairs_tied() -> None:
    out = roc_auc_binned([0, 3, 0], [0, 2, 0])
    assert out == {"value": 0.5, "n": 5, "lower": None, "upper": None, "max_error": 0.5}


@pytest.mark.parametrize(("pos", "neg"), [([0, 0], [1, 2]), ([1, 2], [0, 0]), ([0, 0], [0, 0])])
def test_roc_auc_binned_undefined_without_both_classes(pos: list[int], neg: list[int]) -> None:
    out = roc_auc_binned(pos, neg)
    assert out == {"value": None, "n": sum(pos) + sum(neg), "lower": None, "upper": None,
                   "max_error": None}  # fmt: skip


def _ovr_histograms(p: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    k = p.shape[1]
    pos, neg = np.zeros((k, SCORE_BINS)), np.zeros((k, SCORE_BINS))
    for row, t in zip(p, y, strict=True):
        for c in range(k):
            (pos if c == t else neg)[c, score_bin(float(row[c]))] += 1
    return pos, neg


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("k", [3, 4])
def test_roc_auc_ovr_macro_within_its_bound_of_sklearn(seed: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    n = 500
    y = rng.integers(0, k, size=n)
    y[:k] = np.arange(k)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    out = roc_auc_ovr_macro(*_ovr_histograms(p, y))
    exact = roc_auc_score(y, p, multi_class="ovr", average="macro", labels=list(range(k)))
    assert abs(out["value"] - exact) <= out["max_error"] + 1e-12
    assert out["max_error"] == pytest.approx(np.mean([d["max_error"] for d in out["per_class"]]))
    assert out["n"] == n
    for c, d in enumerate(out["per_class"]):
        exact_c = roc_auc_score(y == c, p[:, c])
        assert abs(d["value"] - exact_c) <= d["max_error"] + 1e-12


def test_roc_auc_ovr_macro_undefined_when_a_class_is_absent() -> None:
    p = np.array([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.8, 0.1]])
    y = np.array([0, 1, 0, 1])
    out = roc_auc_ovr_macro(*_ovr_histograms(p, y))
    assert out["value"] is None and out["max_error"] is None
    assert out["per_class"][2]["value"] is None
    assert out["per_class"][0]["value"] == 1.0
    with pytest.warns(UndefinedMetricWarning):
        exact = roc_auc_score(y, p, multi_class="ovr", average="macro", labels=[0, 1, 2])
    assert math.isnan(exact)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: roc_auc_binned([1, 2], [1, 2, 3]), _HISTOGRAM_SHAPE_ERROR),
        (lambda: roc_auc_binned([[1, 2]], [[1, 2]]), _HISTOGRAM_SHAPE_ERROR),
        (lambda: roc_auc_binned([1, -1], [1, 2]), _COUNTS_ERROR.format(name="positive_counts")),
        (lambda: roc_auc_ovr_macro([[1, 2]], [[1, 2]]), _OVR_SHAPE_ERROR),
        (lambda: roc_auc_ovr_macro([[1, 2], [0, 1]], [[1, 2]]), _OVR_SHAPE_ERROR),
        (lambda: roc_auc_ovr_macro([[1, 0], [0, 1]], [[0, 0], [1, 1]]), _OVR_ROWS_ERROR),
    ],
)
def test_roc_auc_rejects_bad_input(call: Any, message: str) -> None:
    with pytest.raises(ValueError) as exc:
        call()
    assert str(exc.value) == message


# --- calibration ------------------------------------------------------------------------------


def test_calibration_bin_edges() -> None:
    assert calibration_bin(0.0) == 0
    assert calibration_bin(0.35) == 3
    assert calibration_bin(1.0) == CALIBRATION_BINS - 1
    with pytest.raises(ValueError) as exc:
        calibration_bin(1.5)
    assert str(exc.value) == _UNIT_ERROR.format(name="confidence", value=1.5)


@pytest.mark.parametrize("seed", SEEDS)
def test_expected_calibration_error_matches_raw_rows(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 300
    confidence = rng.uniform(0.3, 1.0, size=n)
    correct = rng.uniform(size=n) < confidence**2  # over-confident on purpose
    count, conf_sum, correct_sum = (np.zeros(CALIBRATION_BINS) for _ in range(3))
    for c, ok in zip(confidence, correct, strict=True):
        b = calibration_bin(float(c))
        count[b] += 1
        conf_sum[b] += c
        correct_sum[b] += ok
    bins = np.minimum((confidence * CALIBRATION_BINS).astype(int), CALIBRATION_BINS - 1)
    expected = sum(
        (bins == b).mean() * abs(correct[bins == b].mean() - confidence[bins == b].mean())
        for b in range(CALIBRATION_BINS)
        if (bins == b).any()
    )
    out = expected_calibration_error(count, conf_sum, correct_sum)
    assert out.value == pytest.approx(expected, abs=1e-9)
    assert out.n == n


def test_expected_calibration_error_empty_and_bad_shapes() -> None:
    zeros = np.zeros(CALIBRATION_BINS)
    assert expected_calibration_error(zeros, zeros, zeros).value is None
    with pytest.raises(ValueError) as exc:
        expected_calibration_error(zeros, zeros[:3], zeros)
    assert str(exc.value) == _CALIBRATION_SHAPE_ERROR
