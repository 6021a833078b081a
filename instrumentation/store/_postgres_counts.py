"""PostgreSQL read path: the stored-rows counter and the window cache's write markers.

The counter keeps ``count_predictions`` O(shards) where ``count(*)`` reads every
row's index entry (~O(N) per ``GET /monitor``). As in SQLite it is a cell of the
``aggregates`` table outside every window (version ``""``, bucket
:data:`COUNTER_BUCKET`, after any time, so compaction never touches it), sharded
like every cell so concurrent inserts never wait for one row. Inserts add to it in
their own statement, each eviction batch subtracts what it deleted in its own:
exact. Schema version 3 starts it from a count.

Write markers (see :mod:`._window_cache`) are cells of their bucket under
:data:`MARKER_KEY`, a JSON string where every real key is a JSON array, so no cell
is mistaken for one; a bucket's marker is the sum of its shards. They are written
by the same upsert as the cells they mark (one lock order), rolled up and dropped
with them by compaction, and read through a partial index of their own, so reading
a day's markers costs ~a row per bucket, not the day's cells.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

import psycopg

from instrumentation.store import _window_cache as window_cache
from instrumentation.store.base import encode_key

COUNTER_VERSION: Final = ""
COUNTER_BUCKET: Final = 2**62
COUNTER_KEY: Final = encode_key(("stored_predictions",))
MARKER_KEY: Final = '"writes"'

_Conn = psycopg.Connection[tuple[Any, ...]]
_Cell = tuple[str, int, str, float]


def counter_cell(rows: int) -> _Cell:
    """The counter increment of ``rows`` inserted rows."""
    return (COUNTER_VERSION, COUNTER_BUCKET, COUNTER_KEY, float(rows))


def marker_cells(cells: Sequence[_Cell]) -> list[_Cell]:
    """A fresh marker increment for each (version, bucket) among ``cells``."""
    seen = {(version, bucket) for version, bucket, _, _ in cells if version != COUNTER_VERSION}
    return [(v, b, MARKER_KEY, window_cache.draw()) for v, b in sorted(seen)]


def counted(conn: _Conn, q: Callable[[str], str], model: str) -> int:
    """``model``'s stored rows: its counter, summed over shards (0 with none)."""
    row = conn.execute(
        q(
            "SELECT coalesce(sum(value), 0) FROM {s}.aggregates "
            "WHERE model = %s AND version = %s AND bucket = %s AND key = %s"
        ),
        (model, COUNTER_VERSION, COUNTER_BUCKET, COUNTER_KEY),
    ).fetchone()
    return int(row[0]) if row is not None else 0


class _PostgresBuckets:
    def __init__(self, conn: _Conn, q: Callable[[str], str], model: str, version: str) -> None:
        self._conn, self._q, self._model, self._version = conn, q, model, version

    def markers(self, since_bucket: int) -> dict[int, float]:
        rows = self._conn.execute(
            self._q(
                "SELECT bucket, sum(value) FROM {s}.aggregates WHERE model = %s "
                "AND version = %s AND key = %s AND bucket >= %s GROUP BY bucket"
            ),
            (self._model, self._version, MARKER_KEY, since_bucket),
        ).fetchall()
        return {int(bucket): float(marker) for bucket, marker in rows}

    def cells(self, buckets: list[int]) -> Iterator[tuple[int, str, float]]:
        rows = self._conn.execute(
            self._q(
                "SELECT bucket, key, sum(value) FROM {s}.aggregates WHERE model = %s "
                "AND version = %s AND bucket = ANY(%b) AND key <> %s GROUP BY bucket, key"
            ),
            (self._model, self._version, buckets, MARKER_KEY),
        )
        for bucket, key, value in rows:
            yield int(bucket), key, float(value)


@contextmanager
def buckets(
    conn: _Conn, q: Callable[[str], str], model: str, version: str
) -> Iterator[window_cache.Buckets]:
    """A version's buckets in one read-only REPEATABLE READ transaction (one snapshot)."""
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield _PostgresBuckets(conn, q, model, version)
