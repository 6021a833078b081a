"""Keeping the store bounded: expired predictions evicted, old buckets merged and dropped.

Each worker calls ``ModelMonitor.housekeeping`` on a timer; a store lease picks
one per store at a time (:func:`take_turn`): every pass holds the write lock that
predictions wait for, and doing it twice is wasted. (Were two to run at once,
eviction still keeps the newest rows up to the cap and compaction stays exact.)
"""

from __future__ import annotations

from instrumentation.config import ROLLUP_SECONDS, MonitorConfig
from instrumentation.store.buckets import bucket_of
from instrumentation.store.protocol import PredictionStore


def evict_expired(store: PredictionStore, model: str, config: MonitorConfig, *, now: float) -> int:
    """Drop rows kept past twice the TTL, and the oldest beyond the row cap; count them."""
    return store.evict(
        model,
        now=now,
        retain=2 * config.prediction_ttl,
        max_rows=config.max_stored_predictions,
    )


def compact_aggregates(
    store: PredictionStore, model: str, config: MonitorConfig, *, now: float
) -> int:
    """Keep the cost of long windows flat and the aggregate table bounded.

    Buckets older than ``rollup_after`` are merged into hour buckets (a day
    window then sums ~24 + 120 buckets, not 1,440); buckets older than the
    longest window (plus one hour) are dropped. A window longer than
    ``rollup_after`` is therefore exact to the hour at its old edge.
    """
    longest = max(w.seconds for w in config.windows)
    return store.compact_aggregates(
        model,
        drop_before=bucket_of(now - longest - ROLLUP_SECONDS, config.bucket_seconds),
        rollup_before=bucket_of(now - config.rollup_after, ROLLUP_SECONDS),
        rollup_width=ROLLUP_SECONDS,
    )


def take_turn(
    store: PredictionStore, model: str, holder: str, *, now: float, seconds: float
) -> bool:
    """Whether ``holder`` does ``model``'s housekeeping now: it holds the lease for ``seconds``."""
    return store.try_lease(f"housekeeping:{model}", holder, now=now, duration=seconds)
