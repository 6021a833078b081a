"""The gauge table and the reports agree both ways: no figure without a gauge, no idle gauge.

Reports of a binary, a multiclass and a regression model are rendered with data in
every section (per-group fairness, drift of features and outputs, the estimate and
its realised error), flattened, and the emitted names, units and attribute keys
compared with ``instrumentation.telemetry.gauge_table``.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from instrumentation.aggregates import AggregateBook
from instrumentation.aggregates.alerts import accuracy_cusum, estimated_accuracy_cusum, mae_cusum
from instrumentation.aggregates.cells import Cells
from instrumentation.aggregates.comparison import compare_rollout, compare_versions
from instrumentation.aggregates.fairness_alerts import fairness_alerts
from instrumentation.spec import Task
from instrumentation.store.keys import encode_key
from instrumentation.store.protocol import Increments
from instrumentation.telemetry import gauge_table as table
from instrumentation.telemetry.gauge_points import (
    NO_GAUGE_ERROR,
    GaugePoint,
    alert_points,
    comparison_points,
    gauge_points,
)
from tests.unit import per_row_cells
from tests.unit.report_rows import CLASSES, labelled_rows, spec_for


def _rendered(task: Task) -> list[GaugePoint]:
    """Gauge points of one window holding 200 labelled predictions in two groups, compared."""
    rng = np.random.default_rng(7)
    spec = spec_for(task, rng)
    book = AggregateBook(spec, min_group_samples=5, min_drift_samples=5)
    increments = Increments()
    for record, features, truth in zip(*labelled_rows(spec, rng, 200), strict=True):
        per_row_cells.add_prediction(book, record, features, 0, increments)
        book.add_label(record, truth, 0.0, increments)
    sums: dict[str, float] = defaultdict(float)
    for (_, _, key), amount in increments.cells.items():
        sums[encode_key(key)] += amount
    # A version compared with another holding the same cells: every comparison figure too.
    comparison = compare_versions(spec, Cells(sums), Cells(sums))
    rollout = {
        "since": None,
        "alpha": 0.05,
        "figures": compare_rollout(spec, Cells(sums), Cells(sums)),
    }
    compared = comparison_points(
        {"version": "v", "baseline": "u", "windows": {"1h": comparison}, "rollout": rollout}
    )
    alerts = (
        {
            "accuracy_cusum": accuracy_cusum({0: sums}, spec.classes, p0=0.8, p1=0.75, h=9.5),
            "estimated_accuracy_cusum": estimated_accuracy_cusum(
                {0: sums}, threshold=0.8, worse=0.75, h=9.5
            ),
            "fairness": fairness_alerts(
                spec,
                Cells(sums),
                thresholds={"demographic_parity": 0.1, "equalized_odds": 0.2},
                min_samples=5,
            ),
        }
        if spec.is_classifier
        else {"mae_cusum": mae_cusum({0: sums}, threshold=1.0, worse=1.25, h=9.5)}
    )
    return gauge_points({"1h": book.report(sums)}) + compared + alert_points(alerts)


@pytest.fixture(scope="module")
def emitted() -> dict[str, set[str]]:
    """Attribute keys emitted per gauge name, over every task."""
    keys: dict[str, set[str]] = defaultdict(set)
    for task in CLASSES:
        for name, _, attrs in _rendered(task):
            keys[name] |= set(attrs)
    return keys


def test_every_report_figure_has_a_table_entry_and_every_entry_is_reported(
    emitted: dict[str, set[str]],
) -> None:
    assert sorted(emitted) == sorted(g.name for g in table.GAUGES)


def test_each_gauge_carries_exactly_the_attribute_keys_its_entry_lists(
    emitted: dict[str, set[str]],
) -> None:
    for gauge in table.GAUGES:
        assert emitted[gauge.name] == set(gauge.attributes), gauge.name


def test_units_and_names_follow_the_conventions() -> None:
    names = [g.name for g in table.GAUGES]
    assert len(names) == len(set(names)) == 153
    for gauge in table.GAUGES:
        assert gauge.unit == ("{sample}" if gauge.name.endswith(".samples") else ""), gauge.name
        assert gauge.name.startswith(
            (
                "ml.quality.",
                "ml.fairness.",
                "ml.drift.",
                "ml.estimated.",
                "ml.compare.",
                "ml.alert.",
            )
        )
        assert gauge.description
    # A few names dashboards and alert rules read, spelled out.
    assert {
        "ml.quality.accuracy",
        "ml.quality.accuracy.lower",
        "ml.quality.f1",
        "ml.fairness.equalized_odds_difference",
        "ml.fairness.selection_rate.samples",
        "ml.drift.psi",
        "ml.estimated.error.accuracy",
        "ml.compare.accuracy",
        "ml.compare.accuracy.lower",
        "ml.compare.accuracy.baseline.samples",
        "ml.compare.rollout.accuracy.upper",
        "ml.compare.rollout.mae.lower",
        "ml.alert.accuracy.cusum",
    } <= set(names)


def test_every_gauge_constant_is_in_the_table() -> None:
    constants = [
        value
        for name, value in vars(table).items()
        if name.isupper() and isinstance(value, table.Figure | table.Gauge)
    ]
    gauges = {g for c in constants for g in (c.gauges if isinstance(c, table.Figure) else [c])}
    assert gauges == set(table.GAUGES)


def test_a_report_figure_without_an_entry_fails_loudly() -> None:
    figure = {"value": 0.5, "n": 10, "lower": None, "upper": None}
    with pytest.raises(KeyError) as raised:
        gauge_points({"1h": {"quality": {"balanced_accuracy": figure}}})

    assert raised.value.args[0] == NO_GAUGE_ERROR.format(where="quality", key="balanced_accuracy")
