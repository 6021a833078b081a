"""The store protocol: where predictions wait for their labels, and where additive aggregates live.

The store is the single source of truth shared by every worker process (and, with
PostgreSQL, every replica): process memory never holds state another worker needs.
Everything written in one call is written atomically or not at all. What every store
decides the same way (a feedback item's status, which group values are capped, which
id of a batch was reused, how a row is encoded) lives here, once.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Callable, Collection, Container, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal, Protocol

from instrumentation.metrics import fairness

logger = logging.getLogger(__name__)

DEFAULT_BUCKET_SECONDS: Final = 60
"""Default width of one aggregate time bucket (``MONITOR_BUCKET_SECONDS``)."""

# Re-exported: the store maps group values to these two reserved buckets.
MISSING_GROUP: Final = fairness.MISSING_GROUP
OVERFLOW_GROUP: Final = fairness.OVERFLOW_GROUP

FeedbackStatus = Literal["matched", "duplicate", "conflict", "unknown", "invalid", "expired"]
FEEDBACK_STATUSES: Final[tuple[FeedbackStatus, ...]] = (
    "matched",
    "duplicate",
    "conflict",
    "unknown",
    "invalid",
    "expired",
)

Label = str | float
"""A canonical label: a class name for classifiers, a float for regressors."""

AggregateKey = tuple[str, ...]
"""An aggregate cell, e.g. ``("confusion", "fraud", "legit")``; values are additive floats."""


def bucket_of(timestamp: float, width: int = DEFAULT_BUCKET_SECONDS) -> int:
    """Start (whole seconds since the epoch) of the ``width``-second bucket holding ``timestamp``.

    Buckets are keyed by their start time, not an index, so a store keeps meaning
    the same thing if the bucket width is changed between runs.
    """
    return int(timestamp // width) * width


@functools.lru_cache(maxsize=65536)
def encode_key(key: AggregateKey) -> str:
    """Unambiguous text form of an aggregate key (any characters allowed in parts)."""
    return json.dumps(key, separators=(",", ":"), ensure_ascii=False)


@functools.lru_cache(maxsize=65536)
def decode_key(text: str) -> AggregateKey:
    """Inverse of :func:`encode_key` (cached: every report decodes the same few thousand keys)."""
    return tuple(json.loads(text))


class DuplicatePredictionId(ValueError):
    """A client-supplied prediction id is already stored for this model; nothing was written."""

    def __init__(self, prediction_id: str) -> None:
        super().__init__(f"prediction id {prediction_id!r} already exists for this model")
        self.prediction_id = prediction_id


@dataclass(frozen=True)
class VersionInfo:
    """A model version a store has seen: its monitor spec (JSON text) and when it was made.

    ``first_seen`` is the version's creation time where the monitor was told it (the
    service passes the model's), else when a monitor first recorded the version.
    """

    spec: str
    first_seen: float


class StoreUnavailable(RuntimeError):
    """The store cannot take or give data right now; the request may be retried later.

    Raised by :class:`~instrumentation.ModelMonitor` where no spool can stand in
    (feedback, snapshots): a service answers 503 with ``Retry-After``.
    """


_UNAVAILABLE_TYPES: Final = frozenset(
    {
        # sqlite3: disk full, I/O error, read-only file, locked past the busy timeout,
        # a file that cannot be opened (its directory gone).
        ("sqlite3", "OperationalError"),
        ("sqlite3", "DatabaseError"),  # exactly this class: a damaged file
        # psycopg: connection refused or lost, server shutting down; pool exhausted.
        ("psycopg", "OperationalError"),
        ("psycopg", "InterfaceError"),
        ("psycopg_pool", "PoolTimeout"),
        ("psycopg_pool", "PoolClosed"),
    }
)


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the store cannot work now (rather than a bug or bad data).

    Matched by class, without importing either driver: psycopg is optional.
    ``sqlite3.IntegrityError`` and ``ProgrammingError`` are not unavailability.
    """
    if isinstance(exc, StoreUnavailable):
        return True
    for cls in type(exc).__mro__:
        root = cls.__module__.split(".")[0]
        if (root, cls.__name__) in _UNAVAILABLE_TYPES:
            # A subclass of sqlite3.DatabaseError other than OperationalError is a bug.
            return not (cls.__name__ == "DatabaseError" and cls is not type(exc))
    return False


@dataclass(frozen=True)
class PredictionRecord:
    """One stored prediction, as it waits for its label.

    ``scores`` are class probabilities in the model's class order (classifiers);
    ``value`` is the regression output. ``trace_id``/``span_id`` (hex) identify the
    ``ml.predict`` span, so a feedback span can link to it.
    """

    prediction_id: str
    version: str
    created: float
    label: str | None
    value: float | None
    scores: tuple[float, ...] | None
    groups: Mapping[str, str]
    trace_id: str
    span_id: str
    feedback: Label | None = None
    feedback_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of the row (for debugging and tests)."""
        return {
            "prediction_id": self.prediction_id,
            "version": self.version,
            "created": self.created,
            "label": self.label,
            "value": self.value,
            "scores": list(self.scores) if self.scores is not None else None,
            "groups": dict(self.groups),
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "feedback": self.feedback,
            "feedback_at": self.feedback_at,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PredictionRecord:
        """Inverse of :meth:`to_json` (the spool keeps rows this way)."""
        scores = data.get("scores")
        return cls(
            prediction_id=str(data["prediction_id"]),
            version=str(data["version"]),
            created=float(data["created"]),
            label=data.get("label"),
            value=data.get("value"),
            scores=tuple(float(p) for p in scores) if scores is not None else None,
            groups=dict(data.get("groups") or {}),
            trace_id=str(data["trace_id"]),
            span_id=str(data["span_id"]),
            feedback=data.get("feedback"),
            feedback_at=data.get("feedback_at"),
        )


@dataclass(frozen=True)
class LabelOutcome:
    """What happened to one feedback item; ``record`` is the prediction it matched, if any."""

    prediction_id: str
    status: FeedbackStatus
    record: PredictionRecord | None = None


@dataclass
class Increments:
    """Additive aggregate increments, per (version, bucket), to apply in one transaction."""

    cells: dict[tuple[str, int, AggregateKey], float] = field(default_factory=dict)

    def add(self, version: str, bucket: int, key: AggregateKey, amount: float = 1.0) -> None:
        """Add ``amount`` to one cell (summed locally first, so a batch writes each cell once)."""
        if not math.isfinite(amount):
            raise ValueError(f"aggregate {key!r}: increment must be finite, got {amount}")
        cell = (version, bucket, key)
        self.cells[cell] = self.cells.get(cell, 0.0) + amount

    def encoded(self) -> list[tuple[str, int, str, float]]:
        """``(version, bucket, encoded key, amount)`` rows, each distinct cell once."""
        return [(v, b, encode_key(k), amount) for (v, b, k), amount in self.cells.items()]

    def merge(self, other: Increments) -> None:
        """Add every cell of ``other`` to this one."""
        for cell, amount in other.cells.items():
            self.cells[cell] = self.cells.get(cell, 0.0) + amount

    def __len__(self) -> int:
        return len(self.cells)


LabelAggregator = Callable[[PredictionRecord, Label, float, Increments], None]
"""Called once per matched label inside the store's transaction: adds that label's increments.

A ``ValueError`` from it makes that one item ``invalid`` (nothing of it is written);
the rest of the batch goes on. Stores call it through :func:`aggregate_one`.
"""


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
        aggregate: adds one matched label's increments.

    Returns:
        The outcomes in request order, the ``(id, label)`` pairs to write as
        feedback, and the increments of the matched labels. A later item for an id
        matched earlier in the same request sees that label (``duplicate`` or
        ``conflict``), so a request matches each prediction at most once.
    """
    if callable(getattr(aggregate, "many", None)):
        joined = _join_at_once(records, labels, now=now, ttl=ttl, aggregate=aggregate)
        if joined is not None:
            return joined
    records = dict(records)
    outcomes: list[LabelOutcome] = []
    matched: list[tuple[str, Label]] = []
    increments = Increments()
    for pid, label in labels:
        record = records.get(pid)
        status = label_status(record, label, now=now, ttl=ttl)
        if status == "matched" and record is not None and label is not None:
            if not aggregate_one(aggregate, record, label, now, increments):
                outcomes.append(LabelOutcome(pid, "invalid", record))
                continue
            record = replace(record, feedback=label, feedback_at=now)
            records[pid] = record
            matched.append((pid, label))
        outcomes.append(LabelOutcome(pid, status, record))
    return outcomes, matched, increments


def _join_at_once(
    records: Mapping[str, PredictionRecord],
    labels: Sequence[tuple[str, Label | None]],
    *,
    now: float,
    ttl: float,
    aggregate: LabelAggregator,
) -> tuple[list[LabelOutcome], list[tuple[str, Label]], Increments] | None:
    """:func:`join_labels` with the matched labels aggregated in one ``aggregate.many`` call.

    ``many(pairs, now, increments) -> bool`` adds every pair's cells or, when any
    pair cannot be aggregated, nothing: then this returns None and the caller joins
    one by one, which tells which items are ``invalid``.
    """
    records = dict(records)
    outcomes: list[LabelOutcome] = []
    matched: list[tuple[str, Label]] = []
    pairs: list[tuple[PredictionRecord, Label]] = []
    for pid, label in labels:
        record = records.get(pid)
        status = label_status(record, label, now=now, ttl=ttl)
        if status == "matched" and record is not None and label is not None:
            pairs.append((record, label))
            record = records[pid] = _labelled(record, label, now)
            matched.append((pid, label))
        outcomes.append(LabelOutcome(pid, status, record))
    increments = Increments()
    if pairs and not aggregate.many(pairs, now, increments):  # type: ignore[attr-defined]  # checked by the caller
        return None
    return outcomes, matched, increments


def _labelled(r: PredictionRecord, label: Label, now: float) -> PredictionRecord:
    """``replace(r, feedback=label, feedback_at=now)``, at a third of its cost."""
    return PredictionRecord(
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


def group_pairs(records: Sequence[PredictionRecord]) -> list[tuple[str, str]]:
    """Every ``(attribute, value)`` a batch names, once, in order; reserved values left out.

    First come, first admitted: stores admit new values in this order until the cap.
    """
    pairs: dict[tuple[str, str], None] = {}
    for record in records:
        for attribute, value in record.groups.items():
            if value not in (MISSING_GROUP, OVERFLOW_GROUP):
                pairs[(attribute, value)] = None
    return list(pairs)


def with_capped_groups(
    record: PredictionRecord, admitted: Container[tuple[str, str]]
) -> PredictionRecord:
    """``record`` with each group value not ``admitted`` moved to the overflow bucket."""
    groups = {
        attribute: (
            value
            if value in (MISSING_GROUP, OVERFLOW_GROUP) or (attribute, value) in admitted
            else OVERFLOW_GROUP
        )
        for attribute, value in record.groups.items()
    }
    return record if groups == dict(record.groups) else replace(record, groups=groups)


RECORD_COLUMNS: Final = (
    "prediction_id",
    "version",
    "created",
    "label",
    "value",
    "scores",
    "groups",
    "trace_id",
    "span_id",
    "feedback",
    "feedback_at",
)
"""The stored columns of a prediction row, in the order :func:`record_row` gives them."""


def record_row(r: PredictionRecord) -> tuple[Any, ...]:
    """A record as column values (JSON text for scores, groups and labels)."""
    return (
        r.prediction_id,
        r.version,
        r.created,
        r.label,
        r.value,
        json.dumps(list(r.scores)) if r.scores is not None else None,
        json.dumps(dict(r.groups), sort_keys=True),
        r.trace_id,
        r.span_id,
        encode_label(r.feedback) if r.feedback is not None else None,
        r.feedback_at,
    )


_GROUPS_TEXT: dict[tuple[tuple[str, str], ...], str] = {}
"""Encoded groups by their items: a service sees few distinct combinations (capped)."""

_GROUPS_TEXT_MAX: Final = 4096


def _groups_text(groups: Mapping[str, str]) -> str:
    items = tuple(groups.items())
    text = _GROUPS_TEXT.get(items)
    if text is None:
        if len(_GROUPS_TEXT) >= _GROUPS_TEXT_MAX:
            _GROUPS_TEXT.clear()
        text = _GROUPS_TEXT[items] = json.dumps(dict(groups), sort_keys=True)
    return text


_GROUPS_OF: dict[str, dict[str, str]] = {}


def _groups_of(text: str) -> dict[str, str]:
    """``json.loads`` of stored groups, parsed once per distinct text (a fresh dict each)."""
    groups = _GROUPS_OF.get(text)
    if groups is None:
        if len(_GROUPS_OF) >= _GROUPS_TEXT_MAX:
            _GROUPS_OF.clear()
        groups = _GROUPS_OF[text] = json.loads(text)
    return dict(groups)


def _scores_text(scores: tuple[float, ...]) -> str:
    """``json.dumps(list(scores))`` for finite floats (``repr`` is what it writes), faster."""
    if all(type(p) is float and math.isfinite(p) for p in scores):
        return "[" + ", ".join(map(repr, scores)) + "]"
    return json.dumps(list(scores))


def record_rows(records: Sequence[PredictionRecord]) -> list[tuple[Any, ...]]:
    """:func:`record_row` of each record (the same text), for a request's batch.

    Groups repeat across rows and are encoded once per distinct combination.
    """
    return [
        (
            r.prediction_id,
            r.version,
            r.created,
            r.label,
            r.value,
            _scores_text(r.scores) if r.scores is not None else None,
            _groups_text(r.groups),
            r.trace_id,
            r.span_id,
            encode_label(r.feedback) if r.feedback is not None else None,
            r.feedback_at,
        )
        for r in records
    ]


def encode_label(label: Label) -> str:
    """A label as stored: JSON, so a class name and a number stay apart."""
    return json.dumps(label)


def record_from_row(row: Sequence[Any]) -> PredictionRecord:
    """Inverse of :func:`record_row`."""
    (pid, version, created, label, value, scores, groups, trace_id, span_id, fb, fb_at) = row
    return PredictionRecord(
        prediction_id=pid,
        version=version,
        created=created,
        label=label,
        value=value,
        scores=tuple(json.loads(scores)) if scores is not None else None,
        groups=_groups_of(groups),
        trace_id=trace_id,
        span_id=span_id,
        feedback=json.loads(fb) if fb is not None else None,
        feedback_at=fb_at,
    )


class PredictionStore(Protocol):
    """What the monitor needs from a store.

    Shipped: :class:`~instrumentation.SQLiteStore` (one host) and
    :class:`~instrumentation.store.postgres.PostgresStore` (replicas on many hosts).
    """

    def add_predictions(
        self,
        model: str,
        records: Sequence[PredictionRecord],
        increments: Increments,
        *,
        max_group_values: int,
    ) -> list[PredictionRecord]:
        """Store records and increments atomically; return records with capped group values.

        Raises :class:`DuplicatePredictionId` (and writes nothing) if an id exists.
        """

    def apply_labels(
        self,
        model: str,
        labels: Sequence[tuple[str, Label | None]],
        *,
        now: float,
        ttl: float,
        aggregate: LabelAggregator,
    ) -> list[LabelOutcome]:
        """Join labels to predictions atomically; only ``matched`` items change aggregates."""

    def get_predictions(self, model: str, ids: Sequence[str]) -> dict[str, PredictionRecord]:
        """Stored records by id (missing ids are absent from the result)."""

    def sum_aggregates(self, model: str, version: str, *, since_bucket: int) -> dict[str, float]:
        """Sum of every aggregate cell over buckets ``>= since_bucket``, by encoded key."""

    def count_predictions(self, model: str) -> int:
        """Rows currently stored for ``model``."""

    def evict(self, model: str, *, now: float, retain: float, max_rows: int) -> int:
        """Delete rows older than ``retain`` seconds and the oldest beyond ``max_rows``."""

    def compact_aggregates(
        self, model: str, *, drop_before: int, rollup_before: int, rollup_width: int
    ) -> int:
        """Delete buckets starting before ``drop_before``; merge those before ``rollup_before``.

        Merging sums every cell of the buckets inside one ``rollup_width`` span into
        the bucket at the span's start: exact, since cells are additive. Returns the
        rows deleted (dropped, or merged into a span bucket).
        """

    def try_lease(self, name: str, holder: str, *, now: float, duration: float) -> bool:
        """Take or renew a named lease; True when ``holder`` holds it until ``now + duration``."""

    def register_version(self, model: str, version: str, spec: str, *, now: float) -> None:
        """Record a model version and its spec (JSON) once; later calls change nothing."""

    def model_versions(self, model: str) -> dict[str, VersionInfo]:
        """Every recorded version of ``model``: its spec (JSON) and when it was first seen."""

    def versions_with_data(self, model: str, *, since_bucket: int) -> set[str]:
        """Versions of ``model`` with any aggregate cell in buckets ``>= since_bucket``."""

    def close(self) -> None:
        """Release connections."""
