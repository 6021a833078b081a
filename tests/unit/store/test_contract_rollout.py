"""Every store: cumulative rollout cells, the snapshot taken when a version is recorded."""

from __future__ import annotations

import time

from instrumentation.store.keys import encode_key
from instrumentation.store.protocol import (
    Increments,
    Label,
    PredictionRecord,
    PredictionStore,
    per_label,
)
from instrumentation.store.rollout import (
    MODEL_BUCKET,
    MODEL_VERSION,
    add_cumulative,
    cumulative_key,
    since_rollout,
)
from tests.unit.store.contract import BUCKET, T0, add, count_labels, record

LABELS = encode_key(("labels",))


@per_label
def labels_everywhere(record: PredictionRecord, label: Label, now: float, out: Increments) -> None:
    """``count_labels``, and each of its cells accumulated model-wide too."""
    own = Increments()
    count_labels(record, label, now, own)
    out.merge(own)
    add_cumulative(out, own, keep=lambda key: True)


def _label(store: PredictionStore, ids: list[str], *, now: float = T0 + 30) -> None:
    labels: list[tuple[str, Label | None]] = [(pid, "fraud") for pid in ids]
    store.apply_labels("m", labels, now=now, ttl=3600, aggregate=labels_everywhere)


def test_the_baseline_counts_only_labels_after_the_candidate_was_recorded(
    store: PredictionStore,
) -> None:
    add(store, [record(f"p{i}") for i in range(5)])
    _label(store, ["p0", "p1"])
    before = time.time()
    store.register_version("m", "v2", "{}", now=T0)
    store.register_version("m", "v2", "{}", now=T0 + 1)  # once: no second snapshot
    _label(store, ["p2", "p3", "p4"], now=T0 + 90)

    cells = store.cumulative_cells("m")
    since, taken_at = since_rollout(cells, "v2", "v1")

    assert cells[encode_key(cumulative_key("v1", ("labels",)))] == 5.0
    assert since[LABELS] == 3.0
    assert taken_at is not None and before <= taken_at <= time.time()
    assert since_rollout(cells, "v3", "v1") == ({LABELS: 5.0, **_confusion(5.0)}, None)


def test_rollout_cells_are_invisible_to_window_reads_and_survive_compaction(
    store: PredictionStore,
) -> None:
    add(store, [record(f"p{i}") for i in range(3)])
    _label(store, ["p0", "p1", "p2"])
    store.register_version("m", "v2", "{}", now=T0)
    window = store.sum_aggregates("m", "v1", since_bucket=0)

    dropped = store.compact_aggregates(
        "m", drop_before=BUCKET + 3600, rollup_before=0, rollup_width=60
    )
    assert dropped
    assert store.sum_aggregates("m", "v1", since_bucket=0) == {}
    assert MODEL_VERSION not in store.versions_with_data("m", since_bucket=0)
    assert store.bucket_cells("m", MODEL_VERSION, since_bucket=MODEL_BUCKET) == {}
    assert window[LABELS] == 3.0 and not any("cumulative" in key for key in window)
    assert since_rollout(store.cumulative_cells("m"), "v2", "v1")[0][LABELS] == 0.0
    assert store.count_predictions("m") == 3
    assert store.cumulative_cells("other") == {}


def _confusion(n: float) -> dict[str, float]:
    return {encode_key(("confusion", "fraud", "fraud")): n}


def test_cumulative_cells_are_exact_over_many_label_transactions(store: PredictionStore) -> None:
    add(store, [record(f"p{i}") for i in range(40)])
    for start in range(0, 40, 4):
        _label(store, [f"p{i}" for i in range(start, start + 4)], now=T0 + start)

    cells = store.cumulative_cells("m")

    assert cells == {
        encode_key(cumulative_key("v1", ("labels",))): 40.0,
        encode_key(cumulative_key("v1", ("confusion", "fraud", "fraud"))): 40.0,
    }
    increments = Increments()
    increments.add(MODEL_VERSION, MODEL_BUCKET, cumulative_key("v1", ("labels",)), 2.0)
    assert len(increments) == 1
