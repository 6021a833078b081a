from __future__ import annotations

import doctest
import json
import math
import re
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import ks_2samp

from instrumentation.metrics import drift, fairness, reference
from instrumentation.metrics.drift import (
    LENGTH_MISMATCH_ERROR,
    NEGATIVE_COUNTS_ERROR,
    PSI_EPSILON,
    THRESHOLD_ERROR,
    binned_ks,
    drift_report,
    js_distance,
    psi,
)
from instrumentation.metrics.reference import (
    COLUMN_ERROR,
    EDGES_ERROR,
    EMPTY_VALUES_ERROR,
    KIND_ERROR,
    N_BINS_ERROR,
    NAN_VALUE_ERROR,
    NON_FINITE_ERROR,
    PREDICTION_LABEL,
    PREDICTION_SCORE,
    RESERVED_CATEGORY_ERROR,
    SHARES_LENGTH_ERROR,
    SHARES_SUM_ERROR,
    UNSEEN_CATEGORY,
    CategoricalReference,
    NumericReference,
    ReferenceProfile,
    bin_counts,
    build_reference_profile,
    categorical_reference,
    category_bin,
    numeric_bin,
    numeric_edges,
    numeric_reference,
    reference_from_dict,
)

UNDEFINED = {"value": None, "n": 0, "lower": None, "upper": None}


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


def direct_psi(ref: np.ndarray, counts: np.ndarray) -> float:
    r = np.clip(ref, PSI_EPSILON, None)
    c = np.clip(counts / counts.sum(), PSI_EPSILON, None)
    return float(np.sum((r - c) * np.log(r / c)))


@pytest.mark.parametrize("module", [drift, fairness, reference])
def test_module_docstring_examples_run(module: ModuleType) -> None:
    result = doctest.testmod(module, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0


# --- numeric bins ----------------------------------------------------------------------


def test_numeric_edges_are_training_quantiles() -> None:
    values = np.random.default_rng(0).normal(size=1000)
    edges = numeric_edges(values, n_bins=4)
    expected = np.quantile(values, [0.25, 0.5, 0.75], method="inverted_cdf")
    assert edges == pytest.approx(expected, abs=0)
    assert set(edges) <= set(values)
    assert numeric_edges(values, n_bins=1) == ()


def test_numeric_edges_merge_ties() -> None:
    values = [0.0] * 90 + [1.0] * 10
    assert numeric_edges(values, n_bins=10) == (0.0,)
    assert numeric_reference(values, n_bins=10).shares == (0.9, 0.1)
    # a cut at the training maximum would leave the top bin empty: dropped
    assert numeric_edges([0.0] * 50 + [1.0] * 50, n_bins=10) == (0.0,)
    assert numeric_edges([3.0] * 10, n_bins=10) == ()


@pytest.mark.parametrize(
    ("value", "expected"),
    [(-math.inf, 0), (-100.0, 0), (1.0, 0), (1.5, 1), (2.0, 1), (3.0, 2), (1e9, 3), (math.inf, 3)],
)
def test_numeric_bin_is_left_open_right_closed(value: float, expected: int) -> None:
    assert numeric_bin(value, (1.0, 2.0, 3.0)) == expected


def test_numeric_bin_rejects_nan() -> None:
    with pytest.raises(ValueError, match=exactly(NAN_VALUE_ERROR)):
        numeric_bin(math.nan, (1.0,))


def test_a_column_with_a_nan_is_rejected_as_a_value_is() -> None:
    ref = NumericReference((1.0,), (0.5, 0.5))
    with pytest.raises(ValueError, match=exactly(NAN_VALUE_ERROR)):
        bin_counts(ref, [0.0, math.nan])


def test_numeric_reference_shares_match_histogram() -> None:
    values = np.random.default_rng(1).exponential(size=500)
    ref = numeric_reference(values, n_bins=10)
    assert len(ref.edges) == 9 and len(ref.shares) == 10
    expected = np.bincount([numeric_bin(v, ref.edges) for v in values], minlength=10) / 500
    assert ref.shares == pytest.approx(expected, abs=0)
    assert sum(ref.shares) == pytest.approx(1.0)


def test_values_outside_training_range_land_in_end_bins() -> None:
    ref = numeric_reference(np.arange(100.0), n_bins=5)
    counts = bin_counts(ref, [-1e6, -1.0, 1000.0, 1e6])
    assert counts == [2, 0, 0, 0, 2]
    report = drift_report(ref, counts)
    assert report["ks"]["value"] == pytest.approx(0.3)
    assert report["drifted"] is True


@pytest.mark.parametrize(
    ("values", "kwargs", "message"),
    [
        ([1.0], {"n_bins": 0}, N_BINS_ERROR),
        ([1.0], {"n_bins": 2.5}, N_BINS_ERROR),
        ([], {}, EMPTY_VALUES_ERROR),
        ([1.0, math.nan], {}, NON_FINITE_ERROR),
        ([1.0, math.inf], {}, NON_FINITE_ERROR),
    ],
)
def test_numeric_reference_errors(
    values: list[float], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=exactly(message)):
        numeric_reference(values, **kwargs)


@pytest.mark.parametrize(
    ("edges", "shares", "message"),
    [
        ((2.0, 1.0), (0.2, 0.3, 0.5), EDGES_ERROR),
        ((1.0, 1.0), (0.2, 0.3, 0.5), EDGES_ERROR),
        ((math.inf,), (0.5, 0.5), EDGES_ERROR),
        ((1.0,), (0.2, 0.3, 0.5), SHARES_LENGTH_ERROR),
        ((1.0,), (0.5, 0.6), SHARES_SUM_ERROR),
        ((1.0,), (1.5, -0.5), SHARES_SUM_ERROR),
    ],
)
def test_numeric_reference_validation(
    edges: tuple[float, ...], shares: tuple[float, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=exactly(message)):
        NumericReference(edges, shares)


# --- categorical bins ------------------------------------------------------------------


def test_categorical_reference_has_zero_share_unseen_bucket() -> None:
    ref = categorical_reference(["b", "a", "b", "c"])
    assert ref.categories == ("a", "b", "c", UNSEEN_CATEGORY)
    assert ref.shares == (0.25, 0.5, 0.25, 0.0)
    assert [category_bin(v, ref) for v in ["a", "b", "c", "zzz", UNSEEN_CATEGORY]] == [
        0,
        1,
        2,
        3,
        3,
    ]


def test_categories_compare_by_str() -> None:
    ref = categorical_reference([1, 2, 2])
    assert ref.categories == ("1", "2", UNSEEN_CATEGORY)
    assert category_bin("1", ref) == category_bin(1, ref) == 0
    assert category_bin(1.0, ref) == 2


def test_unseen_categories_drift() -> None:
    ref = categorical_reference(["a"] * 60 + ["b"] * 40)
    counts = bin_counts(ref, ["a"] * 30 + ["b"] * 20 + ["new"] * 50)
    assert counts == [30, 20, 50]
    report = drift_report(ref, counts)
    assert "ks" not in report
    assert report["psi"]["value"] == pytest.approx(
        direct_psi(np.array(ref.shares), np.array(counts))
    )
    assert report["psi"]["value"] == pytest.approx(
        0.3 * math.log(2) + 0.2 * math.log(2) + (PSI_EPSILON - 0.5) * math.log(PSI_EPSILON / 0.5)
    )
    expected_js = jensenshannon(ref.shares, counts, base=2)
    assert report["js_distance"]["value"] == pytest.approx(expected_js, abs=1e-9)
    assert report["drifted"] is True


@pytest.mark.parametrize(
    ("values", "message"),
    [([], EMPTY_VALUES_ERROR), (["a", UNSEEN_CATEGORY], RESERVED_CATEGORY_ERROR)],
)
def test_categorical_reference_errors(values: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=exactly(message)):
        categorical_reference(values)


def test_categorical_reference_validation() -> None:
    with pytest.raises(ValueError, match=exactly(reference.CATEGORIES_ERROR)):
        CategoricalReference(("a", "b"), (0.5, 0.5))
    with pytest.raises(ValueError, match=exactly(SHARES_LENGTH_ERROR)):
        CategoricalReference(("a", UNSEEN_CATEGORY), (1.0,))


# --- statistics ------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_psi_and_js_equal_direct_computation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 12))
    ref = rng.dirichlet(np.ones(k))
    ref[rng.integers(k)] = 0.0  # an empty reference bin
    ref /= ref.sum()
    counts = rng.integers(0, 50, size=k)
    counts[rng.integers(k)] = 0  # an empty current bin
    n = int(counts.sum())
    assert psi(ref, counts).value == pytest.approx(direct_psi(ref, counts), abs=1e-9)
    assert js_distance(ref, counts).value == pytest.approx(
        jensenshannon(ref, counts, base=2), abs=1e-9
    )
    assert psi(ref, counts).n == js_distance(ref, counts).n == binned_ks(ref, counts).n == n


def test_identical_distributions_are_exactly_zero() -> None:
    ref = numeric_reference(np.arange(1000.0), n_bins=7)
    counts = bin_counts(ref, np.arange(1000.0))
    report = drift_report(ref, counts)
    assert report == {
        "psi": {"value": 0.0, "n": 1000, "lower": None, "upper": None},
        "js_distance": {"value": 0.0, "n": 1000, "lower": None, "upper": None},
        "ks": {"value": 0.0, "n": 1000, "lower": None, "upper": None},
        "drifted": False,
    }


def test_disjoint_distributions() -> None:
    ref, counts = [0.5, 0.5, 0.0], [0, 0, 10]
    assert js_distance(ref, counts).value == pytest.approx(1.0)
    assert binned_ks(ref, counts).value == 1.0
    expected = 2 * (0.5 - PSI_EPSILON) * math.log(0.5 / PSI_EPSILON) + (
        PSI_EPSILON - 1.0
    ) * math.log(PSI_EPSILON)
    assert psi(ref, counts).value == pytest.approx(expected, abs=1e-12)
    assert math.isfinite(expected) and expected > 10


def test_empty_bins_use_epsilon() -> None:
    # current empty where reference has mass: the current share is floored at epsilon
    value = psi([0.5, 0.5], [10, 0]).value
    expected = (0.5 - 1.0) * math.log(0.5) + (0.5 - PSI_EPSILON) * math.log(0.5 / PSI_EPSILON)
    assert value == pytest.approx(expected, abs=1e-12)
    # both empty in a bin: floored to epsilon on both sides, contributing 0
    assert psi([0.5, 0.5, 0.0], [5, 5, 0]).value == 0.0


def test_empty_window_is_undefined() -> None:
    ref = numeric_reference([1.0, 2.0, 3.0], n_bins=2)
    assert drift_report(ref, [0, 0]) == {
        "psi": UNDEFINED,
        "js_distance": UNDEFINED,
        "ks": UNDEFINED,
        "drifted": None,
    }


@pytest.mark.parametrize("seed", range(5))
def test_binned_ks_is_ks_at_the_edges_and_a_lower_bound(seed: int) -> None:
    rng = np.random.default_rng(seed)
    train = rng.normal(size=800)
    current = rng.normal(loc=rng.uniform(-0.5, 0.5), scale=rng.uniform(0.7, 1.5), size=300)
    ref = numeric_reference(train, n_bins=10)
    value = binned_ks(ref.shares, bin_counts(ref, current)).value
    assert value is not None
    edges = np.array(ref.edges)
    at_edges = np.abs(
        np.searchsorted(np.sort(train), edges, side="right") / train.size
        - np.searchsorted(np.sort(current), edges, side="right") / current.size
    ).max()
    assert value == pytest.approx(at_edges, abs=1e-12)
    assert value <= ks_2samp(train, current).statistic + 1e-12


@pytest.mark.parametrize(
    ("shares", "counts", "message"),
    [
        ([0.5, 0.5], [1, 2, 3], LENGTH_MISMATCH_ERROR),
        ([0.5, 0.5], [1, -1], NEGATIVE_COUNTS_ERROR),
        ([0.5, 0.5], [1, math.nan], NEGATIVE_COUNTS_ERROR),
        ([0.5, 0.4], [1, 1], SHARES_SUM_ERROR),
        ([1.5, -0.5], [1, 1], SHARES_SUM_ERROR),
    ],
)
def test_statistics_validate_inputs(shares: list[float], counts: list[float], message: str) -> None:
    for statistic in (psi, js_distance, binned_ks):
        with pytest.raises(ValueError, match=exactly(message)):
            statistic(shares, counts)


@pytest.mark.parametrize("threshold", [0.0, -1.0, math.nan, math.inf])
def test_drift_report_threshold_validation(threshold: float) -> None:
    with pytest.raises(ValueError, match=exactly(THRESHOLD_ERROR)):
        drift_report(categorical_reference(["a"]), [1, 0], psi_threshold=threshold)


def test_bucket_counts_add_up() -> None:
    ref = numeric_reference(np.arange(50.0), n_bins=5)
    a, b = [-3.0, 7.0, 20.0], [49.0, 80.0]
    assert bin_counts(ref, a + b) == [
        x + y for x, y in zip(bin_counts(ref, a), bin_counts(ref, b), strict=True)
    ]


# --- reference profile -----------------------------------------------------------------


def training_frame() -> dict[str, list[Any]]:
    rng = np.random.default_rng(3)
    return {
        "age": rng.integers(18, 90, size=200).tolist(),
        "income": rng.lognormal(10, 1, size=200).tolist(),
        "city": rng.choice(["x", "y", "z"], size=200).tolist(),
        "target": rng.integers(0, 2, size=200).tolist(),  # not listed: ignored
    }


def test_build_reference_profile_and_json_round_trip() -> None:
    frame = training_frame()
    scores = np.random.default_rng(4).uniform(size=200)
    profile = build_reference_profile(
        frame,
        numeric=["age", "income"],
        categorical=["city"],
        predicted_label=(scores > 0.5).astype(int).tolist(),
        predicted_score=scores,
        n_bins=8,
    )
    assert set(profile.features) == {"age", "income", "city"}
    assert profile.features["income"] == numeric_reference(frame["income"], n_bins=8)
    assert profile.features["city"] == categorical_reference(frame["city"])
    assert set(profile.prediction) == {PREDICTION_LABEL, PREDICTION_SCORE}
    label = profile.prediction[PREDICTION_LABEL]
    assert isinstance(label, CategoricalReference)
    assert label.categories == ("0", "1", UNSEEN_CATEGORY)
    restored = ReferenceProfile.from_dict(json.loads(json.dumps(profile.to_dict())))
    assert restored == profile
    assert restored.to_dict() == profile.to_dict()
    from_pandas = build_reference_profile(
        pd.DataFrame(frame), numeric=["age", "income"], categorical=["city"], n_bins=8
    )
    assert from_pandas.features == profile.features


def test_reference_round_trips() -> None:
    for ref in (numeric_reference([1.0, 5.0, 2.0, 8.0], n_bins=3), categorical_reference("abca")):
        data = json.loads(json.dumps(ref.to_dict()))
        assert reference_from_dict(data) == ref
        assert type(ref).from_dict(data) == ref


def test_reference_from_dict_checks_kind() -> None:
    numeric = numeric_reference([1.0, 2.0]).to_dict()
    with pytest.raises(ValueError, match=exactly(KIND_ERROR)):
        CategoricalReference.from_dict(numeric)
    with pytest.raises(ValueError, match=exactly(KIND_ERROR)):
        reference_from_dict({**numeric, "kind": "other"})


@pytest.mark.parametrize(
    ("numeric", "categorical"),
    [(["age"], ["age"]), (["nope"], []), (["age", "age"], [])],
)
def test_build_reference_profile_column_errors(numeric: list[str], categorical: list[str]) -> None:
    with pytest.raises(ValueError, match=exactly(COLUMN_ERROR)):
        build_reference_profile(training_frame(), numeric=numeric, categorical=categorical)
