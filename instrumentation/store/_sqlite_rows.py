"""SQLite statements of the write path: multi-row inserts, and the stored-rows counter.

The counter keeps ``count_predictions`` O(1) (a ``COUNT(*)`` reads the whole age
index: ~75 ms at a million rows, on every ``GET /monitor``). It is one row of the
``aggregates`` table, outside every window: version ``""`` (no model has it) and
bucket :data:`COUNTER_BUCKET` (after any time, so compaction, which only touches
buckets before a time, never moves or drops it). Inserts add to it and eviction
subtracts from it in their own transactions, so it is exact. A store written
before the counter existed has none: the first insert of a process counts the
rows once (under the write lock) to start it, and until then readers count.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Final

from instrumentation.store._rows import RECORD_COLUMNS
from instrumentation.store.base import encode_key

COUNTER_VERSION: Final = ""
COUNTER_BUCKET: Final = 2**62
COUNTER_KEY: Final = encode_key(("stored_predictions",))

COLUMNS: Final = ", ".join(RECORD_COLUMNS)
INSERT_PREDICTIONS: Final = f"INSERT INTO predictions (model, {COLUMNS}) VALUES "
UPSERT_AGGREGATES: Final = "INSERT INTO aggregates (model, version, bucket, key, value) VALUES "
ON_CELL_CONFLICT: Final = (
    " ON CONFLICT (model, version, bucket, key) DO UPDATE SET value = value + excluded.value"
)
MAX_VARIABLES: Final = 30_000
"""Bound parameters per statement, under SQLite's limit (32,766 since 3.32)."""

_COUNTER_WHERE = "model=? AND version=? AND bucket=? AND key=?"


def run(target: sqlite3.Cursor | sqlite3.Connection, statement: str) -> None:
    """Execute one statement without parameters."""
    target.execute(statement)


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


def counted(cur: sqlite3.Cursor | sqlite3.Connection, model: str) -> int | None:
    """The counter of ``model``'s stored rows, or None when it has none yet."""
    row = cur.execute(
        f"SELECT value FROM aggregates WHERE {_COUNTER_WHERE}",
        (model, COUNTER_VERSION, COUNTER_BUCKET, COUNTER_KEY),
    ).fetchone()
    return None if row is None else int(row[0])


def count_rows(cur: sqlite3.Cursor | sqlite3.Connection, model: str) -> int:
    """``model``'s stored rows, counted (what the counter saves)."""
    (count,) = cur.execute("SELECT COUNT(*) FROM predictions WHERE model=?", (model,)).fetchone()
    return int(count)


def start_counter(cur: sqlite3.Cursor, model: str) -> None:
    """Create ``model``'s counter from a count, if it has none (inside a write transaction)."""
    if counted(cur, model) is None:
        cur.execute(
            "INSERT INTO aggregates (model, version, bucket, key, value) VALUES (?, ?, ?, ?, ?)",
            (model, COUNTER_VERSION, COUNTER_BUCKET, COUNTER_KEY, count_rows(cur, model)),
        )


def add_to_counter(cur: sqlite3.Cursor, model: str, amount: int) -> None:
    """Add ``amount`` (negative: rows deleted) to ``model``'s counter, if it has one."""
    if amount:
        cur.execute(
            f"UPDATE aggregates SET value = value + ? WHERE {_COUNTER_WHERE}",
            (amount, model, COUNTER_VERSION, COUNTER_BUCKET, COUNTER_KEY),
        )
