"""SQLite store: the embedded default, shared by every worker process on one host.

WAL mode lets readers run beside the single writer; ``synchronous=NORMAL`` makes a
commit survive a process crash (``kill -9``) without an fsync per request. Each
process keeps one connection, serialised by a lock because BentoML runs sync APIs
in a thread pool; across processes SQLite's own locking (``BEGIN IMMEDIATE`` with a
busy timeout) serialises writers.

A commit only appends to the write-ahead log. Copying the log into the database
(a checkpoint, with its fsyncs) is done by a background thread, so no request pays
for one: left to SQLite, the commit that crosses 1,000 log pages runs it, a ~20 ms
stall in the request path every few hundred requests.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from instrumentation.store import _sqlite_rows as sql
from instrumentation.store import _window_cache as window_cache
from instrumentation.store._group_commit import GroupCommitter
from instrumentation.store._join import (
    first_reused_id,
    group_pairs,
    join_labels,
    with_capped_groups,
)
from instrumentation.store._rows import encode_label, record_rows, records_from_rows
from instrumentation.store.base import (
    DuplicatePredictionId,
    Increments,
    Label,
    LabelAggregator,
    LabelOutcome,
    PredictionRecord,
    VersionInfo,
)

logger = logging.getLogger(__name__)

CHECKPOINT_BACKSTOP_PAGES = 10_000
DELETED_FILE = "database file {path} was deleted or replaced; not writing into the lost file"
"""SQLite's own checkpoint stays on past this log size (~40 MB), should the thread lag."""

SCHEMA_VERSION: Final = 3
"""The schema this code writes (``PRAGMA user_version``); a newer store is refused."""

NEWER_SCHEMA: Final = (
    "the store {path} is at schema version {found}, newer than the highest this release "
    "knows ({known}): upgrade the library, or point MONITOR_STORE_URL at another file"
)
"""Raised (as :class:`RuntimeError`) when an older release opens a migrated store."""

_SCHEMA = """
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

_MIGRATIONS: Final = (
    _SCHEMA,
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
    # 3: aggregates also hold a stored-rows counter (version '') and per-bucket write
    # markers (versions starting with NUL) that the window cache trusts. Both are added
    # by the code that reads them; the bump alone makes version-2 code, which would
    # write cells without markers, refuse the store instead of silently staling it.
    "",
)
"""``_MIGRATIONS[i]`` takes a store from version ``i`` to ``i + 1``."""

_UPSERT_AGGREGATE = """
INSERT INTO aggregates (model, version, bucket, key, value) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (model, version, bucket, key) DO UPDATE SET value = value + excluded.value
"""

_Group = tuple[str, str, str]


def _schema_version(cur: sqlite3.Cursor) -> int:
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


class SQLiteStore:
    """A :class:`~instrumentation.store.base.PredictionStore` in one SQLite file.

    >>> import tempfile, pathlib
    >>> store = SQLiteStore(pathlib.Path(tempfile.mkdtemp()) / "store.db")
    >>> store.count_predictions("demo")
    0
    """

    def __init__(
        self,
        path: Path | str,
        *,
        busy_timeout: float = 30.0,
        checkpoint_seconds: float | None = 1.0,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._busy_timeout = busy_timeout
        self._readers = threading.local()
        self._all_readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        # Group values already committed as admitted: admission is permanent, so these
        # need no query. (Values admitted by an uncommitted transaction are not cached.)
        self._admitted: set[tuple[str, str, str]] = set()
        self._windows = window_cache.WindowCache()
        self._counting: set[str] = set()
        """Models whose stored-rows counter this process has seen committed."""
        self._conn = self._connect()
        self._inode = os.stat(self.path).st_ino
        self._enable_wal()
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._committer = GroupCommitter(
            self._lock,
            begin=self._begin,
            commit=lambda cur: sql.run(cur, "COMMIT"),
            rollback=lambda: sql.run(self._conn, "ROLLBACK"),
            savepoint=lambda cur, action: sql.run(cur, f"{action} job"),
            in_transaction=lambda: self._conn.in_transaction,
        )
        try:
            self._migrate()
        except BaseException:
            self._conn.close()
            raise
        self._closed = threading.Event()
        self._checkpointer: threading.Thread | None = None
        if checkpoint_seconds is not None:
            self._conn.execute(f"PRAGMA wal_autocheckpoint={CHECKPOINT_BACKSTOP_PAGES}")
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop,
                args=(checkpoint_seconds,),
                name="sqlite-checkpoint",
                daemon=True,
            )
            self._checkpointer.start()

    def _migrate(self) -> None:
        """Create the schema, or bring an older store's up to :data:`SCHEMA_VERSION`.

        One ``BEGIN IMMEDIATE`` transaction holds the write lock from reading the
        version to writing the new one: processes opening an old file together
        take turns, the first migrates, the others find it done. ``user_version``
        lives in the file header and commits (or rolls back) with the tables.

        Raises:
            RuntimeError: the store is newer than this code (:data:`NEWER_SCHEMA`).
        """
        with self._transaction() as cur:
            found = _schema_version(cur)
            if found > SCHEMA_VERSION:
                raise RuntimeError(
                    NEWER_SCHEMA.format(path=self.path, found=found, known=SCHEMA_VERSION)
                )
            for script in _MIGRATIONS[found:]:
                for statement in script.split(";"):
                    if statement.strip():
                        cur.execute(statement)
            if found < SCHEMA_VERSION:
                cur.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
        if 0 < found < SCHEMA_VERSION:
            logger.info("store %s: schema version %d -> %d", self.path, found, SCHEMA_VERSION)

    def _enable_wal(self) -> None:
        """Switch the file to WAL, retrying while another process opens it too.

        Workers start together on a fresh file; SQLite answers a journal-mode change
        that would deadlock with "database is locked" at once, without waiting out
        the busy timeout, and the worker would die at start-up.
        """
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                self._conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _connect(self) -> sqlite3.Connection:
        """A connection in autocommit mode (transactions are explicit), with the busy timeout.

        Usable from any thread: the writer is shared by request threads under a lock,
        and :meth:`close` closes every thread's reader.
        """
        return sqlite3.connect(
            self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
        )

    def _checkpoint_loop(self, interval: float) -> None:
        """Every ``interval`` s, copy the log into the database beside the writers.

        PASSIVE never waits for readers or writers: whatever it cannot copy now, it
        copies next time. With several processes, whichever runs first does the work.
        """
        conn = self._connect()
        try:
            while not self._closed.wait(interval):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error:
                    logger.exception("WAL checkpoint failed; retrying in %.1f s", interval)
        finally:
            conn.close()

    def _check_file(self) -> None:
        """Refuse to write once the database file was deleted or replaced.

        SQLite would go on writing into the unlinked file through its open handle:
        every acknowledged prediction would vanish when the process ends.
        """
        try:
            same = os.stat(self.path).st_ino == self._inode
        except OSError:
            same = False
        if not same:
            raise sqlite3.OperationalError(DELETED_FILE.format(path=self.path))

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Cursor]:
        """One write transaction: ``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any error."""
        with self._lock:
            self._check_file()
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
                cur.execute("COMMIT")
            except BaseException:
                # SQLite may have rolled back already (an I/O error mid-statement): a
                # second ROLLBACK would replace the real error with "no transaction".
                if self._conn.in_transaction:
                    cur.execute("ROLLBACK")
                raise

    def _begin(self) -> sqlite3.Cursor:
        """``BEGIN IMMEDIATE`` on the writer (the caller holds ``self._lock``)."""
        self._check_file()
        cur = self._conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        return cur

    def add_predictions(
        self,
        model: str,
        records: Sequence[PredictionRecord],
        increments: Increments,
        *,
        max_group_values: int,
    ) -> list[PredictionRecord]:
        """Insert the records and their increments in one transaction (see the protocol).

        Concurrent calls of this process share a transaction (see
        :mod:`~instrumentation.store._group_commit`); each returns once it committed.
        """
        rows = record_rows(records)
        cells = increments.encoded()

        started: set[str] = set()

        def work(cur: sqlite3.Cursor) -> tuple[list[PredictionRecord], set[_Group]]:
            known: set[_Group] = set()
            admitted = self._admit_groups(cur, model, records, max_group_values, known)
            capped = [with_capped_groups(r, admitted) for r in records]
            changed = [
                i for i, (a, b) in enumerate(zip(capped, records, strict=True)) if a is not b
            ]
            for i in changed:
                rows[i] = record_rows([capped[i]])[0]
            # A multi-statement insert keeps the rows before a failing one: undo them first
            # so the error names an id that was really taken, not one this call just inserted.
            if model not in self._counting:
                sql.start_counter(cur, model)  # counts the rows from before this insert
                started.add(model)
            cur.execute("SAVEPOINT insert_predictions")
            try:
                sql.insert_many(cur, sql.INSERT_PREDICTIONS, (model,), rows)
            except sqlite3.IntegrityError:
                cur.execute("ROLLBACK TO insert_predictions")
                ids = [r.prediction_id for r in records]
                raise DuplicatePredictionId(
                    first_reused_id(ids, self._select(cur, model, ids))
                ) from None
            cur.execute("RELEASE insert_predictions")
            # The counter (started above) is one more cell of the same upsert.
            counter = (sql.COUNTER_VERSION, sql.COUNTER_BUCKET, sql.COUNTER_KEY, float(len(rows)))
            sql.insert_many(
                cur,
                sql.UPSERT_AGGREGATES,
                (model,),
                [*cells, *window_cache.markers(cells), counter],
                suffix=sql.ON_CELL_CONFLICT,
            )
            return capped, known

        capped, known = self._committer.run(work)
        self._admitted |= known  # committed now: safe to skip the query next time
        self._counting |= started
        return capped

    def _admit_groups(
        self,
        cur: sqlite3.Cursor,
        model: str,
        records: Sequence[PredictionRecord],
        max_values: int,
        known: set[_Group],
    ) -> set[tuple[str, str]]:
        """The batch's ``(attribute, value)`` pairs within the cap, admitting new ones in order.

        Values this transaction admits or finds go to ``known``, cached only once it
        commits: a batch rolled back (a reused id) must leave neither the admission
        nor the cache behind. The write lock (``BEGIN IMMEDIATE``) makes the count
        and the insert one step across processes.
        """
        admitted: set[tuple[str, str]] = set()
        for attribute, value in group_pairs(records):
            if (model, attribute, value) not in self._admitted:
                stored = cur.execute(
                    "SELECT 1 FROM group_values WHERE model=? AND attribute=? AND value=?",
                    (model, attribute, value),
                ).fetchone()
                if stored is None:
                    (count,) = cur.execute(
                        "SELECT COUNT(*) FROM group_values WHERE model=? AND attribute=?",
                        (model, attribute),
                    ).fetchone()
                    if count >= max_values:
                        continue
                    cur.execute(
                        "INSERT INTO group_values (model, attribute, value) VALUES (?, ?, ?)",
                        (model, attribute, value),
                    )
                known.add((model, attribute, value))
            admitted.add((attribute, value))
        return admitted

    def apply_labels(
        self,
        model: str,
        labels: Sequence[tuple[str, Label | None]],
        *,
        now: float,
        ttl: float,
        aggregate: LabelAggregator,
    ) -> list[LabelOutcome]:
        """Join each label to its prediction in one transaction (see the protocol)."""

        def work(cur: sqlite3.Cursor) -> list[LabelOutcome]:
            records = self._select(cur, model, [pid for pid, _ in labels])
            outcomes, matched, increments = join_labels(
                records, labels, now=now, ttl=ttl, aggregate=aggregate
            )
            cur.executemany(
                "UPDATE predictions SET feedback=?, feedback_at=? "
                "WHERE model=? AND prediction_id=?",
                [(encode_label(label), now, model, pid) for pid, label in matched],
            )
            self._apply(cur, model, increments)
            return outcomes

        return self._committer.run(work)

    def get_predictions(self, model: str, ids: Sequence[str]) -> dict[str, PredictionRecord]:
        """Stored records by id."""
        return self._select(self._reader().cursor(), model, ids)

    def _select(
        self, cur: sqlite3.Cursor, model: str, ids: Sequence[str]
    ) -> dict[str, PredictionRecord]:
        found: dict[str, PredictionRecord] = {}
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = cur.execute(
                f"SELECT {sql.COLUMNS} FROM predictions "
                f"WHERE model=? AND prediction_id IN ({marks})",
                (model, *chunk),
            )
            for record in records_from_rows(rows):
                found[record.prediction_id] = record
        return found

    def _apply(self, cur: sqlite3.Cursor, model: str, increments: Increments) -> None:
        cells = increments.encoded()
        sql.insert_many(
            cur,
            sql.UPSERT_AGGREGATES,
            (model,),
            [*cells, *window_cache.markers(cells)],
            suffix=sql.ON_CELL_CONFLICT,
        )

    def _reader(self) -> sqlite3.Connection:
        """This thread's connection for reads.

        WAL readers never wait for the writer, and long reads (a day's window, a row
        count) then never hold the lock that request writes take.
        """
        conn: sqlite3.Connection | None = getattr(self._readers, "conn", None)
        if conn is None:
            conn = self._connect()
            self._readers.conn = conn
            with self._readers_lock:
                self._all_readers.append(conn)
        return conn

    def sum_aggregates(self, model: str, version: str, *, since_bucket: int) -> dict[str, float]:
        """Sum every cell over the buckets of a window, re-reading only changed buckets.

        See :mod:`~instrumentation.store._window_cache`.
        """
        scope = (model, version)
        if scope not in self._windows.backfilled:
            with self._transaction() as cur:
                window_cache.backfill(cur, model, version)
            self._windows.backfilled.add(scope)
        reader = self._reader()
        return self._windows.sums(
            lambda: window_cache.sqlite_buckets(reader, model, version),
            model,
            version,
            since_bucket,
        )

    def bucket_cells(
        self, model: str, version: str, *, since_bucket: int, until_bucket: int | None = None
    ) -> dict[int, dict[str, float]]:
        """See :class:`~instrumentation.store.base.PredictionStore`."""
        until = sql.COUNTER_BUCKET if until_bucket is None else until_bucket
        out: dict[int, dict[str, float]] = {}
        rows = self._reader().execute(
            "SELECT bucket, key, value FROM aggregates WHERE model=? AND version=? "
            "AND bucket>=? AND bucket<?",
            (model, version, since_bucket, until),
        )
        for bucket, key, value in rows:
            out.setdefault(int(bucket), {})[key] = float(value)
        return out

    def count_predictions(self, model: str) -> int:
        """Rows stored for ``model``: its counter (see :mod:`._sqlite_rows`), else a count."""
        reader = self._reader()
        count = sql.counted(reader, model)
        return sql.count_rows(reader, model) if count is None else count

    def evict(self, model: str, *, now: float, retain: float, max_rows: int) -> int:
        """Delete rows past ``retain`` seconds, then all but the newest ``max_rows``.

        The cap's boundary (the newest row not kept, by time then id) is found by a
        read outside the write transaction, so its index scan never holds up
        predictions; the delete then removes that row and everything older. Two
        processes evicting at once, or one working from an old boundary, can only
        delete a subset of that: never a row among the newest ``max_rows``.
        """
        boundary = (
            self._reader()
            .execute(
                "SELECT created, prediction_id FROM predictions WHERE model=? "
                "ORDER BY created DESC, prediction_id DESC LIMIT 1 OFFSET ?",
                (model, max_rows),
            )
            .fetchone()
        )
        with self._transaction() as cur:
            cur.execute(
                "DELETE FROM predictions WHERE model=? AND created<?", (model, now - retain)
            )
            removed = cur.rowcount
            if boundary is not None:
                cur.execute(
                    "DELETE FROM predictions WHERE model=? AND (created<? "
                    "OR (created=? AND prediction_id<=?))",
                    (model, boundary[0], boundary[0], boundary[1]),
                )
                removed += cur.rowcount
            sql.add_to_counter(cur, model, -removed)
        return int(removed)

    def compact_aggregates(
        self, model: str, *, drop_before: int, rollup_before: int, rollup_width: int
    ) -> int:
        """Drop old buckets and roll older ones up into ``rollup_width`` buckets (see protocol)."""
        with self._transaction() as cur:
            # Markers (see _window_cache) go and merge with their cells, but are not counted.
            removed = -window_cache.count_markers(cur, model, "bucket<?", (drop_before,))
            cur.execute("DELETE FROM aggregates WHERE model=? AND bucket<?", (model, drop_before))
            removed += cur.rowcount
            scope = "model=? AND bucket<? AND bucket % ? != 0"
            args = (model, rollup_before, rollup_width)
            removed -= window_cache.count_markers(
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

    def try_lease(self, name: str, holder: str, *, now: float, duration: float) -> bool:
        """Take the lease if free or expired, renew it if ours."""
        with self._transaction() as cur:
            cur.execute(
                "INSERT INTO leases (name, holder, expires) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET holder=excluded.holder, expires=excluded.expires "
                "WHERE leases.holder=excluded.holder OR leases.expires<?",
                (name, holder, now + duration, now),
            )
            (current,) = cur.execute("SELECT holder FROM leases WHERE name=?", (name,)).fetchone()
        return bool(current == holder)

    def register_version(self, model: str, version: str, spec: str, *, now: float) -> None:
        """Record a model version and its spec once (the first writer's stands)."""
        with self._transaction() as cur:
            cur.execute(
                "INSERT INTO model_versions (model, version, spec, first_seen) VALUES (?,?,?,?) "
                "ON CONFLICT (model, version) DO NOTHING",
                (model, version, spec, now),
            )

    def model_versions(self, model: str) -> dict[str, VersionInfo]:
        """Every recorded version of ``model``."""
        rows = self._reader().execute(
            "SELECT version, spec, first_seen FROM model_versions WHERE model=?", (model,)
        )
        return {version: VersionInfo(spec, float(first)) for version, spec, first in rows}

    def versions_with_data(self, model: str, *, since_bucket: int) -> set[str]:
        """Versions with aggregate cells in the buckets of a window."""
        # A loose index scan: one seek per distinct version in the primary key (model,
        # version, bucket, …) and one to its newest bucket, rather than reading every
        # cell of the window (~10 ms at a million predictions a day).
        reader = self._reader()
        found: set[str] = set()
        version = ""  # the stored-rows counter's version; every real one sorts after it
        while True:
            row = reader.execute(
                "SELECT version FROM aggregates WHERE model=? AND version>? "
                "ORDER BY version LIMIT 1",
                (model, version),
            ).fetchone()
            if row is None:
                return found
            (version,) = row
            (newest,) = reader.execute(
                "SELECT max(bucket) FROM aggregates WHERE model=? AND version=?",
                (model, version),
            ).fetchone()
            if newest >= since_bucket and not version.startswith(window_cache.MARKER_PREFIX):
                found.add(version)  # a real version (not the window cache's write markers)

    def close(self) -> None:
        """Stop the checkpoint thread; close the writer and every thread's reader."""
        self._closed.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=self._busy_timeout)
        with self._lock:
            self._conn.close()
        with self._readers_lock:
            readers, self._all_readers = self._all_readers, []
        for reader in readers:
            reader.close()
        self._readers = threading.local()
