"""Feedback: the ml.feedback span and links, counters, statuses, aggregates, regression labels."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sklearn.metrics import (
    mean_absolute_error,
    mean_absolute_percentage_error,
    r2_score,
    root_mean_squared_error,
)

import instrumentation.monitor as monitor_module
import instrumentation.telemetry.feedback as feedback_telemetry
from instrumentation import (
    ModelMonitor,
    SQLiteStore,
)
from tests.unit.monitor.monitor_support import (
    MODEL_ATTRS,
    NO_STATUSES,
    T0,
    Clock,
    attr_key,
    by_attrs,
    metrics,
    predict,
    regress,
    span_ids,
    spans,
)

# --- ml.feedback --------------------------------------------------------------------------------


def test_feedback_span_links_each_matched_prediction_and_counts_everything(
    monitor: ModelMonitor,
    clock: Clock,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
) -> None:
    first = predict(monitor, [90.0, 20.0])  # one request, one span, two rows
    clock.advance(30)
    second = predict(monitor, [80.0])
    clock.advance(90)
    ids = [first[0].prediction_id, first[1].prediction_id, second[0].prediction_id]

    outcome = monitor.feedback(
        [(ids[0], "fraud"), (ids[1], "fraud"), (ids[2], "legit"), ("no-such-id", "fraud")]
    )

    assert outcome.results == [
        (ids[0], "matched"),
        (ids[1], "matched"),
        (ids[2], "matched"),
        ("no-such-id", "unknown"),
    ]
    assert outcome.counts == {**NO_STATUSES, "matched": 3, "unknown": 1}
    (span,) = spans(span_exporter, "ml.feedback")
    assert span.kind is SpanKind.INTERNAL
    assert dict(span.attributes or {}) == {
        **MODEL_ATTRS,
        "ml.feedback.count": 4,
        "ml.feedback.matched_ids": tuple(ids),
        "ml.feedback.links_dropped": 0,
    }
    stored = monitor.store.get_predictions("fraud-test", ids)
    assert [(span_ids(link.context), dict(link.attributes or {})) for link in span.links] == [
        ((stored[pid].trace_id, stored[pid].span_id), {"ml.prediction.id": pid}) for pid in ids
    ]
    predict_spans = spans(span_exporter, "ml.predict")
    assert [span_ids(link.context) for link in span.links] == [
        span_ids(predict_spans[0].context),
        span_ids(predict_spans[0].context),
        span_ids(predict_spans[1].context),
    ]

    points = metrics(metric_reader)
    assert by_attrs(points["ml.feedback"]) == {
        attr_key(**MODEL_ATTRS, **{"ml.feedback.status": "matched"}): 3,
        attr_key(**MODEL_ATTRS, **{"ml.feedback.status": "unknown"}): 1,
    }
    (delay,) = points["ml.label.delay"]
    assert (dict(delay.attributes), delay.count, delay.sum) == (MODEL_ATTRS, 3, 120 + 120 + 90)
    assert (delay.min, delay.max) == (90, 120)
    confusion = "ml.label.actual", "ml.label.predicted"
    assert by_attrs(points["ml.confusion"]) == {
        attr_key(**MODEL_ATTRS, **dict(zip(confusion, ("fraud", "fraud"), strict=True))): 1,
        attr_key(**MODEL_ATTRS, **dict(zip(confusion, ("fraud", "legit"), strict=True))): 1,
        attr_key(**MODEL_ATTRS, **dict(zip(confusion, ("legit", "fraud"), strict=True))): 1,
    }


def test_feedback_links_and_span_id_lists_are_capped(
    monitor: ModelMonitor, span_exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feedback_telemetry, "MAX_LINKS_PER_FEEDBACK", 2)
    monkeypatch.setattr(feedback_telemetry, "MAX_IDS_ON_SPAN", 3)  # the feedback span's
    monkeypatch.setattr(monitor_module, "MAX_IDS_ON_SPAN", 3)  # the predict span's
    records = predict(monitor, [10.0, 20.0, 30.0, 40.0, 50.0])
    ids = [r.prediction_id for r in records]

    outcome = monitor.feedback([(pid, "legit") for pid in ids])

    assert outcome.counts["matched"] == 5
    (predict_span,) = spans(span_exporter, "ml.predict")
    assert predict_span.attributes is not None
    assert predict_span.attributes["ml.prediction.count"] == 5
    assert predict_span.attributes["ml.prediction.ids"] == tuple(ids[:3])
    (span,) = spans(span_exporter, "ml.feedback")
    assert dict(span.attributes or {}) == {
        **MODEL_ATTRS,
        "ml.feedback.count": 5,
        "ml.feedback.matched_ids": tuple(ids[:3]),
        "ml.feedback.links_dropped": 3,
    }
    assert [dict(link.attributes or {}) for link in span.links] == [
        {"ml.prediction.id": ids[0]},
        {"ml.prediction.id": ids[1]},
    ]


def test_matched_label_adds_to_aggregates_and_is_stored(
    monitor: ModelMonitor, store: SQLiteStore, clock: Clock
) -> None:
    (record,) = predict(monitor, [90.0])
    before = store.sum_aggregates("fraud-test", "v1", since_bucket=0)
    clock.advance(5)

    outcome = monitor.feedback([(record.prediction_id, "legit")])

    assert outcome.results == [(record.prediction_id, "matched")]
    after = store.sum_aggregates("fraud-test", "v1", since_bucket=0)
    assert after['["labels"]'] == before.get('["labels"]', 0) + 1
    assert after['["confusion","legit","fraud"]'] == 1
    stored = store.get_predictions("fraud-test", [record.prediction_id])[record.prediction_id]
    assert (stored.feedback, stored.feedback_at) == ("legit", T0 + 5)


def _label_first(label: Any) -> Callable[[ModelMonitor, str], None]:
    def setup(monitor: ModelMonitor, pid: str) -> None:
        assert monitor.feedback([(pid, label)]).results == [(pid, "matched")]

    return setup


def _nothing(monitor: ModelMonitor, pid: str) -> None:
    return None


@pytest.mark.parametrize(
    ("setup", "target", "label", "status", "stored_feedback"),
    [
        pytest.param(_label_first("fraud"), "own", "fraud", "duplicate", "fraud", id="duplicate"),
        pytest.param(_label_first("fraud"), "own", "legit", "conflict", "fraud", id="conflict"),
        pytest.param(_nothing, "no-such-id", "fraud", "unknown", None, id="unknown"),
        pytest.param(_nothing, "own", "maybe", "invalid", None, id="invalid-class"),
        pytest.param(_nothing, "own", True, "invalid", None, id="invalid-bool"),
        pytest.param(_nothing, "own", 1, "invalid", None, id="invalid-int-not-a-class"),
        pytest.param(_nothing, "own", 0.9, "invalid", None, id="invalid-float"),
        pytest.param(_nothing, "own", None, "invalid", None, id="invalid-null"),
    ],
)
def test_feedback_that_does_not_match_leaves_aggregates_unchanged(
    monitor: ModelMonitor,
    store: SQLiteStore,
    metric_reader: InMemoryMetricReader,
    setup: Callable[[ModelMonitor, str], None],
    target: str,
    label: Any,
    status: str,
    stored_feedback: str | None,
) -> None:
    (record,) = predict(monitor, [90.0])
    pid = record.prediction_id
    setup(monitor, pid)
    before = store.sum_aggregates("fraud-test", "v1", since_bucket=0)
    delays_before = sum(p.count for p in metrics(metric_reader).get("ml.label.delay", []))
    sent = pid if target == "own" else target

    outcome = monitor.feedback([(sent, label)])

    assert outcome.results == [(sent, status)]
    assert outcome.counts == {**NO_STATUSES, status: 1}
    assert store.sum_aggregates("fraud-test", "v1", since_bucket=0) == before
    assert store.get_predictions("fraud-test", [pid])[pid].feedback == stored_feedback
    points = metrics(metric_reader)
    assert (
        by_attrs(points["ml.feedback"])[attr_key(**MODEL_ATTRS, **{"ml.feedback.status": status})]
        == 1
    )
    assert sum(p.count for p in points.get("ml.label.delay", [])) == delays_before


def test_label_after_the_ttl_is_expired_and_changes_nothing(
    monitor: ModelMonitor, store: SQLiteStore, clock: Clock
) -> None:
    late, in_time = (r.prediction_id for r in predict(monitor, [90.0, 10.0]))
    clock.advance(3600)  # exactly the TTL: still in time
    assert monitor.feedback([(in_time, "legit")]).results == [(in_time, "matched")]
    clock.advance(0.5)
    before = store.sum_aggregates("fraud-test", "v1", since_bucket=0)

    outcome = monitor.feedback([(late, "fraud")])

    assert outcome.results == [(late, "expired")]
    assert outcome.counts == {**NO_STATUSES, "expired": 1}
    assert store.sum_aggregates("fraud-test", "v1", since_bucket=0) == before
    assert store.get_predictions("fraud-test", [late])[late].feedback is None


def test_the_same_label_twice_in_one_request_is_matched_then_duplicate(
    monitor: ModelMonitor, store: SQLiteStore
) -> None:
    first, second = predict(monitor, [90.0, 10.0])
    a, b = first.prediction_id, second.prediction_id

    outcome = monitor.feedback([(a, "fraud"), (a, "fraud"), (b, "legit"), (b, "fraud")])

    assert outcome.results == [(a, "matched"), (a, "duplicate"), (b, "matched"), (b, "conflict")]
    sums = store.sum_aggregates("fraud-test", "v1", since_bucket=0)
    assert sums['["labels"]'] == 2
    assert store.get_predictions("fraud-test", [b])[b].feedback == "legit"


@pytest.mark.parametrize(
    ("label", "status"),
    [
        pytest.param(3, "matched", id="int"),
        pytest.param(3.5, "matched", id="float"),
        pytest.param("3", "invalid", id="string"),
        pytest.param(True, "invalid", id="bool"),
        pytest.param(math.nan, "invalid", id="nan"),
        pytest.param(math.inf, "invalid", id="inf"),
        pytest.param(None, "invalid", id="null"),
        pytest.param(1.2e154, "invalid", id="square-overflows"),
        pytest.param(10**400, "invalid", id="int-beyond-float"),
    ],
)
def test_regression_labels_must_be_finite_numbers(
    regression_monitor: ModelMonitor, store: SQLiteStore, label: Any, status: str
) -> None:
    (record,) = regress(regression_monitor, [2.0])
    before = store.sum_aggregates("price-test", "v7", since_bucket=0)

    outcome = regression_monitor.feedback([(record.prediction_id, label)])

    assert outcome.results == [(record.prediction_id, status)]
    changed = store.sum_aggregates("price-test", "v7", since_bucket=0) != before
    assert changed is (status == "matched")


def test_the_largest_regression_values_keep_every_window_finite(
    regression_monitor: ModelMonitor, store: SQLiteStore
) -> None:
    # Squares of ±1e100 still sum finitely; past it a value would poison the window.
    with pytest.raises(ValueError, match=r"values\[1\]=1\.2e\+154 is not a finite number"):
        regress(regression_monitor, [1.0, 1.2e154])
    assert store.count_predictions("price-test") == 0

    records = regress(regression_monitor, [-1e100] * 4)
    outcome = regression_monitor.feedback([(r.prediction_id, 1e100) for r in records])

    assert {status for _, status in outcome.results} == {"matched"}
    quality = regression_monitor.snapshot()["windows"]["1h"]["quality"]
    assert quality["mae"]["value"] == pytest.approx(2e100, rel=1e-12)
    assert quality["rmse"]["value"] == pytest.approx(2e100, rel=1e-12)


def test_regression_duplicate_and_conflict_compare_numbers(
    regression_monitor: ModelMonitor, store: SQLiteStore
) -> None:
    (record,) = regress(regression_monitor, [2.0])
    pid = record.prediction_id
    assert regression_monitor.feedback([(pid, 3)]).results == [(pid, "matched")]
    before = store.sum_aggregates("price-test", "v7", since_bucket=0)

    outcome = regression_monitor.feedback([(pid, 3.0), (pid, 4)])

    assert outcome.results == [(pid, "duplicate"), (pid, "conflict")]
    assert store.sum_aggregates("price-test", "v7", since_bucket=0) == before
    assert store.get_predictions("price-test", [pid])[pid].feedback == 3.0


def test_regression_snapshot_quality_equals_sklearn(regression_monitor: ModelMonitor) -> None:
    predicted = [10.0, 20.0, 30.0, 41.5]
    actual = [12.0, 18.0, 33.0, 40.0]
    records = regress(regression_monitor, predicted)
    regression_monitor.feedback(
        [(r.prediction_id, y) for r, y in zip(records, actual, strict=True)]
    )

    quality = regression_monitor.snapshot()["windows"]["5m"]["quality"]

    assert quality["mae"]["value"] == pytest.approx(mean_absolute_error(actual, predicted), 1e-12)
    assert quality["rmse"]["value"] == pytest.approx(
        root_mean_squared_error(actual, predicted), 1e-12
    )
    assert quality["r2"]["value"] == pytest.approx(r2_score(actual, predicted), 1e-12)
    assert quality["mape"]["value"] == pytest.approx(
        mean_absolute_percentage_error(actual, predicted), 1e-12
    )
    assert quality["mae"]["n"] == 4
