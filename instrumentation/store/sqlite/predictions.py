"""SQLite prediction rows: the insert with its cells (one group-committed transaction), reads.

Concurrent inserts of one process share a transaction
(:mod:`~instrumentation.store.group_commit`), each under its own savepoint: a
request's rows, the admission of its new group values, its cells, markers and
counter increment are one unit, and each caller returns once it committed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, Final

from instrumentation.errors import DuplicatePredictionId
from instrumentation.store import groups
from instrumentation.store.encoding import RECORD_COLUMNS, record_rows, records_from_rows
from instrumentation.store.join import first_reused_id
from instrumentation.store.protocol import Increments, PredictionRecord
from instrumentation.store.sqlite import cells
from instrumentation.store.sqlite.connection import Database

COLUMNS: Final = ", ".join(RECORD_COLUMNS)
INSERT_PREDICTIONS: Final = f"INSERT INTO predictions (model, {COLUMNS}) VALUES "

_Group = tuple[str, str, str]
"""``(model, attribute, value)``."""


class Predictions:
    """Inserts and reads prediction rows; remembers what this process saw committed.

    Group values committed as admitted (admission is permanent) and models whose
    stored-rows counter exists need no query again. Values admitted by a
    transaction that rolled back are not remembered.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._admitted: set[_Group] = set()
        self._counting: set[str] = set()

    def add(
        self,
        model: str,
        records: Sequence[PredictionRecord],
        increments: Increments,
        *,
        max_group_values: int,
    ) -> list[PredictionRecord]:
        """Insert the records and their increments in one transaction (see the protocol)."""
        rows = record_rows(records)
        encoded = increments.encoded()
        pairs = groups.group_pairs(records)
        started: set[str] = set()

        def work(cur: sqlite3.Cursor) -> tuple[list[PredictionRecord], set[_Group]]:
            known: set[_Group] = set()
            admitted = self._admit_groups(cur, model, pairs, max_group_values, known)
            capped = groups.capped(records, admitted, pairs)
            for i, (a, b) in enumerate(zip(capped, records, strict=True)):
                if a is not b:
                    rows[i] = record_rows([a])[0]
            if model not in self._counting:
                cells.start_counter(cur, model)  # counts the rows from before this insert
                started.add(model)
            self._insert(cur, model, records, rows)
            cells.write(cur, model, encoded, inserted=len(rows))
            return capped, known

        capped, known = self._db.committer.run(work)
        self._admitted |= known  # committed now: safe to skip the query next time
        self._counting |= started
        return capped

    def _insert(
        self,
        cur: sqlite3.Cursor,
        model: str,
        records: Sequence[PredictionRecord],
        rows: list[tuple[Any, ...]],
    ) -> None:
        """Insert ``rows``; a reused id undoes them all and names the id.

        A multi-statement insert keeps the rows before a failing one: undo them first
        so the error names an id that was really taken, not one this call just inserted.
        """
        cur.execute("SAVEPOINT insert_predictions")
        try:
            cells.insert_many(cur, INSERT_PREDICTIONS, (model,), rows)
        except sqlite3.IntegrityError:
            cur.execute("ROLLBACK TO insert_predictions")
            ids = [r.prediction_id for r in records]
            raise DuplicatePredictionId(first_reused_id(ids, select(cur, model, ids))) from None
        cur.execute("RELEASE insert_predictions")

    def _admit_groups(
        self,
        cur: sqlite3.Cursor,
        model: str,
        pairs: Sequence[groups.GroupPair],
        max_values: int,
        known: set[_Group],
    ) -> set[tuple[str, str]]:
        """Which of ``pairs`` (the batch's, in order) are within the cap, admitting new ones.

        Values this transaction admits or finds go to ``known``, cached only once it
        commits: a batch rolled back (a reused id) must leave neither the admission
        nor the cache behind. The write lock (``BEGIN IMMEDIATE``) makes the count
        and the insert one step across processes.
        """
        admitted: set[tuple[str, str]] = set()
        for attribute, value in pairs:
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


def select(
    cur: sqlite3.Cursor | sqlite3.Connection, model: str, ids: Sequence[str]
) -> dict[str, PredictionRecord]:
    """Stored records by id (500 ids per statement)."""
    found: dict[str, PredictionRecord] = {}
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = cur.execute(
            f"SELECT {COLUMNS} FROM predictions WHERE model=? AND prediction_id IN ({marks})",
            (model, *chunk),
        )
        for record in records_from_rows(rows):
            found[record.prediction_id] = record
    return found
