"""Classification and probabilistic quality from confusion counts and loss sums, against sklearn."""

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
    precision_recall_fscore_support,
)

from instrumentation.metrics.intervals import wilson_interval
from instrumentation.metrics.quality import (
    _CLASSES_REPEAT_ERROR,
    _CONFUSION_SHAPE_ERROR,
    _COUNTS_ERROR,
    _INDEX_ERROR,
    _N_ERROR,
    _PROBABILITIES_RANGE_ERROR,
    _PROBABILITIES_SHAPE_ERROR,
    _PROBABILITIES_SUM_ERROR,
    _SUMS_ERROR,
    brier_term,
    classification_quality,
    log_loss_term,
    probabilistic_quality,
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
