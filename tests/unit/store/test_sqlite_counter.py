"""SQLite's stored-rows counter: count_predictions without reading every row, and exact."""

from __future__ import annotations

from pathlib import Path

import pytest

from instrumentation import SQLiteStore
from instrumentation.store.protocol import DuplicatePredictionId
from instrumentation.store.sqlite import cells
from tests.unit.store.contract import T0, add, record


def test_the_counter_follows_inserts_reused_ids_and_eviction(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db", checkpoint_seconds=None)
    add(store, [record(f"p{i}", created=T0 + i) for i in range(10)])
    with pytest.raises(DuplicatePredictionId):
        add(store, [record("new"), record("p3")])
    add(store, [record("q")], model="other")

    assert cells.counted(store.db.conn, "m") == store.count_predictions("m") == 10
    assert store.evict("m", now=T0 + 100, retain=1000, max_rows=6) == 4
    assert cells.counted(store.db.conn, "m") == store.count_predictions("m") == 6
    assert store.count_predictions("other") == 1
    # Outside every window and untouched by compaction.
    assert store.sum_aggregates("m", "v1", since_bucket=0) == {'["predictions"]': 10.0}
    store.compact_aggregates("m", drop_before=2**40, rollup_before=2**40, rollup_width=3600)
    assert store.count_predictions("m") == 6
    store.close()


def test_a_store_written_before_the_counter_starts_it_from_a_count(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db", checkpoint_seconds=None)
    add(store, [record(f"p{i}") for i in range(5)])
    store.db.conn.execute("DELETE FROM aggregates WHERE version=''")  # as an older version left it
    store.close()

    reopened = SQLiteStore(tmp_path / "s.db", checkpoint_seconds=None)
    assert reopened.count_predictions("m") == 5  # counted while there is no counter
    add(reopened, [record("p5"), record("p6")])
    assert cells.counted(reopened.db.conn, "m") == reopened.count_predictions("m") == 7
    reopened.close()
