"""SQLite window sums from cached buckets: equal to summing the table, re-reading only changes."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from instrumentation import SQLiteStore
from instrumentation.store.protocol import Increments
from instrumentation.store.sqlite import cells

HOUR = 3600
H0 = 1_800_000_000 - 1_800_000_000 % HOUR


def _write(store: SQLiteStore, bucket: int, rng: random.Random) -> None:
    increments = Increments()
    for key in (("predictions",), ("confusion", "a", "b"), ("log_loss",)):
        increments.add("v1", bucket, key, rng.choice([1.0, 2.0, 0.5]))
    with store.db.transaction() as cur:
        cells.write(cur, "m", increments.encoded())


def _summed(store: SQLiteStore, since: int) -> dict[str, float]:
    """The window as one SQL sum over the table (what the cache must equal)."""
    rows = store.db.reader().execute(
        "SELECT key, SUM(value) FROM aggregates WHERE model='m' AND version='v1' AND bucket>=? "
        """AND key <> '"writes"' GROUP BY key""",  # markers are not cells
        (since,),
    )
    return {key: float(total) for key, total in rows}


def test_cached_windows_follow_writes_from_other_processes_late_writes_and_compaction(
    tmp_path: Path,
) -> None:
    rng = random.Random(3)
    reader = SQLiteStore(tmp_path / "s.db", checkpoint_seconds=None)
    writer = SQLiteStore(tmp_path / "s.db", checkpoint_seconds=None)  # another worker
    windows = [H0, H0 + 90 * 60, H0 + 4 * HOUR + 60 * 17]
    for minute in range(5 * 60):
        _write(writer, H0 + 60 * minute, rng)
    for since in windows:
        assert reader.sum_aggregates("m", "v1", since_bucket=since) == pytest.approx(
            _summed(reader, since), abs=1e-9
        )
    read = reader._windows.reread

    _write(writer, H0 + 5 * HOUR, rng)  # the new bucket
    _write(writer, H0 + 60 * 7, rng)  # a late write into a long-closed bucket
    for since in windows:
        assert reader.sum_aggregates("m", "v1", since_bucket=since) == pytest.approx(
            _summed(reader, since), abs=1e-9
        )
    assert reader._windows.reread - read == 2  # only the two buckets written

    writer.compact_aggregates(
        "m", drop_before=H0 + HOUR, rollup_before=H0 + 3 * HOUR, rollup_width=HOUR
    )
    _write(writer, H0 + 60 * 70, rng)  # a bucket rolled away, written again
    _write(writer, H0 + 60 * 5, rng)  # a bucket dropped, written again
    for since in [*windows, H0 + 60 * 70]:
        assert reader.sum_aggregates("m", "v1", since_bucket=since) == pytest.approx(
            _summed(reader, since), abs=1e-9
        ), since
    reader.close()
    writer.close()


def test_a_store_written_before_markers_gets_them_on_first_read(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db", checkpoint_seconds=None)
    rng = random.Random(4)
    for minute in range(30):
        _write(store, H0 + 60 * minute, rng)
    # As a store before version 4 left it: no markers (the migration gives them).
    store.db.conn.execute("""DELETE FROM aggregates WHERE key = '"writes"'""")
    store.db.conn.execute("PRAGMA user_version = 3")
    store.close()

    reopened = SQLiteStore(tmp_path / "s.db", checkpoint_seconds=None)
    assert reopened.sum_aggregates("m", "v1", since_bucket=H0) == pytest.approx(
        _summed(reopened, H0), abs=1e-9
    )
    reopened.close()
