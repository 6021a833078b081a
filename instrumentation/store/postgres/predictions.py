"""PostgreSQL prediction rows: the one-statement insert with its cells, group admission, reads.

A request's rows go in as column arrays through ``unnest`` (one ``INSERT`` however
many rows), and its pre-summed cells as one multi-row upsert attached to that
``INSERT`` as a CTE: one statement. Once the batch's group values are all known
(they soon are), it runs in autocommit, its own transaction, group-committed
(:mod:`.group_commit`): requests of the process that arrive together share the
statement, its round trip and its commit. A reused id fails the statement as a whole (a unique
violation), so nothing of the request stays. psycopg's pipeline mode was tried and
measured slower here (about 2x per request on loopback): there are too few
statements to overlap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import psycopg

from instrumentation.errors import DuplicatePredictionId
from instrumentation.store import groups
from instrumentation.store.encoding import RECORD_COLUMNS, record_rows, records_from_rows
from instrumentation.store.join import first_reused_id
from instrumentation.store.postgres import cells
from instrumentation.store.postgres.connection import Conn, Database, advisory_lock
from instrumentation.store.postgres.group_commit import GroupInsert
from instrumentation.store.protocol import Increments, PredictionRecord

COLUMNS: Final = ", ".join(RECORD_COLUMNS)
_ARRAYS: Final = ", ".join(
    f"%b::{t}[]"
    for t in (
        "text",
        "text",
        "float8",
        "text",
        "float8",
        "text",
        "text",
        "text",
        "text",
        "text",
        "float8",
    )
)
INSERT: Final = (
    f"INSERT INTO {{s}}.predictions (model, {COLUMNS}) "
    f"SELECT %s, r.* FROM unnest({_ARRAYS}) AS r ORDER BY 1, 2"
)

_Group = tuple[str, str, str]
"""``(model, attribute, value)``."""


class Predictions:
    """Inserts and reads prediction rows; caches what group admission decided.

    Group values known to be admitted (admission is permanent), and attributes known
    to be full at a cap: values outside them need no query. Updated after commits.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._admitted: set[_Group] = set()
        self._full: dict[tuple[str, str], int] = {}
        self.group = GroupInsert(self._send)

    def add(
        self,
        model: str,
        records: Sequence[PredictionRecord],
        increments: Increments,
        *,
        max_group_values: int,
    ) -> list[PredictionRecord]:
        """Insert the records and their increments atomically (see the protocol).

        Once every group value of the batch is known from the cache, that is one
        statement in autocommit. Otherwise the admission of new values and the rows
        share a transaction.
        """
        known: set[_Group] = set()
        full: dict[tuple[str, str], int] = {}
        pairs = groups.group_pairs(records)
        unsure = self._unsure(model, pairs, max_group_values)
        admitted = {(a, v) for a, v in pairs if (model, a, v) in self._admitted}
        try:
            if not unsure:
                capped = groups.capped(records, admitted, pairs)
                self.group.run(model, _columns(capped), increments)
                return capped
            with self._db.transaction() as conn:
                admitted |= self._admit(conn, model, unsure, max_group_values, known, full)
                capped = groups.capped(records, admitted, pairs)
                self._send_on(conn, model, _columns(capped), increments, len(capped))
        except psycopg.errors.UniqueViolation as exc:
            if exc.diag.table_name != "predictions":
                raise
            # Nothing was written (the statement, and any transaction, rolled back).
            ids = [r.prediction_id for r in records]
            with self._db.connection() as conn:
                stored = select(self._db, conn, model, ids, lock=False)
            raise DuplicatePredictionId(first_reused_id(ids, stored)) from None
        self._admitted |= known
        self._full.update(full)
        return capped

    def _send(
        self, model: str, columns: list[list[Any]], increments: Increments, rows: int
    ) -> None:
        """One insert statement of rows and cells, in autocommit (the group's ``send``)."""
        with self._db.connection() as conn:
            self._send_on(conn, model, columns, increments, rows)

    def _send_on(
        self, conn: Conn, model: str, columns: list[list[Any]], increments: Increments, rows: int
    ) -> None:
        cells.with_cells(
            self._db, conn, model, increments.encoded(), INSERT, (model, *columns), inserted=rows
        )

    def _unsure(
        self, model: str, pairs: list[tuple[str, str]], max_values: int
    ) -> list[tuple[str, str]]:
        """The pairs the cache cannot decide: neither known admitted nor of a full attribute."""
        return [
            (a, v)
            for a, v in pairs
            if (model, a, v) not in self._admitted
            and self._full.get((model, a), max_values + 1) > max_values
        ]

    def _admit(
        self,
        conn: Conn,
        model: str,
        unsure: list[tuple[str, str]],
        max_values: int,
        known: set[_Group],
        full: dict[tuple[str, str], int],
    ) -> set[tuple[str, str]]:
        """Which ``unsure`` pairs are within the cap, admitting new ones in order.

        One query finds which are admitted already; an attribute with new values is
        then decided under an advisory lock of its own, so two replicas never both
        admit the last place. ``known`` and ``full`` collect what the caller may
        cache once the transaction commits.
        """
        rows = conn.execute(
            self._db.q(
                "SELECT attribute, value FROM {s}.group_values WHERE model = %s "
                "AND (attribute, value) IN (SELECT * FROM unnest(%b::text[], %b::text[]))"
            ),
            (model, [a for a, _ in unsure], [v for _, v in unsure]),
        ).fetchall()
        admitted: set[tuple[str, str]] = {(a, v) for a, v in rows}
        new: dict[str, list[str]] = {}
        for a, v in unsure:
            if (a, v) not in admitted:
                new.setdefault(a, []).append(v)
        for attribute in sorted(new):  # one lock order for every transaction
            admitted |= self._admit_new(conn, model, attribute, new[attribute], max_values, full)
        known.update((model, a, v) for a, v in admitted)
        return admitted

    def _admit_new(
        self,
        conn: Conn,
        model: str,
        attribute: str,
        values: list[str],
        max_values: int,
        full: dict[tuple[str, str], int],
    ) -> set[tuple[str, str]]:
        """Admit the first of ``values`` that fit under the cap; return every admitted one."""
        advisory_lock(conn, f"{self._db.schema}.group_values\x1f{model}\x1f{attribute}")
        stored = {
            v
            for (v,) in conn.execute(
                self._db.q(
                    "SELECT value FROM {s}.group_values WHERE model = %s AND attribute = %s"
                ),
                (model, attribute),
            )
        }
        fresh = [v for v in values if v not in stored][: max(0, max_values - len(stored))]
        if fresh:
            conn.execute(
                self._db.q(
                    "INSERT INTO {s}.group_values (model, attribute, value) "
                    "SELECT %s, %s, v FROM unnest(%b::text[]) AS v"
                ),
                (model, attribute, fresh),
            )
        if len(stored) + len(fresh) >= max_values:
            full[(model, attribute)] = max_values
        return {(attribute, v) for v in (*stored, *fresh)}


def _columns(records: Sequence[PredictionRecord]) -> list[list[Any]]:
    """The records' stored values, one list per column of :data:`RECORD_COLUMNS`."""
    rows = record_rows(records)
    return [list(c) for c in zip(*rows, strict=True)] or [[] for _ in RECORD_COLUMNS]


def select(
    db: Database, conn: Conn, model: str, ids: Sequence[str], *, lock: bool
) -> dict[str, PredictionRecord]:
    """Stored records by id; ``lock``: ``FOR UPDATE``, in id order (one lock order)."""
    if not ids:
        return {}
    suffix = " ORDER BY prediction_id FOR UPDATE" if lock else ""
    rows = conn.execute(
        db.q(
            f"SELECT {COLUMNS} FROM {{s}}.predictions "
            f"WHERE model = %s AND prediction_id = ANY(%b){suffix}"
        ),
        (model, list(dict.fromkeys(ids))),
    ).fetchall()  # at once: row by row costs a call per row in pipeline mode
    return {r.prediction_id: r for r in records_from_rows(rows)}
