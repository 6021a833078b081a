"""ModelSpec: construction rules, JSON round trip, request validation, label parsing."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from instrumentation import FeatureSpec, InvalidInput, ModelSpec

FEATURES = (
    FeatureSpec("amount", "number"),
    FeatureSpec("channel", "category", ("web", "pos")),
)
BOUNDED = ModelSpec(
    "bounded",
    "v1",
    "regression",
    (
        FeatureSpec("amount", "number", minimum=0.0),
        FeatureSpec("hour", "number", minimum=0.0, maximum=23.0),
        FeatureSpec("score", "number", maximum=1.0),
    ),
)
BINARY = ModelSpec("fraud", "v1", "binary", FEATURES, ("legit", "fraud"), ("region",))
MULTICLASS = ModelSpec("iris", "v2", "multiclass", FEATURES, ("setosa", "versicolor", "virginica"))
NUMERIC_CLASSES = ModelSpec("digits", "v1", "multiclass", FEATURES, ("0", "1", "2"))
REGRESSION = ModelSpec("price", "v3", "regression", FEATURES)
GOOD_ROW = {"amount": 12.5, "channel": "web"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"task": "ranking", "classes": ()},
            "ModelSpec.task must be one of ('binary', 'multiclass', 'regression'), got 'ranking'",
        ),
        (
            {"task": "regression", "classes": ("a", "b")},
            "ModelSpec.classes must be empty for a regression model",
        ),
        (
            {"task": "binary", "classes": ("yes",)},
            "ModelSpec.classes must name exactly 2 classes for a binary model",
        ),
        (
            {"task": "binary", "classes": ("a", "b", "c")},
            "ModelSpec.classes must name exactly 2 classes for a binary model",
        ),
        (
            {"task": "multiclass", "classes": ("a", "b")},
            "ModelSpec.classes must name 3 or more classes for multiclass",
        ),
        ({"task": "binary", "classes": ("a", "a")}, "ModelSpec.classes must be unique"),
        (
            {"task": "binary", "classes": ("a", "b"), "features": ()},
            "ModelSpec.features must name at least one feature",
        ),
    ],
)
def test_invalid_specs_raise_at_construction(kwargs: dict[str, Any], message: str) -> None:
    arguments = {"name": "m", "version": "v", "features": FEATURES, **kwargs}

    with pytest.raises(ValueError) as raised:
        ModelSpec(**arguments)

    assert str(raised.value) == message


def test_feature_kind_is_checked_when_loaded() -> None:
    with pytest.raises(ValueError) as raised:
        FeatureSpec.from_dict({"name": "age", "kind": "integer"})

    assert str(raised.value) == "feature 'age': kind must be number or category"


@pytest.mark.parametrize("spec", [BINARY, MULTICLASS, REGRESSION, BOUNDED])
def test_round_trip_through_a_dict(spec: ModelSpec) -> None:
    with_reference = ModelSpec.from_dict(
        {**spec.to_dict(), "reference": {"numeric": {"amount": {"edges": [1.0, 2.0]}}}}
    )

    assert ModelSpec.from_dict(spec.to_dict()) == spec
    assert ModelSpec.from_dict(with_reference.to_dict()) == with_reference


def test_to_dict_is_plain_json() -> None:
    assert BINARY.to_dict() == {
        "name": "fraud",
        "version": "v1",
        "task": "binary",
        "features": [
            {"name": "amount", "kind": "number", "categories": []},
            {"name": "channel", "kind": "category", "categories": ["web", "pos"]},
        ],
        "classes": ["legit", "fraud"],
        "sensitive_attributes": ["region"],
        "reference": {},
    }


def test_from_dict_fills_optional_fields() -> None:
    spec = ModelSpec.from_dict(
        {"name": "price", "task": "regression", "features": [{"name": "x", "kind": "number"}]}
    )

    assert spec == ModelSpec("price", "", "regression", (FeatureSpec("x", "number"),))


def test_with_version_changes_only_the_version() -> None:
    stamped = BINARY.with_version("2024-01")

    assert stamped.to_dict() == {**BINARY.to_dict(), "version": "2024-01"}
    assert BINARY.version == "v1"


def test_is_classifier() -> None:
    assert (BINARY.is_classifier, MULTICLASS.is_classifier, REGRESSION.is_classifier) == (
        True,
        True,
        False,
    )


# --- validate_features --------------------------------------------------------------------------


def test_valid_rows_pass() -> None:
    BINARY.validate_features(
        [GOOD_ROW, {"amount": 3, "channel": "in-store"}, {"amount": -1e100, "channel": ""}]
    )


@pytest.mark.parametrize(
    ("rows", "field", "message"),
    [
        pytest.param(
            [GOOD_ROW, {"channel": "web"}],
            "instances[1].features.amount",
            "required feature is missing",
            id="missing",
        ),
        pytest.param(
            [{**GOOD_ROW, "colour": "red"}],
            "instances[0].features.colour",
            "unknown feature; expected: amount, channel",
            id="unknown",
        ),
        pytest.param(
            [{"amount": "12.5", "channel": "web"}],
            "instances[0].features.amount",
            "expected a number, got str",
            id="string-for-number",
        ),
        pytest.param(
            [{"amount": None, "channel": "web"}],
            "instances[0].features.amount",
            "expected a number, got NoneType",
            id="null-for-number",
        ),
        pytest.param(
            [{"amount": True, "channel": "web"}],
            "instances[0].features.amount",
            "expected a number, got bool",
            id="bool-for-number",
        ),
        pytest.param(
            [{"amount": math.nan, "channel": "web"}],
            "instances[0].features.amount",
            "expected a finite number within ±1e+100",
            id="nan",
        ),
        pytest.param(
            [GOOD_ROW, GOOD_ROW, {"amount": -math.inf, "channel": "web"}],
            "instances[2].features.amount",
            "expected a finite number within ±1e+100",
            id="inf",
        ),
        pytest.param(
            [{"amount": 1.0, "channel": 3}],
            "instances[0].features.channel",
            "expected a string category, got int",
            id="number-for-category",
        ),
        pytest.param(
            [{"amount": 1.0, "channel": ["web"]}],
            "instances[0].features.channel",
            "expected a string category, got list",
            id="list-for-category",
        ),
    ],
)
def test_invalid_rows_name_the_field(rows: list[dict[str, Any]], field: str, message: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        BINARY.validate_features(rows)

    assert (raised.value.field, raised.value.message) == (field, message)
    assert str(raised.value) == f"{field}: {message}"
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        # A JSON integer too big for a float must not crash the check (OverflowError).
        ({"amount": 10**400}, "amount", "expected a finite number within ±1e+100"),
        ({"amount": -1.5e100}, "amount", "expected a finite number within ±1e+100"),
        ({"amount": -0.01}, "amount", "expected a number >= 0, got -0.01"),
        ({"hour": 24}, "hour", "expected a number between 0 and 23, got 24"),
        ({"hour": -1}, "hour", "expected a number between 0 and 23, got -1"),
        ({"score": 1.5}, "score", "expected a number <= 1, got 1.5"),
    ],
)
def test_numbers_outside_the_declared_range_or_magnitude_name_the_field(
    row: dict[str, Any], field: str, message: str
) -> None:
    good = {"amount": 0.0, "hour": 23, "score": -1e100}
    BOUNDED.validate_features([good])  # the bounds themselves are accepted

    with pytest.raises(InvalidInput) as raised:
        BOUNDED.validate_features([{**good, **row}])

    assert (raised.value.field, raised.value.message) == (f"instances[0].features.{field}", message)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "category", "minimum": 0.0}, "feature 'x': bounds must be finite, numbers only"),
        (
            {"kind": "number", "maximum": math.inf},
            "feature 'x': bounds must be finite, numbers only",
        ),
        (
            {"kind": "number", "minimum": 2.0, "maximum": 1.0},
            "feature 'x': minimum exceeds maximum",
        ),
    ],
)
def test_invalid_bounds_raise_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as raised:
        FeatureSpec("x", **kwargs)

    assert str(raised.value) == message


def test_valid_groups_pass() -> None:
    BINARY.validate_groups([{}, {"region": None}, {"region": "n" * 128}, {"region": ""}])


@pytest.mark.parametrize(
    ("spec", "groups", "message"),
    [
        (BINARY, {"age": "30"}, "unknown sensitive attribute; expected: region"),
        (
            MULTICLASS,
            {"age": "30"},
            "unknown sensitive attribute; expected: none (this model has none)",
        ),
        (BINARY, {"region": 3}, "expected a string or null, got int"),
        (BINARY, {"region": "n" * 129}, "expected at most 128 characters, got 129"),
        (
            BINARY,
            {"region": "__missing__"},
            "'__missing__' is reserved by the monitor; send null for a missing value",
        ),
    ],
)
def test_invalid_groups_name_the_field(
    spec: ModelSpec, groups: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        spec.validate_groups([{}, groups])

    field = f"instances[1].groups.{next(iter(groups))}"
    assert (raised.value.field, raised.value.message) == (field, message)


def test_the_first_bad_row_is_reported_under_the_given_path() -> None:
    with pytest.raises(InvalidInput) as raised:
        BINARY.validate_features([{"amount": "x"}, {"amount": "y"}], path="batch")

    assert str(raised.value) == "batch[0].features.channel: required feature is missing"


# --- parse_label --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "label", "parsed"),
    [
        (BINARY, "fraud", "fraud"),
        (BINARY, "legit", "legit"),
        (BINARY, "Fraud", None),
        (BINARY, "", None),
        (BINARY, True, None),
        (BINARY, 1, None),
        (BINARY, None, None),
        (BINARY, ["fraud"], None),
        (MULTICLASS, "virginica", "virginica"),
        (NUMERIC_CLASSES, 2, "2"),
        (NUMERIC_CLASSES, "2", "2"),
        (NUMERIC_CLASSES, 3, None),
        (NUMERIC_CLASSES, 2.0, None),
        (NUMERIC_CLASSES, False, None),
        (REGRESSION, 3, 3.0),
        (REGRESSION, -2.5, -2.5),
        (REGRESSION, 0, 0.0),
        (REGRESSION, "3.0", None),
        (REGRESSION, True, None),
        (REGRESSION, math.nan, None),
        (REGRESSION, math.inf, None),
        (REGRESSION, None, None),
        # Beyond ±1e100 a label's squared error could overflow the window's sums.
        (REGRESSION, 1e100, 1e100),
        (REGRESSION, -1.2e154, None),
        (REGRESSION, 10**400, None),
    ],
)
def test_parse_label(spec: ModelSpec, label: Any, parsed: str | float | None) -> None:
    result = spec.parse_label(label)

    assert result == parsed
    assert type(result) is type(parsed)


EDGE_VALUES: list[Any] = [
    0,
    -0.0,
    0.5,
    23,
    23.0,
    23.000000000000004,
    -1e-300,
    1e100,
    -1e100,
    10**100,
    10**100 + 1,
    1.0000000000000002e100,
    10**400,
    math.inf,
    -math.inf,
    math.nan,
    True,
    False,
    None,
    "7",
    np.float64(3.0),
    np.int64(4),
]


def _check_passes(feature: FeatureSpec, value: Any) -> bool:
    try:
        feature.check(value, "x")
    except InvalidInput:
        return False
    return True


@pytest.mark.parametrize("feature", BOUNDED.features + FEATURES)
def test_a_column_the_fast_path_accepts_passes_every_per_value_check(feature: FeatureSpec) -> None:
    """column_fits only ever says "surely valid": never for a column check() would refuse."""
    rng = np.random.default_rng(5)
    pool = [*EDGE_VALUES, "web", "unseen"]
    accepted = 0
    for _ in range(3000):
        column = [pool[i] for i in rng.integers(0, len(pool), size=int(rng.integers(1, 5)))]
        if feature.column_fits(column):
            accepted += 1
            assert all(_check_passes(feature, v) for v in column), column
    assert accepted > 0  # the fast path is reachable for this feature


def test_ordinary_rows_take_the_column_path_and_odd_ones_fall_back_to_the_rows() -> None:
    rows = [{"amount": float(i), "channel": "web"} for i in range(32)]
    assert BINARY._columns_fit(rows)
    assert not BINARY._columns_fit([*rows, {"amount": 1.0}])  # a row without a feature
    assert not BINARY._columns_fit([*rows, {**GOOD_ROW, "extra": 1}])
    with pytest.raises(InvalidInput, match=r"instances\[32\]\.features\.amount"):
        BINARY.validate_features([*rows, {"amount": math.nan, "channel": "web"}])
