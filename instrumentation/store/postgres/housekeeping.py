"""PostgreSQL housekeeping: eviction in short batches that never block predictions; compaction.

Expired rows go in batches of :data:`EVICT_BATCH`, each its own short transaction on
the ``(model, created)`` index, with ``SKIP LOCKED`` so a row being labelled is left
for next time; each batch subtracts what it deleted from the stored-rows counter in
the same statement. Not time partitions: a partitioned table cannot enforce a unique
prediction id across partitions (the key would have to include the time), the
retention and row cap differ per model, and a cap in rows does not fall on
partition bounds.
"""

from __future__ import annotations

from typing import Any, Final

from instrumentation.store.encoding import COUNTER_BUCKET, COUNTER_KEY, COUNTER_VERSION, MARKER_KEY
from instrumentation.store.postgres.connection import Conn, Database, advisory_lock, shard

EVICT_BATCH: Final = 5000
"""Rows deleted per eviction transaction: short enough never to hold locks for long."""

_DELETE_BATCH = (
    "WITH gone AS (DELETE FROM {s}.predictions WHERE (model, prediction_id) IN ("
    "SELECT model, prediction_id FROM {s}.predictions "
    "WHERE model = %s AND {condition} ORDER BY created, prediction_id "
    "LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING 1), "
    "counter AS (INSERT INTO {s}.aggregates (model, version, bucket, key, shard, value) "
    "SELECT %s, %s, %s, %s, %s, -count(*) FROM gone HAVING count(*) > 0 "
    "ON CONFLICT (model, version, bucket, key, shard) "
    "DO UPDATE SET value = aggregates.value + excluded.value) "
    "SELECT count(*) FROM gone"
)

_DROP = (
    "WITH gone AS (DELETE FROM {s}.aggregates WHERE model = %s AND bucket < %s "
    "RETURNING version, bucket, key) "
    "SELECT count(*) FROM (SELECT DISTINCT version, bucket, key FROM gone "
    "WHERE key <> %s) AS d"
)

_ROLL_UP = (
    "WITH gone AS (DELETE FROM {s}.aggregates WHERE model = %(model)s "
    "AND bucket < %(before)s AND (mod(bucket, %(width)s) <> 0 OR shard <> 0) "
    "RETURNING version, bucket, key, value), "
    "rolled AS (INSERT INTO {s}.aggregates (model, version, bucket, key, shard, value) "
    "SELECT %(model)s, version, (bucket / %(width)s) * %(width)s, key, 0, "
    "sum(value) FROM gone GROUP BY 2, 3, 4 ORDER BY 2, 3, 4 "
    "ON CONFLICT (model, version, bucket, key, shard) "
    "DO UPDATE SET value = aggregates.value + excluded.value) "
    "SELECT count(*) FROM (SELECT DISTINCT version, bucket, key FROM gone "
    "WHERE mod(bucket, %(width)s) <> 0 AND key <> %(marker)s) AS d"
)


def evict(db: Database, model: str, *, now: float, retain: float, max_rows: int) -> int:
    """Delete rows past ``retain`` seconds, then all but the newest ``max_rows``.

    In batches of :data:`EVICT_BATCH`, each committed on its own, oldest first;
    rows locked by a join in progress are skipped (the next run takes them).
    As in SQLite, the cap's boundary is read first: an evictor working from an
    old boundary can only delete fewer rows, never one of the newest.
    """
    with db.connection() as conn:
        boundary = conn.execute(
            db.q(
                "SELECT created, prediction_id FROM {s}.predictions WHERE model = %s "
                "ORDER BY created DESC, prediction_id DESC LIMIT 1 OFFSET %s"
            ),
            (model, max_rows),
        ).fetchone()
        removed = _delete_batches(db, conn, model, "created < %s", (now - retain,))
        if boundary is not None:
            removed += _delete_batches(
                db, conn, model, "(created, prediction_id) <= (%s, %s)", tuple(boundary)
            )
    return removed


def _delete_batches(
    db: Database, conn: Conn, model: str, condition: str, args: tuple[Any, ...]
) -> int:
    """Delete the rows meeting ``condition`` in autocommitted batches; how many went."""
    statement = db.q(_DELETE_BATCH.replace("{condition}", condition))
    counter = (model, COUNTER_VERSION, COUNTER_BUCKET, COUNTER_KEY, shard(conn))
    removed = 0
    while True:
        # Autocommit: each batch is its own transaction, the counter's decrement in it.
        row = conn.execute(statement, (model, *args, EVICT_BATCH, *counter)).fetchone()
        deleted = int(row[0]) if row is not None else 0
        removed += deleted
        if deleted < EVICT_BATCH:
            return removed


def compact(
    db: Database, model: str, *, drop_before: int, rollup_before: int, rollup_width: int
) -> int:
    """Drop old buckets; roll older ones, and their shards, into shard 0 of span buckets.

    Returns the cells (version, bucket, key) deleted, whatever their shards and
    not counting write markers: the figure SQLite gives for the same data.
    """
    with db.transaction() as conn:
        advisory_lock(conn, f"{db.schema}.compact\x1f{model}")  # one compaction per model at once
        dropped = conn.execute(db.q(_DROP), (model, drop_before, MARKER_KEY)).fetchone()
        merged = conn.execute(
            db.q(_ROLL_UP),
            {"model": model, "before": rollup_before, "width": rollup_width, "marker": MARKER_KEY},
        ).fetchone()
    return sum(int(row[0]) for row in (dropped, merged) if row is not None)
