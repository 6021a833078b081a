from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pytest
from fairlearn.metrics import (
    MetricFrame,
    true_positive_rate,
)
from fairlearn_reference import DISPARITIES, EQUALIZED_ODDS, RATES
from sklearn.metrics import confusion_matrix

from instrumentation.metrics.fairness import (
    CLASSES_MISMATCH_ERROR,
    CONFUSION_SHAPE_ERROR,
    METHODS,
    MIN_SAMPLES_ERROR,
    MISSING_GROUP,
    NEGATIVE_COUNT_ERROR,
    OVERFLOW_GROUP,
    POSITIVE_INDEX_ERROR,
    BinaryCounts,
    disparities,
    group_rates,
    one_vs_rest,
)

DIFFERENCES = DISPARITIES


def counts_from_rows(y_true: Any, y_pred: Any, groups: Any) -> dict[str, BinaryCounts]:
    y_true, y_pred, groups = np.asarray(y_true), np.asarray(y_pred), np.asarray(groups)
    result = {}
    for g in dict.fromkeys(groups.tolist()):
        mask = groups == g
        t, p = y_true[mask], y_pred[mask]
        result[g] = BinaryCounts(
            tn=int(((t == 0) & (p == 0)).sum()),
            fp=int(((t == 0) & (p == 1)).sum()),
            fn=int(((t == 1) & (p == 0)).sum()),
            tp=int(((t == 1) & (p == 1)).sum()),
        )
    return result


def fairlearn_disparities(y_true: Any, y_pred: Any, groups: Any) -> dict[str, Any]:
    """The same nested shape as ``disparities`` but with fairlearn's raw floats."""
    out: dict[str, Any] = {}
    for name, fn in DIFFERENCES.items():
        out[name] = {m: fn(y_true, y_pred, sensitive_features=groups, method=m) for m in METHODS}
    for name, fn in EQUALIZED_ODDS.items():
        out[name] = {
            agg: {
                m: fn(y_true, y_pred, sensitive_features=groups, method=m, agg=agg) for m in METHODS
            }
            for agg in ("worst_case", "mean")
        }
    return out


def assert_matches_fairlearn(ours: dict[str, Any], theirs: dict[str, Any], n: int) -> None:
    assert ours.keys() == theirs.keys()
    for key, expected in theirs.items():
        if isinstance(expected, dict):
            assert_matches_fairlearn(ours[key], expected, n)
            continue
        leaf = ours[key]
        assert leaf["n"] == n
        assert leaf["lower"] is None and leaf["upper"] is None
        if math.isnan(expected):
            assert leaf["value"] is None, key
        else:
            assert leaf["value"] == pytest.approx(float(expected), abs=1e-9), key


def random_rows(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 6))
    names = np.array([f"g{i}" for i in range(k)])
    n = int(rng.integers(30, 300))
    groups = names[rng.choice(k, size=n, p=rng.dirichlet(np.ones(k)))]
    base = rng.uniform(0.1, 0.9, size=k)[np.searchsorted(names, groups)]
    y_true = (rng.uniform(size=n) < base).astype(int)
    flip = rng.uniform(size=n) < rng.uniform(0.1, 0.4)
    y_pred = np.where(flip, 1 - y_true, y_true)
    return y_true, y_pred, groups


GOLDEN_TRUE = [1, 1, 0, 0, 1, 0, 1, 1, 0, 0, 0, 0]
GOLDEN_PRED = [1, 0, 1, 0, 1, 0, 1, 1, 1, 1, 0, 0]
GOLDEN_GROUPS = ["a"] * 6 + ["b"] * 6


def value(d: dict[str, Any], *path: str) -> Any:
    for key in path:
        d = d[key]
    return d["value"]


def test_golden_values() -> None:
    groups = counts_from_rows(GOLDEN_TRUE, GOLDEN_PRED, GOLDEN_GROUPS)
    assert groups == {"a": BinaryCounts(2, 1, 1, 2), "b": BinaryCounts(2, 2, 0, 2)}
    d = disparities(groups)
    expected = {
        ("demographic_parity_difference",): (0.166667, 0.083333),
        ("demographic_parity_ratio",): (0.75, 0.857143),
        ("equalized_odds_difference", "worst_case"): (0.333333, 0.2),
        ("equalized_odds_difference", "mean"): (0.25, 0.147619),
        ("equalized_odds_ratio", "worst_case"): (0.666667, 0.777778),
        ("equal_opportunity_difference",): (0.333333, 0.2),
        ("equal_opportunity_ratio",): (0.666667, 0.8),
    }
    for path, (between, to_overall) in expected.items():
        assert value(d, *path, "between_groups") == pytest.approx(between, abs=1e-6)
        assert value(d, *path, "to_overall") == pytest.approx(to_overall, abs=1e-6)
    assert d["demographic_parity_difference"]["between_groups"]["n"] == 12


@pytest.mark.parametrize("seed", range(8))
def test_disparities_equal_fairlearn_on_random_data(seed: int) -> None:
    y_true, y_pred, groups = random_rows(seed)
    ours = disparities(counts_from_rows(y_true, y_pred, groups))
    assert_matches_fairlearn(ours, fairlearn_disparities(y_true, y_pred, groups), len(y_true))


@pytest.mark.parametrize("seed", range(8))
def test_group_rates_equal_metric_frame(seed: int) -> None:
    y_true, y_pred, groups = random_rows(seed)
    report = group_rates(counts_from_rows(y_true, y_pred, groups))
    frame = MetricFrame(metrics=RATES, y_true=y_true, y_pred=y_pred, sensitive_features=groups)
    rows = [(g, report["by_group"][g], frame.by_group.loc[g]) for g in frame.by_group.index]
    rows.append(("overall", report["overall"], frame.overall))
    assert set(report["by_group"]) == set(frame.by_group.index)
    for _, ours, theirs in rows:
        for name in RATES:
            expected = float(theirs[name])
            leaf = ours[name]
            if leaf["n"] == 0:  # honest None where fairlearn/sklearn have 0.0 or NaN
                assert leaf["value"] is None
                assert expected == 0.0 or math.isnan(expected)
            else:
                assert leaf["value"] == pytest.approx(expected, abs=1e-9)
                assert leaf["lower"] - 1e-12 <= leaf["value"] <= leaf["upper"] + 1e-12


def test_group_without_positives_has_tpr_zero_in_disparities_none_in_report() -> None:
    y_true = [1, 0, 1, 0, 0, 0]
    y_pred = [1, 0, 0, 1, 1, 0]
    groups = list("aaaabb")
    counts = counts_from_rows(y_true, y_pred, groups)
    assert true_positive_rate([0, 0], [1, 0]) == 0.0  # fairlearn's convention
    report = group_rates(counts)
    assert report["by_group"]["b"]["tpr"] == {"value": None, "n": 0, "lower": None, "upper": None}
    d = disparities(counts)
    assert_matches_fairlearn(d, fairlearn_disparities(y_true, y_pred, groups), 6)
    assert value(d, "equal_opportunity_ratio", "between_groups") == 0.0
    assert value(d, "equal_opportunity_difference", "between_groups") == 0.5


def test_nan_ratios_follow_fairlearn() -> None:
    # TPR 0 everywhere: fairlearn's 0/0 ratio is NaN, and its builtin min() over
    # (tpr, fpr) keeps a leading NaN; mean skips it.
    y_true, y_pred, groups = [1, 0, 1, 0], [0, 1, 0, 0], list("aabb")
    d = disparities(counts_from_rows(y_true, y_pred, groups))
    assert_matches_fairlearn(d, fairlearn_disparities(y_true, y_pred, groups), 4)
    assert value(d, "equalized_odds_ratio", "worst_case", "between_groups") is None
    assert value(d, "equalized_odds_ratio", "mean", "between_groups") == 0.0
    # FPR 0 everywhere: the trailing NaN is skipped.
    y_true, y_pred, groups = [1, 0, 1, 1, 0], [1, 0, 0, 1, 0], list("aabbb")
    d = disparities(counts_from_rows(y_true, y_pred, groups))
    assert_matches_fairlearn(d, fairlearn_disparities(y_true, y_pred, groups), 5)
    assert value(d, "equalized_odds_ratio", "worst_case", "between_groups") == 0.5


def test_absent_group_is_just_missing() -> None:
    counts = counts_from_rows(GOLDEN_TRUE, GOLDEN_PRED, GOLDEN_GROUPS)
    with_empty = {**counts, "c": BinaryCounts()}
    assert disparities(with_empty) == disparities(counts)
    assert group_rates(with_empty)["by_group"]["c"]["selection_rate"]["value"] is None


@pytest.mark.parametrize("y_pred", [[1, 1, 0], [0, 0, 0]])
def test_single_group(y_pred: list[int]) -> None:
    y_true, groups = [1, 0, 1], list("aaa")
    d = disparities(counts_from_rows(y_true, y_pred, groups))
    assert_matches_fairlearn(d, fairlearn_disparities(y_true, y_pred, groups), 3)
    assert value(d, "demographic_parity_difference", "between_groups") == 0.0


@pytest.mark.parametrize(
    "groups", [{}, {"a": BinaryCounts()}, {"a": BinaryCounts(), "b": BinaryCounts()}]
)
def test_empty_input_is_undefined(groups: dict[str, BinaryCounts]) -> None:
    d = disparities(groups)
    undefined = {"value": None, "n": 0, "lower": None, "upper": None}
    for name in DIFFERENCES:
        assert d[name] == {m: undefined for m in METHODS}
    for name in EQUALIZED_ODDS:
        assert d[name] == {agg: {m: undefined for m in METHODS} for agg in ("worst_case", "mean")}
    overall = group_rates(groups)["overall"]
    assert overall["n"] == 0
    assert all(overall[name] == undefined for name in RATES)


def test_min_samples_reports_insufficient_data_and_excludes_from_disparities() -> None:
    y_true, y_pred, groups = random_rows(3)
    counts = counts_from_rows(y_true, y_pred, groups)
    small = min(counts, key=lambda g: counts[g].n)
    threshold = counts[small].n + 1
    report = group_rates(counts, min_samples=threshold)
    assert report["by_group"][small] == {"n": counts[small].n, "insufficient_data": True}
    assert report["overall"]["n"] == len(y_true)
    keep = np.array([counts[g].n >= threshold for g in groups])
    d = disparities(counts, min_samples=threshold)
    expected = fairlearn_disparities(y_true[keep], y_pred[keep], groups[keep])
    assert_matches_fairlearn(d, expected, int(keep.sum()))


def test_min_samples_must_be_non_negative() -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(MIN_SAMPLES_ERROR)}$"):
        group_rates({}, min_samples=-1)
    with pytest.raises(ValueError, match=f"^{re.escape(MIN_SAMPLES_ERROR)}$"):
        disparities({}, min_samples=-1)


def test_binary_counts_add_and_validate() -> None:
    total = BinaryCounts(1, 2, 3, 4) + BinaryCounts(tp=1)
    assert total == BinaryCounts(tn=1, fp=2, fn=3, tp=5)
    assert total.n == 11
    with pytest.raises(ValueError, match=f"^{re.escape(NEGATIVE_COUNT_ERROR)}$"):
        BinaryCounts(tn=-1)


def test_one_vs_rest_equals_binarised_rows() -> None:
    rng = np.random.default_rng(7)
    classes = ["cat", "dog", "eel"]
    y_true = rng.choice(classes, size=200)
    y_pred = np.where(rng.uniform(size=200) < 0.7, y_true, rng.choice(classes, size=200))
    groups = rng.choice(["x", "y", "z"], size=200)
    confusions = {
        g: confusion_matrix(y_true[groups == g], y_pred[groups == g], labels=classes)
        for g in ("x", "y", "z")
    }
    split = one_vs_rest(confusions, classes)
    assert list(split) == classes
    for cls in classes:
        t, p = (y_true == cls).astype(int), (y_pred == cls).astype(int)
        assert split[cls] == counts_from_rows(t, p, groups)
        assert_matches_fairlearn(disparities(split[cls]), fairlearn_disparities(t, p, groups), 200)


def test_from_confusion_errors() -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(CONFUSION_SHAPE_ERROR)}$"):
        BinaryCounts.from_confusion(np.zeros((2, 3)), 0)
    with pytest.raises(ValueError, match=f"^{re.escape(CONFUSION_SHAPE_ERROR)}$"):
        BinaryCounts.from_confusion(np.array([[1, -1], [0, 0]]), 0)
    with pytest.raises(ValueError, match=f"^{re.escape(POSITIVE_INDEX_ERROR)}$"):
        BinaryCounts.from_confusion(np.eye(2), 2)
    with pytest.raises(ValueError, match=f"^{re.escape(CLASSES_MISMATCH_ERROR)}$"):
        one_vs_rest({"a": np.eye(2)}, ["x", "y", "z"])


def test_group_constants() -> None:
    assert (MISSING_GROUP, OVERFLOW_GROUP) == ("__missing__", "__other__")
