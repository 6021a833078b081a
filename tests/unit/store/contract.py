"""Records, increments and an aggregator shared by the store contract tests (and their children)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from instrumentation import open_store
from instrumentation.config import StoreURL
from instrumentation.store.buckets import bucket_of
from instrumentation.store.protocol import (
    Increments,
    Label,
    PredictionRecord,
    PredictionStore,
    per_label,
)

T0 = 1_700_000_040.0
BUCKET = bucket_of(T0)
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SPAN_ID = "b7ad6b7169203331"


def record(
    pid: str,
    *,
    created: float = T0,
    label: str | None = "fraud",
    value: float | None = None,
    scores: tuple[float, ...] | None = (0.25, 0.75),
    groups: dict[str, str] | None = None,
) -> PredictionRecord:
    return PredictionRecord(
        prediction_id=pid,
        version="v1",
        created=created,
        label=label,
        value=value,
        scores=scores,
        groups=groups if groups is not None else {},
        trace_id=TRACE_ID,
        span_id=SPAN_ID,
    )


def predictions(n: int, version: str = "v1", bucket: int = BUCKET) -> Increments:
    increments = Increments()
    increments.add(version, bucket, ("predictions",), float(n))
    return increments


@per_label
def count_labels(record: PredictionRecord, label: Label, now: float, out: Increments) -> None:
    """A label aggregator: one ``labels`` cell and one cell per (actual, predicted)."""
    out.add(record.version, bucket_of(now), ("labels",))
    out.add(record.version, bucket_of(now), ("confusion", str(label), str(record.label)))


def add(
    store: PredictionStore, records: Sequence[PredictionRecord], *, model: str = "m", cap: int = 10
) -> list[PredictionRecord]:
    return store.add_predictions(model, records, predictions(len(records)), max_group_values=cap)


@dataclass
class Backend:
    """Opens store objects on one shared store: several objects are several replicas."""

    name: str
    url: str
    """The ``MONITOR_STORE_URL`` of this store (child processes open it by URL)."""
    opener: Callable[[], PredictionStore]
    opened: list[PredictionStore] = field(default_factory=list)

    def open(self) -> PredictionStore:
        store = self.opener()
        self.opened.append(store)
        return store


# --- run in child processes (spawned: they open the store by its URL) ---------------------------


def child_add(url: str, ids: list[str]) -> int:
    store = open_store(StoreURL.parse(url))
    add(store, [record(p) for p in ids])
    store.close()
    return os.getpid()


def child_label(url: str, labels: list[tuple[str, str]]) -> tuple[int, list[str]]:
    store = open_store(StoreURL.parse(url))
    outcomes = store.apply_labels("m", labels, now=T0 + 30, ttl=3600, aggregate=count_labels)
    store.close()
    return os.getpid(), [o.status for o in outcomes]


def child_read(url: str, ids: list[str]) -> tuple[int, dict[str, Any], dict[str, float]]:
    store = open_store(StoreURL.parse(url))
    feedback = {pid: r.feedback for pid, r in store.get_predictions("m", ids).items()}
    sums = store.sum_aggregates("m", "v1", since_bucket=0)
    store.close()
    return os.getpid(), feedback, sums
