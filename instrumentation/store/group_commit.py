"""Group commit: concurrent writes of one process share one SQLite transaction.

A commit appends the transaction's pages to the write-ahead log, and every commit
rewrites the pages that every request touches (the bucket's aggregate cells, the
right edge of the age index). When several request threads write at once, one of
them (the leader, whoever holds the write lock) runs every write waiting at that
moment in one transaction, each under its own savepoint, and commits once.

Each caller still returns only after the transaction holding its write has
committed (an acknowledged prediction is durable), and a write that fails (a
reused prediction id) is rolled back to its savepoint alone: it fails only its
own caller, and the others commit. If the transaction itself fails (disk full,
I/O error, a lost file), every write in it fails with that error and nothing of
any of them is stored.

Usage::

    committer = GroupCommitter(lock, begin=begin, commit=commit, rollback=rollback, ...)
    result = committer.run(lambda cur: cur.execute(...))
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

T = TypeVar("T")


class _Job(Generic[T]):
    """One caller's write and, once its transaction ended, its result or error."""

    __slots__ = ("done", "error", "result", "work")

    def __init__(self, work: Callable[[Any], T]) -> None:
        self.work = work
        self.done = False
        self.result: T | None = None
        self.error: BaseException | None = None

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return cast(T, self.result)  # set whenever error is None


class GroupCommitter:
    """Runs writes from many threads in shared transactions (leader/follower, no thread).

    Args:
        lock: the store's write lock; whoever holds it is the leader.
        begin: opens a transaction and returns the cursor writes run on.
        commit: commits it. ``rollback``: rolls back the open transaction.
        savepoint: ``(cursor, name, action)`` with action ``SAVEPOINT``, ``RELEASE``
            or ``ROLLBACK TO``.
        in_transaction: whether the transaction is still open (SQLite rolls a
            transaction back by itself on some errors).
    """

    def __init__(
        self,
        lock: threading.Lock,
        *,
        begin: Callable[[], Any],
        commit: Callable[[Any], None],
        rollback: Callable[[], None],
        savepoint: Callable[[Any, str], None],
        in_transaction: Callable[[], bool],
    ) -> None:
        self._lock = lock
        self._begin = begin
        self._commit = commit
        self._rollback = rollback
        self._savepoint = savepoint
        self._in_transaction = in_transaction
        self._pending: list[_Job[Any]] = []
        self._pending_lock = threading.Lock()
        self.transactions = 0
        """Transactions committed or tried (tests and benchmarks read it)."""

    def run(self, work: Callable[[Any], T]) -> T:
        """Run ``work(cursor)`` in a transaction; return its result once that committed.

        Raises:
            Exception: what ``work`` raised (nothing of it is stored), or what the
                shared transaction's begin or commit raised (nothing of any write
                in it is stored).
        """
        job: _Job[T] = _Job(work)
        with self._pending_lock:
            self._pending.append(job)
        with self._lock:
            if not job.done:  # else a leader before us ran (and committed) it
                with self._pending_lock:
                    batch, self._pending = self._pending, []
                self._run(batch)
        return job.outcome()

    def _run(self, batch: list[_Job[Any]]) -> None:
        """Run ``batch`` in one transaction; every job ends done, with a result or an error."""
        self.transactions += 1
        try:
            cur = self._begin()
            alone = len(batch) == 1
            for job in batch:
                self._one(cur, job, alone=alone)
            if any(job.error is None for job in batch):
                self._commit(cur)
            else:
                self._rollback()
        except BaseException as exc:
            self._rollback_quietly()
            for job in batch:
                if job.error is None:
                    job.result, job.error = None, exc
            if not isinstance(exc, Exception):
                raise
        finally:
            for job in batch:
                job.done = True

    def _one(self, cur: Any, job: _Job[Any], *, alone: bool) -> None:
        """Run one job under a savepoint; its failure is rolled back to it, the rest go on."""
        if not alone:
            self._savepoint(cur, "SAVEPOINT")
        try:
            job.result = job.work(cur)
        except Exception as exc:
            if not self._in_transaction():
                raise  # SQLite dropped the whole transaction: every job fails
            job.error = exc
            if not alone:
                self._savepoint(cur, "ROLLBACK TO")
        if not alone:
            self._savepoint(cur, "RELEASE")

    def _rollback_quietly(self) -> None:
        if self._in_transaction():
            self._rollback()
