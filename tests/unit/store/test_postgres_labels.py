"""PostgreSQL's claiming label join against SQLite's locking one, where the claim cannot decide.

The claim writes each id's first valid label before the shared join decides. When
the join matches something else (the aggregator refuses the first label of an id
and the next item of that id then matches), the claim is rolled back and the
locking join runs: the result must be SQLite's, item for item.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from harness.postgres import PostgresCluster
from instrumentation import SQLiteStore
from instrumentation.store.postgres import PostgresStore
from instrumentation.store.protocol import (
    Increments,
    Label,
    PredictionRecord,
    PredictionStore,
    per_label,
)
from tests.unit.store.contract import T0, add, count_labels, record


@per_label
def refuses_fraud(record: PredictionRecord, label: Label, now: float, out: Increments) -> None:
    if label == "fraud":
        raise ValueError("class unknown to this version")
    count_labels(record, label, now, out)


def _run(store: PredictionStore) -> tuple[list[str], dict[str, object], float]:
    add(store, [record("a"), record("b"), record("c")])
    items: list[tuple[str, Label | None]] = [
        ("a", "fraud"),  # claimed with "fraud", refused ...
        ("a", "legit"),  # ... then this one matches: the claim was wrong
        ("b", None),
        ("b", "legit"),
        ("c", "fraud"),  # refused: un-claimed
        ("zz", "legit"),
    ]
    outcomes = store.apply_labels("m", items, now=T0 + 1, ttl=60, aggregate=refuses_fraud)
    stored = store.get_predictions("m", ["a", "b", "c"])
    labels = store.sum_aggregates("m", "v1", since_bucket=0).get('["labels"]', 0.0)
    return [o.status for o in outcomes], {k: r.feedback for k, r in stored.items()}, labels


def test_a_claim_the_join_overrules_falls_back_to_the_locking_join(
    postgres_cluster: PostgresCluster, tmp_path: Path
) -> None:
    postgres = PostgresStore(postgres_cluster.url(), schema=f"l_{uuid.uuid4().hex[:12]}")
    sqlite = SQLiteStore(tmp_path / "store.db")
    try:
        expected = _run(sqlite)
        assert _run(postgres) == expected
    finally:
        postgres.close()
        sqlite.close()
    statuses, feedback, labels = expected
    assert statuses == ["invalid", "matched", "invalid", "matched", "invalid", "unknown"]
    assert feedback == {"a": "legit", "b": "legit", "c": None}
    assert labels == pytest.approx(2.0)
