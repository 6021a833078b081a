"""PostgreSQL aggregate cells: sharded upserts riding on a row statement, and the window reads.

**Sharded cells.** Every request adds to the same few cells (the bucket's prediction
count, say); one row per cell would make every request wait for the row lock of the
one before, until its commit. Cells are keyed ``(model, version, bucket, key,
shard)`` with ``shard = backend pid % SHARDS``: the pid of the server process behind
a connection is unique among live connections of every replica, so concurrent
transactions write different rows (up to ``SHARDS`` of them) without any
coordination. Reads ``SUM`` the shards; compaction folds old buckets' shards into
shard 0. Cells are locked in ``(version, bucket, key)`` order: no deadlock.

Write markers and the stored-rows counter are cells like any other (see
:mod:`~instrumentation.store.encoding`), written by the same upsert as the cells
they go with; a partial index (``aggregates_writes``) reads a window's markers
without its cells.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from instrumentation.store import encoding
from instrumentation.store.encoding import COUNTER_BUCKET, COUNTER_KEY, COUNTER_VERSION, MARKER_KEY
from instrumentation.store.postgres.connection import Conn, Database, shard
from instrumentation.store.window_cache import Buckets

UPSERT_CELLS = (
    "INSERT INTO {s}.aggregates (model, version, bucket, key, shard, value) "
    "SELECT %s, c.version, c.bucket, c.key, %s, c.value "
    "FROM unnest(%b::text[], %b::int8[], %b::text[], %b::float8[]) "
    "AS c(version, bucket, key, value) ORDER BY c.version, c.bucket, c.key "
    "ON CONFLICT (model, version, bucket, key, shard) "
    "DO UPDATE SET value = aggregates.value + excluded.value"
)


def with_cells(
    db: Database,
    conn: Conn,
    model: str,
    cells: list[encoding.Cell],
    statement: str,
    args: tuple[Any, ...],
    *,
    inserted: int = 0,
) -> None:
    """Run ``statement`` with the cells' upsert attached: one round trip for both.

    The upsert is a CTE that nothing reads, which PostgreSQL runs to completion
    after the main statement: rows, then cells, in every writer. It also adds
    ``inserted`` rows to the stored-rows counter and a write marker to every bucket
    it touches.
    """
    rows = encoding.cells_to_write(cells, inserted=inserted)
    if not rows:
        conn.execute(db.q(statement), args)
        return
    upsert = _upsert_args(conn, model, rows)
    conn.execute(db.q(f"WITH cells AS ({UPSERT_CELLS}) {statement}"), (*upsert, *args))


def write(db: Database, conn: Conn, model: str, cells: list[encoding.Cell]) -> None:
    """The cells' upsert alone (with their markers), when no row statement carries it."""
    rows = encoding.cells_to_write(cells)
    if rows:
        conn.execute(db.q(UPSERT_CELLS), _upsert_args(conn, model, rows))


def _upsert_args(conn: Conn, model: str, rows: list[encoding.Cell]) -> tuple[Any, ...]:
    versions, buckets, keys, amounts = (list(c) for c in zip(*rows, strict=True))
    return (model, shard(conn), versions, buckets, keys, amounts)


def counted(db: Database, conn: Conn, model: str) -> int:
    """``model``'s stored rows: its counter, summed over shards (0 with none)."""
    row = conn.execute(
        db.q(
            "SELECT coalesce(sum(value), 0) FROM {s}.aggregates "
            "WHERE model = %s AND version = %s AND bucket = %s AND key = %s"
        ),
        (model, COUNTER_VERSION, COUNTER_BUCKET, COUNTER_KEY),
    ).fetchone()
    return int(row[0]) if row is not None else 0


class _Buckets:
    """:class:`~instrumentation.store.window_cache.Buckets` of one version, shards summed."""

    def __init__(self, db: Database, conn: Conn, model: str, version: str) -> None:
        self._db, self._conn, self._model, self._version = db, conn, model, version

    def markers(self, since_bucket: int) -> dict[int, float]:
        rows = self._conn.execute(
            self._db.q(
                "SELECT bucket, sum(value) FROM {s}.aggregates WHERE model = %s "
                "AND version = %s AND key = %s AND bucket >= %s GROUP BY bucket"
            ),
            (self._model, self._version, MARKER_KEY, since_bucket),
        ).fetchall()
        return {int(bucket): float(marker) for bucket, marker in rows}

    def cells(self, buckets: list[int]) -> Iterator[tuple[int, str, float]]:
        rows = self._conn.execute(
            self._db.q(
                "SELECT bucket, key, sum(value) FROM {s}.aggregates WHERE model = %s "
                "AND version = %s AND bucket = ANY(%b) AND key <> %s GROUP BY bucket, key"
            ),
            (self._model, self._version, buckets, MARKER_KEY),
        )
        for bucket, key, value in rows:
            yield int(bucket), key, float(value)


@contextmanager
def buckets(db: Database, conn: Conn, model: str, version: str) -> Iterator[Buckets]:
    """A version's buckets in one read-only REPEATABLE READ transaction (one snapshot)."""
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield _Buckets(db, conn, model, version)


def versions_with_data(db: Database, conn: Conn, model: str, since_bucket: int) -> set[str]:
    """Versions with aggregate cells in the buckets of a window: their markers' index."""
    rows = conn.execute(
        db.q(
            "SELECT DISTINCT version FROM {s}.aggregates WHERE model = %s "
            "AND key = %s AND bucket >= %s"
        ),
        (model, MARKER_KEY, since_bucket),
    ).fetchall()
    return {version for (version,) in rows}
