"""PostgreSQL's claiming label join against SQLite's locking one, where the claim cannot decide.

The claim writes each id's first valid label before the shared join decides. When
the join matches something else (the aggregator refuses the first label of an id
and the next item of that id then matches), the claim is rolled back and the
locking join runs: the result must be SQLite's, item for item.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from harness.postgres import PostgresCluster
from instrumentation import SQLiteStore
from instrumentation.store.postgres import PostgresStore, labels
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


def test_the_claim_reads_predictions_once_not_once_per_label_whatever_the_statistics(
    postgres_cluster: PostgresCluster,
) -> None:
    # The trap, as served traffic set it: statistics taken while every row was
    # labelled (the unlabelled set looks empty), then a generic plan (a prepared
    # statement guesses 10 ids). A join left to the planner then read every
    # unlabelled row once per label: 2.2 s for 1000 labels over 8000 rows.
    schema = f"l_{uuid.uuid4().hex[:12]}"
    store = PostgresStore(postgres_cluster.url(), schema=schema)
    try:
        add(store, [record(f"old-{i:04d}") for i in range(300)])
        old = [(f"old-{i:04d}", "legit") for i in range(300)]
        store.apply_labels("m", old, now=T0 + 1, ttl=60, aggregate=count_labels)
        with psycopg.connect(postgres_cluster.url(), autocommit=True) as conn:
            conn.execute(f'ANALYZE "{schema}".predictions')
        add(store, [record(f"new-{i:04d}") for i in range(2000)])
        ids = [f"new-{i:04d}" for i in range(0, 2000, 2)]
        plans = {}
        with psycopg.connect(postgres_cluster.url()) as conn:
            conn.execute("SET plan_cache_mode = force_generic_plan")
            for name, statement, params in (
                ("claim", labels._CLAIM, (T0, ids, ['"x"'] * 1000, "m", T0, 60.0)),
                ("update", labels._UPDATE, (T0, ids, ['"x"'] * 1000, "m")),
            ):
                with conn.transaction(force_rollback=True):
                    explain = f"EXPLAIN (ANALYZE, FORMAT JSON) {store.db.q(statement)}"
                    plans[name] = conn.execute(explain, params, prepare=True).fetchone()[0]
    finally:
        store.close()
    for name, plan in plans.items():
        nodes = list(_nodes(plan[0]["Plan"]))
        updated = [n for n in nodes if n.get("Index Name") == "predictions_pkey"]
        assert updated and updated[0]["Actual Loops"] == 1000, (name, plan)
        # Besides the point reads (by key, then by the row's address), predictions
        # is read at most once, and no join compares more pairs than it has rows.
        scans = [
            n
            for n in nodes
            if n.get("Relation Name") == "predictions"
            and n.get("Index Name") != "predictions_pkey"
            and n["Node Type"] != "Tid Scan"
        ]
        assert all(n["Actual Loops"] <= 1 for n in scans), (name, plan)
        assert sum(n.get("Rows Removed by Join Filter", 0) for n in nodes) <= 2300, (name, plan)


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from _nodes(child)
