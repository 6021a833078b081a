"""SQLite housekeeping: evicting old rows (the counter follows), compacting old buckets."""

from __future__ import annotations

from instrumentation.store.sqlite import cells
from instrumentation.store.sqlite.connection import Database

_UPSERT_AGGREGATE = cells.UPSERT_AGGREGATES + "(?, ?, ?, ?, ?)" + cells.ON_CELL_CONFLICT


def evict(db: Database, model: str, *, now: float, retain: float, max_rows: int) -> int:
    """Delete rows past ``retain`` seconds, then all but the newest ``max_rows``.

    The cap's boundary (the newest row not kept, by time then id) is found by a
    read outside the write transaction, so its index scan never holds up
    predictions; the delete then removes that row and everything older. Two
    processes evicting at once, or one working from an old boundary, can only
    delete a subset of that: never a row among the newest ``max_rows``.
    """
    boundary = (
        db.reader()
        .execute(
            "SELECT created, prediction_id FROM predictions WHERE model=? "
            "ORDER BY created DESC, prediction_id DESC LIMIT 1 OFFSET ?",
            (model, max_rows),
        )
        .fetchone()
    )
    with db.transaction() as cur:
        cur.execute("DELETE FROM predictions WHERE model=? AND created<?", (model, now - retain))
        removed = cur.rowcount
        if boundary is not None:
            cur.execute(
                "DELETE FROM predictions WHERE model=? AND (created<? "
                "OR (created=? AND prediction_id<=?))",
                (model, boundary[0], boundary[0], boundary[1]),
            )
            removed += cur.rowcount
        cells.add_to_counter(cur, model, -removed)
    return int(removed)


def compact(
    db: Database, model: str, *, drop_before: int, rollup_before: int, rollup_width: int
) -> int:
    """Drop old buckets and roll older ones up into ``rollup_width`` buckets (see protocol).

    Markers go and merge with their cells (a span's marker is the sum of its
    buckets'), but are not counted among the rows deleted.
    """
    with db.transaction() as cur:
        removed = -cells.count_markers(cur, model, "bucket<?", (drop_before,))
        cur.execute("DELETE FROM aggregates WHERE model=? AND bucket<?", (model, drop_before))
        removed += cur.rowcount
        scope = "model=? AND bucket<? AND bucket % ? != 0"
        args = (model, rollup_before, rollup_width)
        removed -= cells.count_markers(
            cur, model, "bucket<? AND bucket % ? != 0", (rollup_before, rollup_width)
        )
        merged = cur.execute(
            f"SELECT version, (bucket / ?) * ?, key, SUM(value) FROM aggregates WHERE {scope} "
            "GROUP BY version, 2, key",
            (rollup_width, rollup_width, *args),
        ).fetchall()
        cur.execute(f"DELETE FROM aggregates WHERE {scope}", args)
        removed += cur.rowcount
        cur.executemany(_UPSERT_AGGREGATE, [(model, v, b, k, s) for v, b, k, s in merged])
    return int(removed)
