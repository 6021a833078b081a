"""The store contract: what the monitor needs from a store, the records it keeps, its errors.

The store is the single source of truth shared by every worker process (and, with
PostgreSQL, every replica): process memory never holds state another worker needs.
Everything written in one call is written atomically or not at all.

An engine implements :class:`PredictionStore` (see ``docs/writing-a-store-engine.md``);
what every engine decides the same way lives beside this module, once: the label join
(:mod:`.join`), group caps (:mod:`.groups`), the stored encoding of rows and cells
(:mod:`.encoding`), the window cache (:mod:`.window_cache`). Engines raise only the
errors of :mod:`instrumentation.errors`, re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

from instrumentation.errors import (
    DuplicatePredictionId,
    StoreError,
    StoreSchemaTooNew,
    StoreUnavailable,
)
from instrumentation.store.keys import AggregateKey, encode_key

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


@dataclass(frozen=True)
class VersionInfo:
    """A model version a store has seen: its monitor spec (JSON text) and when it was made.

    ``first_seen`` is the version's creation time where the monitor was told it (the
    service passes the model's), else when a monitor first recorded the version.
    """

    spec: str
    first_seen: float


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


_new = object.__new__
_set = object.__setattr__


def record_of(
    prediction_id: str,
    version: str,
    created: float,
    label: str | None,
    value: float | None,
    scores: tuple[float, ...] | None,
    groups: Mapping[str, str],
    trace_id: str,
    span_id: str,
    feedback: Label | None = None,
    feedback_at: float | None = None,
) -> PredictionRecord:
    """``PredictionRecord(...)`` for the hot paths, at about half its cost.

    A frozen dataclass's ``__init__`` sets each of the 11 fields through
    ``object.__setattr__``; the join and the predict path build one record per
    row, thousands a second. This sets the instance's ``__dict__`` once: the same
    fields, equality and repr, still frozen (``tests/unit/store/test_records.py``).
    """
    record = _new(PredictionRecord)
    _set(
        record,
        "__dict__",
        {
            "prediction_id": prediction_id,
            "version": version,
            "created": created,
            "label": label,
            "value": value,
            "scores": scores,
            "groups": groups,
            "trace_id": trace_id,
            "span_id": span_id,
            "feedback": feedback,
            "feedback_at": feedback_at,
        },
    )
    return record


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


class LabelAggregator(Protocol):
    """Adds matched labels' increments, inside the store's transaction.

    Called by the join (:func:`~instrumentation.store.join.join_labels`): first
    :meth:`many` for all of a request's matched labels; when that refuses, once per
    label, which tells the items that cannot be aggregated (reported ``invalid``)
    from the rest. :func:`per_label` makes one from a function of one label.
    """

    def __call__(self, record: PredictionRecord, label: Label, now: float, out: Increments) -> None:
        """Add one label's increments to ``out``; ``ValueError`` when it cannot be aggregated."""

    def many(
        self, pairs: Sequence[tuple[PredictionRecord, Label]], now: float, out: Increments
    ) -> bool:
        """Add every pair's increments to ``out``, or (when any pair cannot be) none: False."""


OneLabel = Callable[[PredictionRecord, Label, float, Increments], None]
"""A function adding one label's increments (what :func:`per_label` wraps)."""


class _PerLabel:
    """A :class:`LabelAggregator` whose :meth:`many` calls one function per label."""

    def __init__(self, one: OneLabel) -> None:
        self._one = one

    def __call__(self, record: PredictionRecord, label: Label, now: float, out: Increments) -> None:
        self._one(record, label, now, out)

    def many(
        self, pairs: Sequence[tuple[PredictionRecord, Label]], now: float, out: Increments
    ) -> bool:
        own = Increments()
        try:
            for record, label in pairs:
                self._one(record, label, now, own)
        except ValueError:
            return False  # the join goes label by label and reports which is invalid
        out.merge(own)
        return True


def per_label(one: OneLabel) -> LabelAggregator:
    """A :class:`LabelAggregator` from a function of one label (usable as a decorator).

    >>> @per_label
    ... def count(record, label, now, out):
    ...     out.add(record.version, 0, ("labels",))
    >>> callable(count.many)
    True
    """
    return _PerLabel(one)


class PredictionStore(Protocol):
    """What the monitor needs from a store.

    Shipped: :class:`~instrumentation.SQLiteStore` (one host) and
    :class:`~instrumentation.store.postgres.PostgresStore` (replicas on many hosts).
    Every method raises only :class:`~instrumentation.errors.StoreError` and its
    subclasses for the store's own failures (:class:`StoreUnavailable` when a retry
    may succeed), with the driver's error as ``__cause__``.
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

    def bucket_cells(
        self, model: str, version: str, *, since_bucket: int, until_bucket: int | None = None
    ) -> dict[int, dict[str, float]]:
        """Each bucket's cells (encoded key -> value) for buckets in ``[since, until)``.

        Only buckets holding cells appear; the write markers and the stored-rows
        counter are not cells. Summed over buckets, equal to :meth:`sum_aggregates`.
        """

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
        """Record a model version and its spec (JSON) once; later calls change nothing.

        The first record also snapshots, in the same transaction, every other version's
        cumulative cells (``rollout.snapshot_cells`` of :meth:`cumulative_cells`).
        """

    def cumulative_cells(self, model: str) -> dict[str, float]:
        """``model``'s model-wide rollout cells by encoded key (see :mod:`.rollout`).

        The cells at version ``encoding.COUNTER_VERSION`` and bucket
        ``encoding.COUNTER_BUCKET``, the stored-rows counter aside.
        """

    def model_versions(self, model: str) -> dict[str, VersionInfo]:
        """Every recorded version of ``model``: its spec (JSON) and when it was first seen."""

    def versions_with_data(self, model: str, *, since_bucket: int) -> set[str]:
        """Versions of ``model`` with any aggregate cell in buckets ``>= since_bucket``."""

    def close(self) -> None:
        """Release connections."""


__all__ = [
    "FEEDBACK_STATUSES",
    "DuplicatePredictionId",
    "FeedbackStatus",
    "Increments",
    "Label",
    "LabelAggregator",
    "LabelOutcome",
    "PredictionRecord",
    "PredictionStore",
    "StoreError",
    "StoreSchemaTooNew",
    "StoreUnavailable",
    "VersionInfo",
    "per_label",
]
