"""PostgreSQL group commit: concurrent inserts of one process share one statement.

A request's insert is one statement in autocommit (rows and cells): one round trip
and one commit. At most ``in_flight`` (2) such statements of a process run at once;
the requests that arrive meanwhile queue, and the next free leader sends all of
them as **one** statement — their rows concatenated, their cells summed — so they
share a round trip, a commit and one pass over the hot cells. Each caller returns
only once the statement holding its rows committed: an acknowledged prediction is
durable.

Why not one statement at a time, as SQLite's group commit has it: PostgreSQL
already shares a WAL flush among backends committing together, so a single
statement in flight gave up the overlap of two connections and measured slower;
unbounded (each request its own connection) shares nothing and costs the server
two to three times the CPU per request (``bench/RESULTS.md``).

A reused id fails a statement as a whole (nothing of it is stored): the requests
of that statement are then sent again one by one, and only the one with the
reused id fails. Any other error (the connection lost) fails every request of the
statement: none is reported stored; the monitor spools them, and the spool's
replay recognises rows that did commit (a commit whose answer was lost).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg

from instrumentation.store.protocol import Increments

Send = Callable[[str, list[list[Any]], Increments, int], None]
"""``send(model, columns, increments, rows)``: one insert statement, committed on return."""


class _Insert:
    """One caller's rows (column lists) and cells and, once sent, its error if any."""

    __slots__ = ("columns", "done", "error", "increments", "model", "rows", "taken")

    def __init__(
        self, model: str, columns: list[list[Any]], increments: Increments, rows: int
    ) -> None:
        self.model, self.columns, self.increments, self.rows = model, columns, increments, rows
        self.taken = False
        self.done = False
        self.error: BaseException | None = None


class GroupInsert:
    """Runs inserts from many threads, those that arrive together as one statement.

    Args:
        send: runs one insert statement in autocommit (see :data:`Send`).
        in_flight: statements sent at once at most; requests beyond wait and share.
    """

    def __init__(self, send: Send, *, in_flight: int = 2) -> None:
        self._send = send
        self._limit = in_flight
        self._in_flight = 0
        self._pending: list[_Insert] = []
        self._cond = threading.Condition()
        self.statements = 0
        """Statements sent (tests and benchmarks read it)."""

    def run(self, model: str, columns: list[list[Any]], increments: Increments) -> None:
        """Insert the rows (``columns``: one list per column) and cells; return once committed.

        Raises:
            psycopg.Error: what the statement holding these rows raised (a unique
                violation only if these rows reuse an id).
        """
        job = _Insert(model, columns, increments, len(columns[0]) if columns else 0)
        with self._cond:
            self._pending.append(job)
            while not job.taken and self._in_flight >= self._limit:
                self._cond.wait()
            if job.taken:  # another leader sends it: wait for its commit
                while not job.done:
                    self._cond.wait()
                batch: list[_Insert] = []
            else:
                batch, self._pending = self._pending, []
                for taken in batch:
                    taken.taken = True
                self._in_flight += 1
        if batch:
            try:
                self._run(batch)
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()
        if job.error is not None:
            raise job.error

    def _run(self, batch: list[_Insert]) -> None:
        """Send ``batch``, one statement per model; every job ends done."""
        try:
            models: dict[str, list[_Insert]] = {}
            for job in batch:
                models.setdefault(job.model, []).append(job)
            for jobs in models.values():
                self._together(jobs)
        finally:
            for job in batch:
                job.done = True

    def _together(self, jobs: list[_Insert]) -> None:
        """One statement for ``jobs``; on a reused id, each again on its own."""
        try:
            self._merged(jobs)
        except psycopg.errors.UniqueViolation as exc:
            if len(jobs) == 1:
                jobs[0].error = exc
                return
            for job in jobs:
                self._alone(job)
        except Exception as exc:
            for job in jobs:
                job.error = exc

    def _alone(self, job: _Insert) -> None:
        try:
            self._merged([job])
        except Exception as exc:
            job.error = exc

    def _merged(self, jobs: list[_Insert]) -> None:
        self.statements += 1
        if len(jobs) == 1:
            job = jobs[0]
            self._send(job.model, job.columns, job.increments, job.rows)
            return
        columns = [[v for job in jobs for v in job.columns[i]] for i in range(len(jobs[0].columns))]
        increments = Increments()
        for job in jobs:
            increments.merge(job.increments)
        self._send(jobs[0].model, columns, increments, sum(job.rows for job in jobs))
