"""SQLite label join: read the named rows, decide (shared join), write labels and cells.

One group-committed transaction under the write lock (``BEGIN IMMEDIATE``, every
process's): no other writer can label the same row between the read and the
write, so a label counts exactly once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from instrumentation.store.encoding import encode_label
from instrumentation.store.join import join_labels
from instrumentation.store.protocol import Label, LabelAggregator, LabelOutcome
from instrumentation.store.sqlite import cells
from instrumentation.store.sqlite.connection import Database
from instrumentation.store.sqlite.predictions import select


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

    def work(cur: sqlite3.Cursor) -> list[LabelOutcome]:
        records = select(cur, model, [pid for pid, _ in labels])
        outcomes, matched, increments = join_labels(
            records, labels, now=now, ttl=ttl, aggregate=aggregate
        )
        cur.executemany(
            "UPDATE predictions SET feedback=?, feedback_at=? WHERE model=? AND prediction_id=?",
            [(encode_label(label), now, model, pid) for pid, label in matched],
        )
        cells.write(cur, model, increments.encoded())
        return outcomes

    return db.committer.run(work)
