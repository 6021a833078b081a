"""The SQLite store's schema: its versions and the migration that brings a file up.

The version lives in ``PRAGMA user_version`` (the file header), so it commits or
rolls back with the tables. Every process runs :func:`migrate` at start in one
``BEGIN IMMEDIATE`` transaction, which holds the write lock from reading the
version to writing the new one: processes opening an old file together take turns,
the first migrates, the others find it done. A file newer than this code is refused.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Final

from instrumentation.errors import StoreSchemaTooNew
from instrumentation.store import encoding

logger = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 4
"""The schema this code writes (``PRAGMA user_version``); a newer store is refused."""

NEWER_SCHEMA: Final = (
    "the store {path} is at schema version {found}, newer than the highest this release "
    "knows ({known}): upgrade the library, or point MONITOR_STORE_URL at another file"
)
"""Raised (as :class:`~instrumentation.errors.StoreSchemaTooNew`) when an older release
opens a migrated store."""

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS predictions (
    model TEXT NOT NULL,
    prediction_id TEXT NOT NULL,
    version TEXT NOT NULL,
    created REAL NOT NULL,
    label TEXT,
    value REAL,
    scores TEXT,
    groups TEXT NOT NULL,
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    feedback TEXT,
    feedback_at REAL,
    PRIMARY KEY (model, prediction_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS predictions_by_age ON predictions (model, created);
CREATE TABLE IF NOT EXISTS aggregates (
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    key TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (model, version, bucket, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS group_values (
    model TEXT NOT NULL,
    attribute TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (model, attribute, value)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires REAL NOT NULL
);
"""
"""Schema version 1. Stores it made carry no version marker: ``user_version`` 0."""

V3_MARKER_PREFIX: Final = "\x00writes\x00"
"""Version 3 kept a bucket's write marker under the version ``V3_MARKER_PREFIX + version``."""

_V3_MARKER_RANGE: Final = (V3_MARKER_PREFIX, V3_MARKER_PREFIX[:-1] + "\x01")


def _markers_in_cells(cur: sqlite3.Cursor) -> None:
    """Version 4: write markers become cells of the version they mark, as in PostgreSQL.

    Version 3's marker rows (a NUL-prefixed version) move to key
    :data:`~instrumentation.store.encoding.MARKER_KEY` of their own version, and
    every data bucket still without a marker (written before version 3 read it) gets
    one. A partial index, covering (it holds the value), reads a window's markers
    without its cells: a day's 1,440 markers in ~2 ms, where a lookup of each row
    costs ~9 ms. Done in Python: SQLite's ``length()`` and ``substr()`` stop at a NUL.
    """
    moved = cur.execute(
        "SELECT model, version, bucket, value FROM aggregates WHERE version>=? AND version<?",
        _V3_MARKER_RANGE,
    ).fetchall()
    cur.execute("DELETE FROM aggregates WHERE version>=? AND version<?", _V3_MARKER_RANGE)
    cur.executemany(
        "INSERT INTO aggregates (model, version, bucket, key, value) VALUES (?, ?, ?, ?, ?)",
        [
            (model, version[len(V3_MARKER_PREFIX) :], bucket, encoding.MARKER_KEY, value)
            for model, version, bucket, value in moved
        ],
    )
    cur.execute(
        "INSERT INTO aggregates (model, version, bucket, key, value) "
        "SELECT model, version, bucket, ?, 1 FROM aggregates WHERE version<>? "
        "GROUP BY model, version, bucket ON CONFLICT (model, version, bucket, key) DO NOTHING",
        (encoding.MARKER_KEY, encoding.COUNTER_VERSION),
    )
    cur.execute(
        "CREATE INDEX IF NOT EXISTS aggregates_writes "
        f"ON aggregates (model, version, bucket, value) WHERE key = '{encoding.MARKER_KEY}'"
    )


MIGRATIONS: Final[tuple[str | Callable[[sqlite3.Cursor], None], ...]] = (
    SCHEMA,
    # 2: the model versions a store has seen (for per-version reports).
    """
    CREATE TABLE IF NOT EXISTS model_versions (
        model TEXT NOT NULL,
        version TEXT NOT NULL,
        spec TEXT,
        first_seen REAL,
        PRIMARY KEY (model, version)
    ) WITHOUT ROWID;
    """,
    # 3: aggregates also hold the stored-rows counter and version-3 write markers, both
    # added by the code that read them; the bump alone made version-2 code, which would
    # write cells without markers, refuse the store instead of silently staling it.
    "",
    # 4: the write markers in the cells of the version they mark (see encoding).
    _markers_in_cells,
)
"""``MIGRATIONS[i]`` takes a store from version ``i`` to ``i + 1``: SQL, or a function."""


def schema_version(cur: sqlite3.Cursor) -> int:
    """The store's schema version: 0 for a new file, 1 for one without a marker.

    Version 1 wrote no marker (``user_version`` stayed 0); its ``predictions``
    table tells such a store from an empty file.
    """
    (marked,) = cur.execute("PRAGMA user_version").fetchone()
    if marked:
        return int(marked)
    legacy = cur.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='predictions'"
    ).fetchone()
    return 1 if legacy is not None else 0


def migrate(cur: sqlite3.Cursor, path: Path) -> None:
    """Create the schema, or bring an older store's up to :data:`SCHEMA_VERSION`.

    Runs inside the caller's ``BEGIN IMMEDIATE`` transaction.

    Raises:
        StoreSchemaTooNew: the store is newer than this code (:data:`NEWER_SCHEMA`).
    """
    found = schema_version(cur)
    if found > SCHEMA_VERSION:
        raise StoreSchemaTooNew(NEWER_SCHEMA.format(path=path, found=found, known=SCHEMA_VERSION))
    for step in MIGRATIONS[found:]:
        if callable(step):
            step(cur)
            continue
        for statement in step.split(";"):
            if statement.strip():
                cur.execute(statement)
    if found < SCHEMA_VERSION:
        cur.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
    if 0 < found < SCHEMA_VERSION:
        logger.info("store %s: schema version %d -> %d", path, found, SCHEMA_VERSION)
