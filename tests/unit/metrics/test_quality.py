from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    confusion_matrix,
    log_loss,
    mean_absolute_error,
    mean_absolute_percentage_error,
    precision_recall_fscore_support,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)

from instrumentation.metrics.intervals import wilson_interval
from instrumentation.metrics.quality import (
    _CALIBRATION_SHAPE_ERROR,
    _CLASSES_REPEAT_ERROR,
    _CONFUSION_SHAPE_ERROR,
    _COUNTS_ERROR,
    _HISTOGRAM_SHAPE_ERROR,
    _INDEX_ERROR,
    _N_ERROR,
    _OVR_ROWS_ERROR,
    _OVR_SHAPE_ERROR,
    _PROBABILITIES_RANGE_ERROR,
    _PROBABILITIES_SHAPE_ERROR,
    _PROBABILITIES_SUM_ERROR,
    _ROW_ERROR,
    _SUMS_ERROR,
    _UNIT_ERROR,
    CALIBRATION_BINS,
    SCORE_BINS,
    RegressionSums,
    brier_term,
    calibration_bin,
    classification_quality,
    expected_calibration_error,
    log_loss_term,
    probabilistic_quality,
    regression_quality,
    roc_auc_binned,
    roc_auc_ovr_macro,
    score_bin,
)

SEEDS = [0, 1, 2, 3]


def _none_if_nan(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def _check(actual: float | None, expected: float | None) -> None:
    if expected is None:
        assert actual is None
    else:
        assert actual == pytest.approx(expected, abs=1e-9)


def _assert_matches_sklearn(y: np.ndarray, yhat: np.ndarray, k: int) -> dict[str, Any]:
    labels = list(range(k))
    classes = [f"c{i}" for i in labels]
    cm = confusion_matrix(y, yhat, labels=labels)
    out = classification_quality(cm, classes)
    _check(out["accuracy"]["value"], accuracy_score(y, yhat))
    per_class = precision_recall_fscore_support(
        y, yhat, labels=labels, average=None, zero_division=np.nan
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        default = precision_recall_fscore_support(y, yhat, labels=labels, average=None)
    for m, key in enumerate(["precision", "recall", "f1"]):
        for i, name in enumerate(classes):
            ours = out[key]["per_class"][name]["value"]
            _check(ours, _none_if_nan(per_class[m][i]))
            if ours is not None:  # where defined we also equal sklearn's default
                assert ours == pytest.approx(default[m][i], abs=1e-9)
        for average in ("macro", "micro", "weighted"):
            expected = precision_recall_fscore_support(
                y, yhat, labels=labels, average=average, zero_division=np.nan
            )[m]
            _check(out[key][average]["value"], _none_if_nan(expected))
    return out


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("k", [2, 3, 5])
def test_classification_matches_sklearn_on_random_data(seed: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 60))
    y = rng.choice(k, size=n, p=np.linspace(1, 3, k) / np.linspace(1, 3, k).sum())
    yhat = np.where(rng.uniform(size=n) < 0.6, y, rng.integers(0, k, size=n))
    _assert_matches_sklearn(y, yhat, k)


@pytest.mark.parametrize(
    ("y", "yhat", "k"),
    [
        pytest.param([0, 0, 0, 0], [0, 1, 1, 0], 2, id="single-class-present"),
        pytest.param([0, 1, 1, 0, 1], [1, 1, 1, 1, 1], 2, id="all-predicted-one-class"),
        pytest.param([0, 1, 0, 1], [0, 1, 0, 1], 2, id="perfect"),
        pytest.param([0, 1, 0, 1], [1, 0, 1, 0], 2, id="all-wrong"),
        pytest.param([0, 1, 1, 0], [0, 1, 0, 0], 3, id="class-neither-present-nor-predicted"),
        pytest.param([0, 0, 0], [1, 1, 1], 3, id="weighted-falls-back-to-plain-mean"),
        pytest.param([2, 2, 1], [0, 0, 0], 4, id="only-undefined-precision"),
    ],
)
def test_classification_edge_cases_match_sklearn(y: list[int], yhat: list[int], k: int) -> None:
    _assert_matches_sklearn(np.array(y), np.array(yhat), k)


def test_undefined_per_class_figures_are_none_not_zero() -> None:
    out = classification_quality([[2, 0, 0], [1, 0, 0], [0, 0, 0]], ["a", "b", "c"])
    assert out["precision"]["per_class"]["b"] == {
        "value": None,
        "n": 0,
        "lower": None,
        "upper": None,
    }
    assert out["recall"]["per_class"]["b"]["value"] == 0.0
    assert out["f1"]["per_class"]["b"]["value"] == 0.0
    assert out["f1"]["per_class"]["c"]["value"] is None
    assert out["recall"]["per_class"]["c"]["value"] is None


def test_classification_counts_and_intervals() -> None:
    cm = [[5, 1, 0], [2, 3, 1], [0, 0, 4]]
    out = classification_quality(np.array(cm), ["a", "b", "c"])
    lo, hi = wilson_interval(12, 16)  # type: ignore[misc]  # n > 0 so never None
    assert out["accuracy"] == {"value": 12 / 16, "n": 16, "lower": lo, "upper": hi}
    assert out["precision"]["per_class"]["a"]["n"] == 7
    assert out["recall"]["per_class"]["a"]["n"] == 6
    assert out["precision"]["micro"] == out["accuracy"]
    assert out["f1"]["per_class"]["b"] == {"value": 6 / 10, "n": 7, "lower": None, "upper": None}
    assert out["f1"]["macro"]["n"] == 16
    assert out["f1"]["macro"]["lower"] is None
    assert out["confusion_matrix"] == {"classes": ["a", "b", "c"], "counts": cm}


def test_empty_window_is_undefined_everywhere() -> None:
    out = classification_quality(np.zeros((3, 3)), ["a", "b", "c"])
    undefined = {"value": None, "n": 0, "lower": None, "upper": None}
    assert out["accuracy"] == undefined
    for key in ("precision", "recall", "f1"):
        assert all(mv == undefined for mv in out[key]["per_class"].values())
        assert out[key]["macro"] == out[key]["micro"] == out[key]["weighted"] == undefined


@pytest.mark.parametrize(
    ("confusion", "classes", "message"),
    [
        ([[1, 2], [3, 4]], ["a", "b", "c"], _CONFUSION_SHAPE_ERROR),
        ([[1]], ["a"], _CONFUSION_SHAPE_ERROR),
        ([1, 2], ["a", "b"], _CONFUSION_SHAPE_ERROR),
        ([[1, 2], [3, 4]], ["a", "a"], _CLASSES_REPEAT_ERROR),
        ([[1, -2], [3, 4]], ["a", "b"], _COUNTS_ERROR.format(name="confusion")),
        ([[1, 2.5], [3, 4]], ["a", "b"], _COUNTS_ERROR.format(name="confusion")),
        ([[1, np.nan], [3, 4]], ["a", "b"], _COUNTS_ERROR.format(name="confusion")),
    ],
)
def test_classification_rejects_bad_input(confusion: Any, classes: list[str], message: str) -> None:
    with pytest.raises(ValueError) as exc:
        classification_quality(confusion, classes)
    assert str(exc.value) == message


# --- probabilistic ----------------------------------------------------------------------------


def _random_probabilities(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    p = rng.dirichlet(np.full(k, 0.7), size=n)
    p[0] = np.eye(k)[0]  # exact 0 and 1 exercise sklearn's clipping
    return p


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("k", [2, 3, 4])
def test_loss_terms_sum_to_sklearn(seed: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    n = 40
    p = _random_probabilities(rng, n, k)
    y = rng.integers(0, k, size=n)
    y[:k] = np.arange(k)
    y[0] = 1  # probability 0 on the true class: log loss clips to -ln(eps)
    labels = list(range(k))
    out = probabilistic_quality(
        n=n,
        log_loss_sum=sum(log_loss_term(row.tolist(), int(t)) for row, t in zip(p, y, strict=True)),
        brier_sum=sum(brier_term(row.tolist(), int(t)) for row, t in zip(p, y, strict=True)),
    )
    assert out["log_loss"]["value"] == pytest.approx(log_loss(y, p, labels=labels), abs=1e-9)
    assert out["brier_score"]["value"] == pytest.approx(
        brier_score_loss(y, p, labels=labels), abs=1e-9
    )
    assert out["log_loss"]["n"] == out["brier_score"]["n"] == n
    if k == 2:  # sklearn's customary binary form: the positive-class column alone
        assert out["brier_score"]["value"] == pytest.approx(brier_score_loss(y, p[:, 1]), abs=1e-9)


def test_loss_terms_single_rows() -> None:
    eps = np.finfo(np.float64).eps
    assert log_loss_term([1.0, 0.0], 1) == pytest.approx(-math.log(eps))
    assert log_loss_term([0.0, 1.0], 1) == pytest.approx(-math.log(1 - eps))
    assert brier_term([0.2, 0.8], 0) == pytest.approx(0.64)
    assert brier_term([0.2, 0.5, 0.3], 0) == pytest.approx(0.64 + 0.25 + 0.09)


def test_probabilistic_quality_empty_window() -> None:
    undefined = {"value": None, "n": 0, "lower": None, "upper": None}
    out = probabilistic_quality(n=0, log_loss_sum=0.0, brier_sum=0.0)
    assert out == {"log_loss": undefined, "brier_score": undefined}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": -1, "log_loss_sum": 0.0, "brier_sum": 0.0}, _N_ERROR.format(value=-1)),
        ({"n": True, "log_loss_sum": 0.0, "brier_sum": 0.0}, _N_ERROR.format(value=True)),
        (
            {"n": 2, "log_loss_sum": math.nan, "brier_sum": 0.0},
            _SUMS_ERROR.format(name="log_loss_sum and brier_sum"),
        ),
    ],
)
def test_probabilistic_quality_rejects_bad_input(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as exc:
        probabilistic_quality(**kwargs)
    assert str(exc.value) == message


@pytest.mark.parametrize("term", [log_loss_term, brier_term])
@pytest.mark.parametrize(
    ("probabilities", "index", "message"),
    [
        ([0.3, 0.6], 0, _PROBABILITIES_SUM_ERROR),
        ([1.0], 0, _PROBABILITIES_SHAPE_ERROR),
        ([[0.5, 0.5]], 0, _PROBABILITIES_SHAPE_ERROR),
        (["a", "b"], 0, _PROBABILITIES_SHAPE_ERROR),
        ([1.5, -0.5], 0, _PROBABILITIES_RANGE_ERROR),
        ([math.nan, 1.0], 0, _PROBABILITIES_RANGE_ERROR),
        ([0.5, 0.5], 2, _INDEX_ERROR.format(name="true_index", k=2, value=2)),
        ([0.5, 0.5], -1, _INDEX_ERROR.format(name="true_index", k=2, value=-1)),
        ([0.5, 0.5], True, _INDEX_ERROR.format(name="true_index", k=2, value=True)),
        ([0.5, 0.5], 1.0, _INDEX_ERROR.format(name="true_index", k=2, value=1.0)),
    ],
)
def test_loss_terms_reject_bad_input(
    term: Any, probabilities: Any, index: Any, message: str
) -> None:
    with pytest.raises(ValueError) as exc:
        term(probabilities, index)
    assert str(exc.value) == message


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


# --- regression -------------------------------------------------------------------------------


def _sums(y: np.ndarray, yhat: np.ndarray) -> RegressionSums:
    total = RegressionSums()
    for t, p in zip(y, yhat, strict=True):
        total = total + RegressionSums.from_row(float(t), float(p))
    return total


def _assert_regression_matches(y: np.ndarray, yhat: np.ndarray) -> dict[str, Any]:
    out = regression_quality(_sums(y, yhat))
    assert out["mae"]["value"] == pytest.approx(mean_absolute_error(y, yhat), abs=1e-9)
    assert out["rmse"]["value"] == pytest.approx(root_mean_squared_error(y, yhat), abs=1e-9)
    assert out["mape"]["value"] == pytest.approx(mean_absolute_percentage_error(y, yhat), abs=1e-9)
    assert out["r2"]["value"] == pytest.approx(r2_score(y, yhat), abs=1e-9)
    assert all(out[key]["n"] == len(y) for key in out)
    return out


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("loc", [0.0, 100.0])
def test_regression_matches_sklearn(seed: int, loc: float) -> None:
    rng = np.random.default_rng(seed)
    y = rng.normal(loc, 3.0, size=200)
    _assert_regression_matches(y, y + rng.normal(0, 1.0, size=200))


def test_regression_mape_uses_eps_for_zero_targets() -> None:
    out = _assert_regression_matches(np.array([0.0, 1.0, -2.0]), np.array([0.5, 1.0, -1.0]))
    assert out["mape"]["value"] > 1e14


@pytest.mark.parametrize(
    ("y", "yhat", "r2"),
    [([3.0, 3.0, 3.0], [3.0, 3.0, 3.0], 1.0), ([3.0, 3.0, 3.0], [3.0, 2.0, 3.0], 0.0)],
)
def test_r2_constant_target_follows_force_finite(
    y: list[float], yhat: list[float], r2: float
) -> None:
    out = _assert_regression_matches(np.array(y), np.array(yhat))
    assert out["r2"]["value"] == r2


def test_r2_constant_inexact_target_is_zero_not_rounding_noise() -> None:
    y, yhat = np.full(3, 0.1), np.array([0.1, 0.2, 0.1])
    assert regression_quality(_sums(y, yhat))["r2"]["value"] == 0.0
    # documented difference: sklearn divides by its own rounding noise here
    assert r2_score(y, yhat) < -1e6


def test_regression_single_row_and_empty_window() -> None:
    out = regression_quality(RegressionSums.from_row(2.0, 1.0))
    assert out["mae"] == {"value": 1.0, "n": 1, "lower": None, "upper": None}
    assert out["r2"] == {"value": None, "n": 1, "lower": None, "upper": None}
    with pytest.warns(UndefinedMetricWarning):
        assert math.isnan(r2_score([2.0], [1.0]))
    empty = regression_quality(RegressionSums())
    assert all(v == {"value": None, "n": 0, "lower": None, "upper": None} for v in empty.values())


def test_regression_sums_are_additive_in_any_grouping() -> None:
    rng = np.random.default_rng(7)
    y, yhat = rng.normal(size=50), rng.normal(size=50)
    whole = _sums(y, yhat)
    split = _sums(y[:20], yhat[:20]) + _sums(y[20:], yhat[20:])
    assert split.n == whole.n == 50
    for key, mv in regression_quality(split).items():
        assert mv["value"] == pytest.approx(regression_quality(whole)[key]["value"], abs=1e-12)
    assert whole.y == pytest.approx(y.sum()) and whole.y_squared == pytest.approx((y * y).sum())


@pytest.mark.parametrize(("y", "yhat"), [(math.nan, 1.0), (1.0, math.inf)])
def test_regression_row_rejects_non_finite(y: float, yhat: float) -> None:
    with pytest.raises(ValueError) as exc:
        RegressionSums.from_row(y, yhat)
    assert str(exc.value) == _ROW_ERROR
