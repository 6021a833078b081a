"""The store protocol: where predictions wait for their labels, and where additive aggregates live.

The store is the single source of truth shared by every worker process (and, with
PostgreSQL, every replica): process memory never holds state another worker needs.
Everything written in one call is written atomically or not at all. What every store
decides the same way lives beside it, once: the label join and group caps in
``_join.py``, the row encoding in ``_rows.py``.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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
the rest of the batch goes on. Stores call it through
:func:`~instrumentation.store._join.aggregate_one`.
"""


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

    def bucket_cells(
        self, model: str, version: str, *, since_bucket: int, until_bucket: int | None = None
    ) -> dict[int, dict[str, float]]:
        """Each bucket's summed cells in ``[since_bucket, until_bucket)``, by encoded key.

        Write markers and the stored-rows counter are not cells: they are left out.
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
        """Record a model version and its spec (JSON) once; later calls change nothing."""

    def model_versions(self, model: str) -> dict[str, VersionInfo]:
        """Every recorded version of ``model``: its spec (JSON) and when it was first seen."""

    def versions_with_data(self, model: str, *, since_bucket: int) -> set[str]:
        """Versions of ``model`` with any aggregate cell in buckets ``>= since_bucket``."""

    def close(self) -> None:
        """Release connections."""
