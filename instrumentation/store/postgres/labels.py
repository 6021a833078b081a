"""PostgreSQL label join: lock the named rows, decide (shared join), write labels and cells.

The rows a request labels are locked (``SELECT … FOR UPDATE``, in id order) before
deciding; a replica handling the same label at the same instant waits for that
commit, reads the label and reports ``duplicate``. Only the transaction that wrote
the label adds its increments: exactly once. Four round trips (``BEGIN``, the
locking read, the update with its cells, ``COMMIT``).
"""

from __future__ import annotations

from collections.abc import Sequence

from instrumentation.store.encoding import encode_label
from instrumentation.store.join import join_labels
from instrumentation.store.postgres import cells
from instrumentation.store.postgres.connection import Conn, Database
from instrumentation.store.postgres.predictions import select
from instrumentation.store.protocol import Label, LabelAggregator, LabelOutcome

_UPDATE = (
    "UPDATE {s}.predictions AS p SET feedback = u.feedback, feedback_at = %s "
    "FROM unnest(%b::text[], %b::text[]) AS u(prediction_id, feedback) "
    "WHERE p.model = %s AND p.prediction_id = u.prediction_id"
)


def apply(
    db: Database,
    model: str,
    labels: Sequence[tuple[str, Label | None]],
    *,
    now: float,
    ttl: float,
    aggregate: LabelAggregator,
) -> list[LabelOutcome]:
    """Join each label to its prediction in one transaction (see the protocol).

    A connection lost before the update was sent is retried on another (the
    transaction rolled back); one lost after it is not (it may have committed).
    """

    def work(conn: Conn, sent: list[bool]) -> list[LabelOutcome]:
        with conn.pipeline(), conn.transaction():
            records = select(db, conn, model, [pid for pid, _ in labels], lock=True)
            outcomes, matched, increments = join_labels(
                records, labels, now=now, ttl=ttl, aggregate=aggregate
            )
            if matched or increments:
                sent[0] = True
                ids = [pid for pid, _ in matched]
                texts = [encode_label(label) for _, label in matched]
                cells.with_cells(
                    db, conn, model, increments.encoded(), _UPDATE, (now, ids, texts, model)
                )
        return outcomes

    return db.retrying(work)
