"""A request's cells counted at once equal the same rows' cells counted one by one."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from instrumentation import PredictionRecord
from instrumentation.aggregates import AggregateBook
from instrumentation.spec import Task
from instrumentation.store.join import join_labels
from instrumentation.store.protocol import Increments
from tests.unit import per_row_cells
from tests.unit.report_rows import labelled_rows, spec_for


def _rows(task: Task) -> tuple[AggregateBook, list[PredictionRecord], list[Any], list[Any]]:
    rng = np.random.default_rng(11)
    spec = spec_for(task, rng)
    book = AggregateBook(spec, min_group_samples=5, min_drift_samples=5, bucket_seconds=60)
    # Several buckets and versions in one batch.
    records, features, truths = labelled_rows(
        spec, rng, 300, version=lambda i: "v" if i % 3 else "v0", created=lambda i: 60.0 * (i % 4)
    )
    return book, records, features, truths


def _same(batched: Increments, single: Increments) -> None:
    assert batched.cells.keys() == single.cells.keys()
    for cell, amount in single.cells.items():
        assert batched.cells[cell] == pytest.approx(amount, rel=1e-12, abs=1e-12), cell


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_prediction_cells_of_a_batch_equal_those_added_row_by_row(task: Task) -> None:
    book, records, features, _ = _rows(task)
    single, batched = Increments(), Increments()
    for record, row in zip(records, features, strict=True):
        per_row_cells.add_prediction(book, record, row, int(record.created // 60) * 60, single)
    book.add_predictions(records, features, batched)
    _same(batched, single)


def _labels_batched_equal_one_by_one(
    book: AggregateBook, records: list[PredictionRecord], truths: list[Any]
) -> None:
    single, batched = Increments(), Increments()
    for record, truth in zip(records, truths, strict=True):
        book.add_label(record, truth, 125.0, single)
    assert book.add_labels(list(zip(records, truths, strict=True)), 125.0, batched)
    _same(batched, single)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_label_cells_of_a_batch_equal_those_added_label_by_label(task: Task) -> None:
    book, records, _, truths = _rows(task)
    _labels_batched_equal_one_by_one(book, records, truths)


def test_a_label_that_cannot_be_aggregated_is_invalid_alone_in_a_batch() -> None:
    book, records, _, truths = _rows("binary")
    misfit = replace(records[5], label="other-class")  # an earlier version's prediction
    rows = {r.prediction_id: r for r in [*records[:5], misfit, *records[6:10]]}
    labels = [(str(i), truths[i]) for i in range(10)]
    aggregate = book.label_aggregator()

    outcomes, matched, increments = join_labels(
        rows, labels, now=125.0, ttl=1e9, aggregate=aggregate
    )

    assert [o.status for o in outcomes] == ["matched"] * 5 + ["invalid"] + ["matched"] * 4
    assert [pid for pid, _ in matched] == [str(i) for i in range(10) if i != 5]
    expected = Increments()
    for i in range(10):
        if i != 5:
            book.add_label(records[i], truths[i], 125.0, expected)
    _same(increments, expected)


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_label_cells_of_a_batch_with_unscored_rows_equal_those_added_label_by_label(
    task: Task,
) -> None:
    book, records, _, truths = _rows(task)
    # A model that gives scores for some rows only, and zero scores (no prob_sum cell).
    records = [replace(r, scores=None) if i % 3 == 0 else r for i, r in enumerate(records)]
    records[1] = replace(records[1], scores=(1.0, *([0.0] * (len(records[1].scores or ()) - 1))))
    _labels_batched_equal_one_by_one(book, records, truths)


def test_a_score_outside_0_1_fails_the_batch_so_its_labels_are_joined_one_by_one() -> None:
    book, records, _, truths = _rows("binary")
    records[7] = replace(records[7], scores=(-0.5, 1.5))
    assert not book.add_labels(list(zip(records, truths, strict=True)), 125.0, Increments())
