"""The label join, decided the same way by every engine: each item's status and increments.

Engines read (and, where they can, lock) the rows a feedback request names inside
the transaction that will write the result, call :func:`join_labels`, then write the
matched labels and the increments in that same transaction: so SQLite and
PostgreSQL give the same status to the same item, and a label counts exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence

from instrumentation.store.protocol import (
    FeedbackStatus,
    Increments,
    Label,
    LabelAggregator,
    LabelOutcome,
    PredictionRecord,
    record_of,
)

logger = logging.getLogger(__name__)


def aggregate_one(
    aggregate: LabelAggregator,
    record: PredictionRecord,
    label: Label,
    now: float,
    increments: Increments,
) -> bool:
    """Add one matched label's increments; False (and nothing added) when it cannot be.

    A prediction made by an earlier model version with other classes, or errors too
    large to sum, cannot be aggregated: the item is reported ``invalid`` instead of
    failing every other label of its request, at every retry.
    """
    own = Increments()
    try:
        aggregate(record, label, now, own)
    except ValueError as exc:
        logger.warning(
            "label for %s not aggregated, reported invalid: %s", record.prediction_id, exc
        )
        return False
    increments.merge(own)
    return True


def label_status(
    record: PredictionRecord | None, label: Label | None, *, now: float, ttl: float
) -> FeedbackStatus:
    """The status of a feedback item, identical for every store implementation.

    Order matters: an unknown id is ``unknown`` even if its label is also bad; an
    invalid label never touches a record; an already labelled record reports
    ``duplicate`` (same label) or ``conflict`` (different label; the first stands)
    even past its TTL, because the first label was in time.
    """
    if record is None:
        return "unknown"
    if label is None:
        return "invalid"
    if record.feedback is not None:
        return "duplicate" if record.feedback == label else "conflict"
    if now - record.created > ttl:
        return "expired"
    return "matched"


def join_labels(
    records: Mapping[str, PredictionRecord],
    labels: Sequence[tuple[str, Label | None]],
    *,
    now: float,
    ttl: float,
    aggregate: LabelAggregator,
) -> tuple[list[LabelOutcome], list[tuple[str, Label]], Increments]:
    """Decide every feedback item of a request against the rows it names.

    Args:
        records: the stored rows of the request's ids, read (and locked, where the
            store can) inside the transaction that will write the result.
        labels: ``(prediction id, canonical label or None)`` in request order.
        now: the time of the join (``feedback_at``, the label buckets, TTL checks).
        ttl: how long a prediction waits for its label, in seconds.
        aggregate: adds the matched labels' increments (all at once, else one by one).

    Returns:
        The outcomes in request order, the ``(id, label)`` pairs to write as
        feedback, and the increments of the matched labels. A later item for an id
        matched earlier in the same request sees that label (``duplicate`` or
        ``conflict``), so a request matches each prediction at most once.
    """
    outcomes, matched, pairs = _decide(records, labels, now=now, ttl=ttl)
    increments = Increments()
    if not pairs or aggregate.many(pairs, now, increments):
        return outcomes, matched, increments
    # Some label cannot be aggregated: decide again label by label, which tells those
    # (``invalid``, nothing of them added) from the rest.
    increments = Increments()

    def accept(record: PredictionRecord, label: Label) -> bool:
        return aggregate_one(aggregate, record, label, now, increments)

    outcomes, matched, _ = _decide(records, labels, now=now, ttl=ttl, accept=accept)
    return outcomes, matched, increments


def _decide(
    records: Mapping[str, PredictionRecord],
    labels: Sequence[tuple[str, Label | None]],
    *,
    now: float,
    ttl: float,
    accept: Callable[[PredictionRecord, Label], bool] | None = None,
) -> tuple[list[LabelOutcome], list[tuple[str, Label]], list[tuple[PredictionRecord, Label]]]:
    """Each item's outcome, the ``(id, label)`` pairs to write, the matched (record, label)s.

    ``accept``, when given, is asked about each item that would match: refused, the
    item is ``invalid`` instead.
    """
    records = dict(records)
    outcomes: list[LabelOutcome] = []
    matched: list[tuple[str, Label]] = []
    pairs: list[tuple[PredictionRecord, Label]] = []
    for pid, label in labels:
        record = records.get(pid)
        status = label_status(record, label, now=now, ttl=ttl)
        if status == "matched" and record is not None and label is not None:
            if accept is not None and not accept(record, label):
                outcomes.append(LabelOutcome(pid, "invalid", record))
                continue
            pairs.append((record, label))
            record = records[pid] = _labelled(record, label, now)
            matched.append((pid, label))
        outcomes.append(LabelOutcome(pid, status, record))
    return outcomes, matched, pairs


def _labelled(r: PredictionRecord, label: Label, now: float) -> PredictionRecord:
    """``replace(r, feedback=label, feedback_at=now)``, at a fraction of its cost."""
    return record_of(
        r.prediction_id,
        r.version,
        r.created,
        r.label,
        r.value,
        r.scores,
        r.groups,
        r.trace_id,
        r.span_id,
        label,
        now,
    )


def first_reused_id(ids: Sequence[str], stored: Collection[str]) -> str:
    """The id :class:`DuplicatePredictionId` names: the first already stored or repeated.

    ``stored`` holds the ids of the batch found in the store before it was written.
    """
    seen: set[str] = set()
    for pid in ids:
        if pid in stored or pid in seen:
            return pid
        seen.add(pid)
    return "?"  # the store saw a conflict its caller cannot place (a concurrent writer)
