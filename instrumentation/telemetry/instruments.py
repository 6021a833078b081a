"""The monitor's counters and histograms, created once per monitor (never per request).

Window gauges are not here: they need the store, a lease and a cached snapshot,
so they are an object of their own (``telemetry.window_gauges.WindowGauges``).
"""

from __future__ import annotations

from opentelemetry.metrics import Meter, MeterProvider, get_meter

from instrumentation.telemetry import names

LATENCY_BUCKETS_S = (
    0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1,
    0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
"""Prediction latency histogram bounds (s): the SDK default starts at 5 ms, too coarse here."""


def library_meter(provider: MeterProvider | None) -> Meter:
    """This library's meter from ``provider`` (global when None): name, version, schema URL."""
    return get_meter(
        names.INSTRUMENTATION_SCOPE, names.SCOPE_VERSION, provider, schema_url=names.SCHEMA_URL
    )


DELAY_BUCKETS_S = (1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 6 * 3600.0, 86400.0, 7 * 86400.0)
"""Label delay histogram bounds (s): a second to a week."""


class Instruments:
    """Every synchronous instrument of one :class:`ModelMonitor`, made from one meter.

    Callers add the attributes (model name and version, and the bounded ones
    each instrument's docstring in ``telemetry/names.py`` lists)::

        instruments = Instruments(meter)
        instruments.predictions.add(3, {"ml.model.name": "fraud", "ml.model.version": "v1"})
    """

    def __init__(self, meter: Meter) -> None:
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
        self.spooled = meter.create_counter(
            names.METRIC_PREDICTIONS_SPOOLED,
            unit="{prediction}",
            description="Predictions spooled locally while the store could not take them.",
        )
        self.replayed = meter.create_counter(
            names.METRIC_PREDICTIONS_REPLAYED,
            unit="{prediction}",
            description="Spooled predictions written to the store since.",
        )
        self.unrecorded = meter.create_counter(
            names.METRIC_PREDICTIONS_UNRECORDED,
            unit="{prediction}",
            description="Predictions served but not recorded (no label can join them), by reason.",
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

    def record_request(
        self, attributes: dict[str, str], elapsed: float, rows: int, error_type: str | None
    ) -> None:
        """One prediction request: its latency, its rows, and its error (``error.type``) if any."""
        attrs = dict(attributes)
        if error_type is not None:
            attrs[names.ATTR_ERROR_TYPE] = error_type
            self.prediction_errors.add(1, attrs)
        self.prediction_duration.record(elapsed, attrs)
        if rows:
            self.predictions.add(rows, attributes)
