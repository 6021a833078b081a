"""SQLite aggregate cells: the one upsert of cells, markers and counter, and the window reads.

Cells, write markers and the stored-rows counter are rows of ``aggregates``, encoded
as :mod:`~instrumentation.store.encoding` says. A store written before the counter
existed has none: the first insert of a process counts the rows once (under the
write lock) to start it, and until then readers count.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Final

from instrumentation.store import encoding
from instrumentation.store.encoding import COUNTER_BUCKET, COUNTER_KEY, COUNTER_VERSION, MARKER_KEY
from instrumentation.store.window_cache import Buckets

UPSERT_AGGREGATES: Final = "INSERT INTO aggregates (model, version, bucket, key, value) VALUES "
ON_CELL_CONFLICT: Final = (
    " ON CONFLICT (model, version, bucket, key) DO UPDATE SET value = value + excluded.value"
)
MAX_VARIABLES: Final = 30_000
"""Bound parameters per statement, under SQLite's limit (32,766 since 3.32)."""

_COUNTER_WHERE = "model=? AND version=? AND bucket=? AND key=?"
_COUNTER = (COUNTER_VERSION, COUNTER_BUCKET, COUNTER_KEY)
_IS_MARKER = f"key = '{MARKER_KEY}'"
"""Spelled out, not bound: SQLite may use the partial index ``aggregates_writes`` only then."""

_MARKERS = "aggregates INDEXED BY aggregates_writes"
"""Markers are read through their partial index: without statistics the planner would
take the primary key's ``(model, version, bucket)`` range and read every cell of it."""

Target = sqlite3.Cursor | sqlite3.Connection


def insert_many(
    cur: sqlite3.Cursor,
    head: str,
    prefix: tuple[object, ...],
    rows: Sequence[tuple[object, ...]],
    *,
    suffix: str = "",
) -> None:
    """``head`` with one ``VALUES`` tuple per row of ``prefix + row``: one statement per chunk.

    One statement steps once through SQLite's parser and the module's binding code
    for the whole batch, where ``executemany`` pays both per row.
    """
    if not rows:
        return
    width = len(prefix) + len(rows[0])
    marks = "(" + ",".join("?" * width) + ")"
    step = max(1, MAX_VARIABLES // width)
    for start in range(0, len(rows), step):
        chunk = rows[start : start + step]
        cur.execute(
            head + ",".join([marks] * len(chunk)) + suffix,
            [value for row in chunk for value in (*prefix, *row)],
        )


def write(
    cur: sqlite3.Cursor, model: str, cells: list[encoding.Cell], *, inserted: int = 0
) -> None:
    """Add ``cells``, their buckets' markers and ``inserted`` rows to the counter: one upsert."""
    rows = encoding.cells_to_write(cells, inserted=inserted)
    insert_many(cur, UPSERT_AGGREGATES, (model,), rows, suffix=ON_CELL_CONFLICT)


def counted(cur: Target, model: str) -> int | None:
    """The counter of ``model``'s stored rows, or None when it has none yet."""
    row = cur.execute(
        f"SELECT value FROM aggregates WHERE {_COUNTER_WHERE}", (model, *_COUNTER)
    ).fetchone()
    return None if row is None else int(row[0])


def count_rows(cur: Target, model: str) -> int:
    """``model``'s stored rows, counted (what the counter saves)."""
    (count,) = cur.execute("SELECT COUNT(*) FROM predictions WHERE model=?", (model,)).fetchone()
    return int(count)


def start_counter(cur: sqlite3.Cursor, model: str) -> None:
    """Create ``model``'s counter from a count, if it has none (inside a write transaction)."""
    if counted(cur, model) is None:
        cur.execute(
            "INSERT INTO aggregates (model, version, bucket, key, value) VALUES (?, ?, ?, ?, ?)",
            (model, *_COUNTER, count_rows(cur, model)),
        )


def add_to_counter(cur: sqlite3.Cursor, model: str, amount: int) -> None:
    """Add ``amount`` (negative: rows deleted) to ``model``'s counter, if it has one."""
    if amount:
        cur.execute(
            f"UPDATE aggregates SET value = value + ? WHERE {_COUNTER_WHERE}",
            (amount, model, *_COUNTER),
        )


def count_markers(cur: sqlite3.Cursor, model: str, condition: str, args: tuple[int, ...]) -> int:
    """Marker rows of ``model`` (every version) that meet ``condition`` on ``bucket``."""
    (count,) = cur.execute(
        f"SELECT COUNT(*) FROM {_MARKERS} WHERE model=? AND {_IS_MARKER} AND {condition}",
        (model, *args),
    ).fetchone()
    return int(count)


class _Buckets:
    """:class:`~instrumentation.store.window_cache.Buckets` of one version, in SQLite."""

    def __init__(self, conn: sqlite3.Connection, model: str, version: str) -> None:
        self._conn, self._model, self._version = conn, model, version

    def markers(self, since_bucket: int) -> dict[int, float]:
        return dict(
            self._conn.execute(
                f"SELECT bucket, value FROM {_MARKERS} WHERE model=? AND version=? "
                f"AND bucket>=? AND {_IS_MARKER}",
                (self._model, self._version, since_bucket),
            ).fetchall()
        )

    def cells(self, buckets: list[int]) -> Iterator[tuple[int, str, float]]:
        for start in range(0, len(buckets), 500):
            chunk = buckets[start : start + 500]
            marks = ",".join("?" * len(chunk))
            yield from self._conn.execute(
                f"SELECT bucket, key, value FROM aggregates WHERE model=? AND version=? "
                f"AND bucket IN ({marks}) AND key<>?",
                (self._model, self._version, *chunk, MARKER_KEY),
            )


@contextmanager
def buckets(conn: sqlite3.Connection, model: str, version: str) -> Iterator[Buckets]:
    """A version's buckets in one SQLite read transaction (``conn`` in autocommit mode)."""
    conn.execute("BEGIN")
    try:
        yield _Buckets(conn, model, version)
    finally:
        conn.execute("COMMIT")


def versions_with_data(conn: sqlite3.Connection, model: str, since_bucket: int) -> set[str]:
    """Versions with aggregate cells in the buckets of a window.

    A loose index scan: one seek per distinct version in the primary key (model,
    version, bucket, …) and one to its newest bucket, rather than reading every
    cell of the window (~10 ms at a million predictions a day).
    """
    found: set[str] = set()
    version = COUNTER_VERSION  # every real version sorts after it
    while True:
        row = conn.execute(
            "SELECT version FROM aggregates WHERE model=? AND version>? ORDER BY version LIMIT 1",
            (model, version),
        ).fetchone()
        if row is None:
            return found
        (version,) = row
        (newest,) = conn.execute(
            "SELECT max(bucket) FROM aggregates WHERE model=? AND version=?", (model, version)
        ).fetchone()
        if newest >= since_bucket:
            found.add(version)
