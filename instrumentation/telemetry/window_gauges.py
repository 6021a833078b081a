"""Window gauges: what PromQL cannot compute from counters, exported by one lease holder.

Fairness ratios, drift statistics, intervals and estimates are functions of a
window's summed buckets, the same whichever process computes them. Every worker
registers the gauges, but only the holder of the store's gauge lease reports
them, so workers and replicas never export the same window figure twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from instrumentation.store.protocol import PredictionStore
from instrumentation.telemetry.gauge_points import GaugePoint
from instrumentation.telemetry.gauge_table import GAUGES, Gauge

logger = logging.getLogger(__name__)

REUSE_SECONDS: Final = 1.0
"""A collection starting this soon after the last computation reuses its snapshot."""

COMPUTE_FAILED_LOG: Final = "computing window gauges failed; skipped this collection"

GaugeSnapshot = dict[str, list[Observation]]
"""Observations by gauge name, model attributes included."""


class WindowGauges:
    """One observable gauge per entry of the gauge table, one computation per collection.

    ``points`` returns every observation of one collection (``ModelMonitor.gauge_points``:
    each version's window figures and the version comparison, a point's attributes
    naming its version)::

        gauges = WindowGauges(meter, store, lease="gauges:fraud", holder=instance_id,
                              points=monitor.gauge_points, attributes={"ml.model.name": …},
                              clock=time.time, lease_seconds=180.0)

    **One snapshot per collection, whatever the callback order.** A collection
    calls each gauge's callback once, so a callback whose gauge was already
    served from the current snapshot marks the start of the next collection:
    that callback (whichever gauge it is) decides for the whole collection,
    recomputing unless the snapshot is under ``REUSE_SECONDS`` old (a second
    reader collecting right after the first reuses it). The rest of the
    collection reads the same snapshot, so it never mixes two computations,
    however slow one is. The SDK runs a reader's callbacks one after another, and
    a lock covers two readers collecting at once.

    **Failures.** Not holding the lease gives an empty snapshot; a computation
    that raises is logged (``COMPUTE_FAILED_LOG``) and also gives an empty one,
    so a collection gets every window figure or none, and nothing is raised into
    the SDK's export thread.
    """

    def __init__(
        self,
        meter: Meter,
        store: PredictionStore,
        *,
        lease: str,
        holder: str,
        points: Callable[[], Iterable[GaugePoint]],
        attributes: Mapping[str, str],
        clock: Callable[[], float],
        lease_seconds: float,
        gauges: Sequence[Gauge] = GAUGES,
    ) -> None:
        self._store = store
        self._lease = lease
        self._holder = holder
        self._points = points
        self._attributes = dict(attributes)
        self._clock = clock
        self._lease_seconds = lease_seconds
        self._lock = threading.Lock()
        self._snapshot: GaugeSnapshot = {}
        self._computed_at = float("-inf")
        # The initial (empty) snapshot counts as read by every gauge: the first callback computes.
        self._served = {gauge.name for gauge in gauges}
        self.instruments = [
            meter.create_observable_gauge(
                gauge.name,
                callbacks=[self._callback(gauge.name)],
                unit=gauge.unit,
                description=gauge.description,
            )
            for gauge in gauges
        ]

    def _callback(self, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return self.observe(name)

        return observe

    def observe(self, name: str) -> list[Observation]:
        """The current collection's observations of gauge ``name`` (see the class docstring)."""
        with self._lock:
            if name in self._served:  # a new collection has begun
                self._served.clear()
                if time.monotonic() - self._computed_at >= REUSE_SECONDS:
                    self._snapshot = self._compute()
                    self._computed_at = time.monotonic()
            self._served.add(name)
            return self._snapshot.get(name, [])

    def _compute(self) -> GaugeSnapshot:
        try:
            holder = self._store.try_lease(
                self._lease, self._holder, now=self._clock(), duration=self._lease_seconds
            )
            if not holder:
                return {}
            snapshot: GaugeSnapshot = {}
            for name, value, attrs in self._points():
                observation = Observation(value, {**self._attributes, **attrs})
                snapshot.setdefault(name, []).append(observation)
            return snapshot
        except Exception:
            logger.exception(COMPUTE_FAILED_LOG)
            return {}
