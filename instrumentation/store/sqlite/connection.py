"""SQLite connections: the shared writer, per-thread readers, the checkpoint thread, errors.

WAL mode lets readers run beside the single writer; ``synchronous=NORMAL`` makes a
commit survive a process crash (``kill -9``) without an fsync per request. Each
process keeps one writer connection, serialised by a lock because BentoML runs sync
APIs in a thread pool; across processes SQLite's own locking (``BEGIN IMMEDIATE``
with a busy timeout) serialises writers. Concurrent writes of one process share a
transaction (:mod:`~instrumentation.store.group_commit`).

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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from instrumentation.errors import StoreUnavailable
from instrumentation.store.boundary import translating
from instrumentation.store.group_commit import GroupCommitter

logger = logging.getLogger(__name__)

CHECKPOINT_BACKSTOP_PAGES: Final = 10_000
"""SQLite's own checkpoint stays on past this log size (~40 MB), should the thread lag."""

DELETED_FILE: Final = "database file {path} was deleted or replaced; not writing into the lost file"
"""Raised (as :class:`~instrumentation.errors.StoreUnavailable`) once the file is gone."""


def is_unavailable(exc: BaseException) -> bool:
    """Whether an sqlite3 error says the store cannot work now (not a bug or bad data).

    Disk full, I/O error, read-only file, locked past the busy timeout, a file that
    cannot be opened (``OperationalError``); a damaged file (exactly ``DatabaseError``).
    ``IntegrityError`` and ``ProgrammingError`` are bugs: :class:`StoreError`.
    """
    return isinstance(exc, sqlite3.OperationalError) or type(exc) is sqlite3.DatabaseError


errors = translating(drivers=(sqlite3.Error,), unavailable=is_unavailable)
"""Decorates the facade's methods: sqlite3 errors leave as the store's own."""


class Database:
    """One process's connections to one SQLite file.

    Args:
        path: the database file (its directory is created).
        busy_timeout: seconds a writer waits for another process's write lock.
        checkpoint_seconds: period of the checkpoint thread; None leaves
            checkpoints to SQLite (in the request path).
    """

    def __init__(
        self, path: Path, *, busy_timeout: float = 30.0, checkpoint_seconds: float | None = 1.0
    ) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self.busy_timeout = busy_timeout
        self._readers = threading.local()
        self.readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self.conn = self.connect()
        self._inode = os.stat(self.path).st_ino
        self._enable_wal()
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.committer = GroupCommitter(
            self.lock,
            begin=self._begin,
            commit=lambda cur: cur.execute("COMMIT"),
            rollback=self._rollback,
            savepoint=lambda cur, action: cur.execute(f"{action} job"),
            in_transaction=lambda: self.conn.in_transaction,
        )
        self._closed = threading.Event()
        self.checkpointer: threading.Thread | None = None
        self._checkpoint_seconds = checkpoint_seconds

    def start_checkpoints(self) -> None:
        """Start the checkpoint thread (once the schema is in place)."""
        if self._checkpoint_seconds is None:
            return
        self.conn.execute(f"PRAGMA wal_autocheckpoint={CHECKPOINT_BACKSTOP_PAGES}")
        self.checkpointer = threading.Thread(
            target=self._checkpoint_loop,
            args=(self._checkpoint_seconds,),
            name="sqlite-checkpoint",
            daemon=True,
        )
        self.checkpointer.start()

    def connect(self) -> sqlite3.Connection:
        """A connection in autocommit mode (transactions are explicit), with the busy timeout.

        Usable from any thread: the writer is shared by request threads under a lock,
        and :meth:`close` closes every thread's reader.
        """
        return sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )

    def _enable_wal(self) -> None:
        """Switch the file to WAL, retrying while another process opens it too.

        Workers start together on a fresh file; SQLite answers a journal-mode change
        that would deadlock with "database is locked" at once, without waiting out
        the busy timeout, and the worker would die at start-up.
        """
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                self.conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _checkpoint_loop(self, interval: float) -> None:
        """Every ``interval`` s, copy the log into the database beside the writers.

        PASSIVE never waits for readers or writers: whatever it cannot copy now, it
        copies next time. With several processes, whichever runs first does the work.
        """
        conn = self.connect()
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
            raise StoreUnavailable(DELETED_FILE.format(path=self.path))

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Cursor]:
        """Its own write transaction: ``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on error."""
        with self.lock:
            cur = self._begin()
            try:
                yield cur
                cur.execute("COMMIT")
            except BaseException:
                # SQLite may have rolled back already (an I/O error mid-statement): a
                # second ROLLBACK would replace the real error with "no transaction".
                if self.conn.in_transaction:
                    cur.execute("ROLLBACK")
                raise

    def _rollback(self) -> None:
        self.conn.execute("ROLLBACK")

    def _begin(self) -> sqlite3.Cursor:
        """``BEGIN IMMEDIATE`` on the writer (the caller holds ``self.lock``)."""
        self._check_file()
        cur = self.conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        return cur

    def reader(self) -> sqlite3.Connection:
        """This thread's connection for reads.

        WAL readers never wait for the writer, and long reads (a day's window, a row
        count) then never hold the lock that request writes take.
        """
        conn: sqlite3.Connection | None = getattr(self._readers, "conn", None)
        if conn is None:
            conn = self.connect()
            self._readers.conn = conn
            with self._readers_lock:
                self.readers.append(conn)
        return conn

    def close(self) -> None:
        """Stop the checkpoint thread; close the writer and every thread's reader."""
        self._closed.set()
        if self.checkpointer is not None:
            self.checkpointer.join(timeout=self.busy_timeout)
        with self.lock:
            self.conn.close()
        with self._readers_lock:
            readers, self.readers = self.readers, []
        for reader in readers:
            reader.close()
        self._readers = threading.local()
