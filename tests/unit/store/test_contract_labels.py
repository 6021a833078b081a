"""Every store: each feedback status, and a label joined exactly once across replicas."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest

from instrumentation.store.protocol import (
    Increments,
    Label,
    PredictionRecord,
    PredictionStore,
    per_label,
)
from tests.unit.store.contract import (
    T0,
    Backend,
    add,
    child_add,
    child_label,
    child_read,
    count_labels,
    record,
)


def test_apply_labels_gives_every_status_and_only_matched_aggregates(
    store: PredictionStore,
) -> None:
    add(store, [record(p, label="fraud") for p in ("dup", "con", "bad", "old", "new")])
    add(store, [record("fresh", created=T0 + 100)])
    first = store.apply_labels(
        "m", [("dup", "fraud"), ("con", "legit")], now=T0 + 10, ttl=150, aggregate=count_labels
    )
    assert [o.status for o in first] == ["matched", "matched"]
    before = store.sum_aggregates("m", "v1", since_bucket=0)
    calls: list[tuple[str, Label]] = []

    @per_label
    def aggregate(record: PredictionRecord, label: Label, now: float, out: Increments) -> None:
        calls.append((record.prediction_id, label))
        count_labels(record, label, now, out)

    outcomes = store.apply_labels(
        "m",
        [
            ("dup", "fraud"),
            ("con", "fraud"),
            ("nobody", "fraud"),
            ("bad", None),
            ("old", "fraud"),
            ("fresh", "legit"),
        ],
        now=T0 + 200,
        ttl=150,
        aggregate=aggregate,
    )

    assert [(o.prediction_id, o.status) for o in outcomes] == [
        ("dup", "duplicate"),
        ("con", "conflict"),
        ("nobody", "unknown"),
        ("bad", "invalid"),
        ("old", "expired"),
        ("fresh", "matched"),
    ]
    assert calls == [("fresh", "legit")]
    after = store.sum_aggregates("m", "v1", since_bucket=0)
    assert after == {
        **before,
        '["labels"]': before['["labels"]'] + 1,
        '["confusion","legit","fraud"]': before['["confusion","legit","fraud"]'] + 1,
    }
    stored = store.get_predictions("m", ["dup", "con", "bad", "old", "fresh"])
    assert {pid: (r.feedback, r.feedback_at) for pid, r in stored.items()} == {
        "dup": ("fraud", T0 + 10),
        "con": ("legit", T0 + 10),  # the first label stands
        "bad": (None, None),
        "old": (None, None),
        "fresh": ("legit", T0 + 200),
    }
    assert outcomes[5].record == stored["fresh"]
    assert outcomes[2].record is None


def test_an_aggregator_value_error_makes_one_item_invalid(store: PredictionStore) -> None:
    add(store, [record("a"), record("b")])

    @per_label
    def picky(record: PredictionRecord, label: Label, now: float, out: Increments) -> None:
        if record.prediction_id == "b":
            raise ValueError("class unknown to this version")
        count_labels(record, label, now, out)

    outcomes = store.apply_labels(
        "m", [("a", "fraud"), ("b", "fraud")], now=T0 + 1, ttl=60, aggregate=picky
    )

    assert [o.status for o in outcomes] == ["matched", "invalid"]
    assert store.get_predictions("m", ["b"])["b"].feedback is None
    assert store.sum_aggregates("m", "v1", since_bucket=0)['["labels"]'] == 1.0


def test_a_label_already_given_reports_duplicate_or_conflict_even_past_the_ttl(
    store: PredictionStore,
) -> None:
    add(store, [record("p")])
    store.apply_labels("m", [("p", "fraud")], now=T0 + 1, ttl=10, aggregate=count_labels)

    outcomes = store.apply_labels(
        "m", [("p", "fraud"), ("p", "legit")], now=T0 + 1000, ttl=10, aggregate=count_labels
    )

    assert [o.status for o in outcomes] == ["duplicate", "conflict"]


def test_the_same_label_twice_in_one_request_matches_once(store: PredictionStore) -> None:
    add(store, [record("a"), record("b")])

    outcomes = store.apply_labels(
        "m",
        [("a", "fraud"), ("a", "fraud"), ("b", "legit"), ("b", "fraud")],
        now=T0 + 1,
        ttl=60,
        aggregate=count_labels,
    )

    assert [o.status for o in outcomes] == ["matched", "duplicate", "matched", "conflict"]
    assert store.sum_aggregates("m", "v1", since_bucket=0)['["labels"]'] == 2.0
    assert store.get_predictions("m", ["b"])["b"].feedback == "legit"


def test_regression_labels_are_stored_as_numbers(store: PredictionStore) -> None:
    add(store, [record("r", label=None, value=2.0, scores=None)])

    outcomes = store.apply_labels(
        "m", [("r", 3.5), ("r", 3.5), ("r", 4.0)], now=T0 + 1, ttl=60, aggregate=count_labels
    )

    assert [o.status for o in outcomes] == ["matched", "duplicate", "conflict"]
    assert store.get_predictions("m", ["r"])["r"].feedback == 3.5


def test_an_aggregator_error_rolls_the_whole_request_back(store: PredictionStore) -> None:
    add(store, [record("a"), record("b")])

    @per_label
    def failing(record: PredictionRecord, label: Label, now: float, out: Increments) -> None:
        if record.prediction_id == "b":
            raise RuntimeError("boom")
        count_labels(record, label, now, out)

    with pytest.raises(RuntimeError, match="boom"):
        store.apply_labels(
            "m", [("a", "fraud"), ("b", "fraud")], now=T0 + 1, ttl=60, aggregate=failing
        )

    assert store.get_predictions("m", ["a"])["a"].feedback is None
    assert store.sum_aggregates("m", "v1", since_bucket=0) == {'["predictions"]': 2.0}


# --- across replicas and processes --------------------------------------------------------------


def test_the_same_labels_at_two_replicas_at_once_join_exactly_once(backend: Backend) -> None:
    replicas = [backend.open(), backend.open()]
    ids = [f"p{i:02}" for i in range(20)]
    add(replicas[0], [record(pid) for pid in ids])
    barrier = threading.Barrier(2)

    @per_label
    def slow_count(record: PredictionRecord, label: Label, now: float, out: Increments) -> None:
        # Widen the window between reading a row and writing its label: without row
        # locks, the other replica reads the row unlabelled meanwhile and matches too.
        time.sleep(0.01)
        count_labels(record, label, now, out)

    def label(index: int) -> dict[str, str]:
        order = ids if index == 0 else ids[::-1]  # opposite orders: no deadlock either
        barrier.wait(timeout=30)
        outcomes = replicas[index].apply_labels(
            "m", [(pid, "fraud") for pid in order], now=T0 + 5, ttl=60, aggregate=slow_count
        )
        return {o.prediction_id: o.status for o in outcomes}

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(label, [0, 1])

    assert {pid: sorted([first[pid], second[pid]]) for pid in ids} == {
        pid: ["duplicate", "matched"] for pid in ids
    }
    assert replicas[1].sum_aggregates("m", "v1", since_bucket=0) == {
        '["predictions"]': 20.0,
        '["labels"]': 20.0,
        '["confusion","fraud","fraud"]': 20.0,
    }


def test_a_label_joins_a_prediction_written_by_another_process(backend: Backend) -> None:
    ids = ["p-1", "p-2", "p-3"]
    spawn = multiprocessing.get_context("spawn")
    with (
        ProcessPoolExecutor(1, mp_context=spawn) as writer,
        ProcessPoolExecutor(1, mp_context=spawn) as labeller,
    ):
        writer_pid = writer.submit(child_add, backend.url, ids).result(timeout=60)
        labeller_pid, statuses = labeller.submit(
            child_label, backend.url, [("p-1", "fraud"), ("p-2", "legit"), ("p-9", "fraud")]
        ).result(timeout=60)
        reader_pid, feedback, sums = writer.submit(child_read, backend.url, ids).result(timeout=60)

    assert len({os.getpid(), writer_pid, labeller_pid}) == 3
    assert reader_pid == writer_pid
    assert statuses == ["matched", "matched", "unknown"]
    expected_sums = {
        '["predictions"]': 3.0,
        '["labels"]': 2.0,
        '["confusion","fraud","fraud"]': 1.0,
        '["confusion","legit","fraud"]': 1.0,
    }
    # The writer sees the labeller's join, and so does a fresh store object here.
    assert (feedback, sums) == ({"p-1": "fraud", "p-2": "legit", "p-3": None}, expected_sums)
    store = backend.open()
    assert {p: r.feedback for p, r in store.get_predictions("m", ids).items()} == feedback
    assert store.sum_aggregates("m", "v1", since_bucket=0) == expected_sums
