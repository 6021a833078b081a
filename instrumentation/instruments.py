"""The monitor's OpenTelemetry instruments, created once per monitor (never per request)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from instrumentation import _names as names

if TYPE_CHECKING:
    from instrumentation.monitor import ModelMonitor

logger = logging.getLogger(__name__)

LATENCY_BUCKETS_S = (
    0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1,
    0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
"""Prediction latency histogram bounds (s): the SDK default starts at 5 ms, too coarse here."""

DELAY_BUCKETS_S = (1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 6 * 3600.0, 86400.0, 7 * 86400.0)
"""Label delay histogram bounds (s): a second to a week."""

GaugeSnapshot = dict[str, list[tuple[float, dict[str, str]]]]
"""Gauge observations by instrument name: (value, attributes) of each."""


class Instruments:
    """Counters, histograms and the window gauges of one :class:`ModelMonitor`.

    The gauges carry what PromQL cannot compute from counters (fairness ratios,
    drift statistics, intervals, estimates). Every worker registers them, but only
    the holder of the store's gauge lease reports, so replicas and workers never
    export the same window figure twice.
    """

    def __init__(self, meter: Meter, monitor: ModelMonitor, *, lease_seconds: float) -> None:
        self._monitor = monitor
        self._lease_seconds = lease_seconds
        self._lock = threading.Lock()
        self._points: GaugeSnapshot = {}
        self._points_at = float("-inf")
        # Every signal carries the model's name and version, gauges included.
        self._model_attrs = {
            names.ATTR_MODEL_NAME: monitor.spec.name,
            names.ATTR_MODEL_VERSION: monitor.spec.version,
        }
        self.prediction_duration = meter.create_histogram(
            names.METRIC_PREDICTION_DURATION,
            unit="s",
            description="Wall time of one prediction request, errors included.",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS_S,
        )
        self.predictions = meter.create_counter(
            names.METRIC_PREDICTIONS, unit="{prediction}", description="Rows predicted."
        )
        self.prediction_errors = meter.create_counter(
            names.METRIC_PREDICTION_ERRORS,
            unit="{request}",
            description="Failed prediction requests by error.type.",
        )
        self.evicted = meter.create_counter(
            names.METRIC_PREDICTIONS_EVICTED,
            unit="{prediction}",
            description="Stored predictions dropped by TTL or row cap.",
        )
        self.feedback = meter.create_counter(
            names.METRIC_FEEDBACK, unit="{label}", description="Feedback items by status."
        )
        self.label_delay = meter.create_histogram(
            names.METRIC_LABEL_DELAY,
            unit="s",
            description="Time from a prediction to its matched label.",
            explicit_bucket_boundaries_advisory=DELAY_BUCKETS_S,
        )
        self.confusion = meter.create_counter(
            names.METRIC_CONFUSION,
            unit="{label}",
            description="Matched labels by actual and predicted class.",
        )
        gauges = monitor.book.gauge_names()
        self._first_gauge = gauges[0][0] if gauges else ""
        self.gauges = [
            meter.create_observable_gauge(name, callbacks=[self._callback(name)], unit=unit)
            for name, unit in gauges
        ]

    def _callback(self, name: str):  # type: ignore[no-untyped-def]  # returns an OTel callback
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            points = self.window_points(refresh=name == self._first_gauge)
            return [Observation(v, {**self._model_attrs, **a}) for v, a in points.get(name, ())]

        return observe

    def window_points(self, *, refresh: bool = True) -> GaugeSnapshot:
        """Gauge points of every window by instrument name, one snapshot per collection.

        The SDK runs a reader's callbacks in registration order under one lock, so
        the first gauge's callback refreshes the snapshot and every other one reads
        it: a collection never mixes two computations (a slow or failed one would
        otherwise drop some figures and keep others). A second reader collecting
        within a second reuses the snapshot. Empty unless this process holds the
        gauge lease; errors are logged, never raised into the SDK's export thread.
        """
        with self._lock:
            if refresh and time.monotonic() - self._points_at >= 1.0:
                self._points = self._compute()
                self._points_at = time.monotonic()
            return self._points

    def _compute(self) -> GaugeSnapshot:
        monitor = self._monitor
        try:
            holder = monitor.store.try_lease(
                f"gauges:{monitor.spec.name}",
                monitor.instance_id,
                now=monitor.clock(),
                duration=self._lease_seconds,
            )
            if not holder:
                return {}
            by_name: GaugeSnapshot = {}
            for name, value, attrs in monitor.book.gauge_points(monitor.window_reports()):
                by_name.setdefault(name, []).append((value, attrs))
            return by_name
        except Exception:
            logger.exception("computing window gauges failed; skipped this collection")
            return {}
