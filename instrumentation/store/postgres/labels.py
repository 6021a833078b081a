"""PostgreSQL label join: claim the unlabelled rows in one update, decide (shared join), add cells.

**Claim.** One ``UPDATE … FROM unnest(…) RETURNING`` writes each request's label
into the rows it names that are still unlabelled and within their TTL, and
returns those rows as they were (``feedback`` null): the rows this transaction
matched. A replica labelling the same row at the same instant waits on the row
lock, then re-checks ``feedback IS NULL`` against the committed row and skips it:
only one transaction claims a row, and only that one adds its increments —
exactly once, without a locking read first. The rows not claimed (unknown,
already labelled, expired) are read afterwards, which is rare in steady traffic.

**Decide.** :func:`~instrumentation.store.join.join_labels` then decides every
item from those rows as it would from a locking read (the claimed ones as they
were before the claim), so both engines give the same statuses. It must match
exactly the claimed rows; a label the aggregator refuses is un-claimed in the
same transaction (reported ``invalid``, nothing of it stored). Should the two ever
differ otherwise (a row inserted between the claim and the read), the
transaction is rolled back and the request runs the locking join
(:func:`_locked`: ``SELECT … FOR UPDATE`` in id order, then the update).

Rows are locked in the plan's order: the ids go sorted (an index lookup per id
locks in id order, a scan in the table's order); should two requests still
deadlock, PostgreSQL aborts one before anything of it is committed, and it is
retried once (:meth:`~.connection.Database.retrying`).

Round trips, in pipeline mode: ``BEGIN`` with the claim, then the cells with
``COMMIT`` (plus one read when some item is not a match). A connection lost
before the commit was sent is retried on another (the transaction rolled back);
one lost after it is not (it may have committed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from instrumentation.store.encoding import encode_label, records_from_rows
from instrumentation.store.join import join_labels
from instrumentation.store.postgres import cells
from instrumentation.store.postgres.connection import Conn, Database
from instrumentation.store.postgres.predictions import COLUMNS, select
from instrumentation.store.protocol import (
    Increments,
    Label,
    LabelAggregator,
    LabelOutcome,
    PredictionRecord,
)

_BEFORE: Final = COLUMNS.replace("feedback_at", "NULL::float8").replace("feedback,", "NULL::text,")
"""The returned columns as they were before the claim (no label yet)."""

_NAMED: Final = (
    "FROM (SELECT u.feedback, t.tid "
    "FROM unnest(%b::text[], %b::text[]) AS u(prediction_id, feedback), "
    "LATERAL (SELECT ctid AS tid FROM {s}.predictions "
    "WHERE model = %s AND prediction_id = u.prediction_id OFFSET 0) AS t) AS c "
    "WHERE p.ctid = c.tid"
)
"""The rows the labels name, each found by its primary key: ``c.tid`` and ``c.feedback``.

A plain join (``FROM unnest(…) WHERE p.prediction_id = u.prediction_id``) leaves the
plan to statistics, and they go wrong in ordinary use: analysed while every row was
labelled, the unlabelled set looks empty; a prepared statement's generic plan
guesses 10 ids. PostgreSQL then scanned every unlabelled row once per label (2.2 s
for 1000 labels over 8000 rows, measured). The ``LATERAL … OFFSET 0`` subquery cannot
be flattened into a join: one primary-key lookup per id, whatever the statistics."""

_UNLABELLED: Final = "(p.feedback IS NULL OR c.tid IS NULL)"
"""``p.feedback IS NULL`` (``c.tid`` is never null), written as a condition of the join.

On ``p`` alone it would estimate ``p``'s rows from stale statistics (the trap above:
"none unlabelled"), and a plan that scans ``p`` first, then the lookups once per row
it finds, would look cheap. As a join condition it is checked on each row the
lookups found, and re-checked on the newest version of a row a concurrent claim
changed, as the claim needs."""

_CLAIM: Final = (
    "UPDATE {s}.predictions AS p SET feedback = c.feedback, feedback_at = %s "
    f"{_NAMED} AND {_UNLABELLED} AND NOT (%s - p.created > %s) "
    f"RETURNING {', '.join('p.' + c if c.isidentifier() else c for c in _BEFORE.split(', '))}"
)
_UNCLAIM: Final = (
    "UPDATE {s}.predictions SET feedback = NULL, feedback_at = NULL "
    "WHERE model = %s AND prediction_id = ANY(%b)"
)
_UPDATE: Final = (
    f"UPDATE {{s}}.predictions AS p SET feedback = c.feedback, feedback_at = %s {_NAMED}"
)


class _Differs(Exception):
    """The claim and the join disagree: roll back and take the locking path."""


def apply(
    db: Database,
    model: str,
    labels: Sequence[tuple[str, Label | None]],
    *,
    now: float,
    ttl: float,
    aggregate: LabelAggregator,
) -> list[LabelOutcome]:
    """Join each label to its prediction in one transaction (see the protocol)."""
    request = _Request(model, labels, now, ttl, aggregate)
    try:
        return db.retrying(lambda conn, sent: _claimed(db, conn, sent, request))
    except _Differs:
        return db.retrying(lambda conn, sent: _locked(db, conn, sent, request))


@dataclass(frozen=True)
class _Request:
    """One ``apply_labels`` call, as both joins take it."""

    model: str
    labels: Sequence[tuple[str, Label | None]]
    now: float
    ttl: float
    aggregate: LabelAggregator

    def join(
        self, records: Mapping[str, PredictionRecord]
    ) -> tuple[list[LabelOutcome], list[tuple[str, Label]], Increments]:
        """The shared join's decision over ``records`` (see :func:`join_labels`)."""
        return join_labels(
            records, self.labels, now=self.now, ttl=self.ttl, aggregate=self.aggregate
        )


def _claimed(db: Database, conn: Conn, sent: list[bool], req: _Request) -> list[LabelOutcome]:
    """The claiming join: the unlabelled rows updated and returned, then decided."""
    first: dict[str, str] = {}  # each id's first valid label: the one that can match
    for pid, label in req.labels:
        if label is not None and pid not in first:
            first[pid] = encode_label(label)
    ids = sorted(first)  # an index lookup per id locks rows in id order
    with conn.pipeline(), conn.transaction():
        rows = conn.execute(
            db.q(_CLAIM), (req.now, ids, [first[pid] for pid in ids], req.model, req.now, req.ttl)
        ).fetchall()
        records = {r.prediction_id: r for r in records_from_rows(rows)}
        claimed = set(records)
        rest = [pid for pid in dict.fromkeys(pid for pid, _ in req.labels) if pid not in claimed]
        if rest:
            records |= select(db, conn, req.model, rest, lock=False)
        outcomes, matched, increments = req.join(records)
        if any(pid not in claimed or encode_label(label) != first[pid] for pid, label in matched):
            raise _Differs  # a match the claim did not write: rolled back
        sent[0] = True
        _finish(db, conn, req.model, increments, claimed.difference(pid for pid, _ in matched))
    return outcomes


def _finish(
    db: Database, conn: Conn, model: str, increments: Increments, refused: set[str]
) -> None:
    """The cells (and the release of refused claims), sent with the ``COMMIT``."""
    if refused:
        cells.with_cells(db, conn, model, increments.encoded(), _UNCLAIM, (model, list(refused)))
    elif increments:
        cells.write(db, conn, model, increments.encoded())


def _locked(db: Database, conn: Conn, sent: list[bool], req: _Request) -> list[LabelOutcome]:
    """The locking join: rows read ``FOR UPDATE`` in id order, decided, then updated."""
    with conn.pipeline(), conn.transaction():
        records = select(db, conn, req.model, [pid for pid, _ in req.labels], lock=True)
        outcomes, matched, increments = req.join(records)
        if matched or increments:
            sent[0] = True
            ids = [pid for pid, _ in matched]
            texts = [encode_label(label) for _, label in matched]
            cells.with_cells(
                db, conn, req.model, increments.encoded(), _UPDATE, (req.now, ids, texts, req.model)
            )
    return outcomes
