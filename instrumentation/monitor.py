"""ModelMonitor: one object per served model that traces, counts and stores every prediction.

Usage (providers are injected; nothing global is touched)::

    monitor = ModelMonitor(spec, store, tracer_provider=tp, meter_provider=mp)
    with monitor.predict(inputs) as rec:
        labels, scores = model_call(...)
        records = rec.set_outputs(labels=labels, scores=scores)
    outcome = monitor.feedback([("pred-1", "fraud")])

Metrics and the stored prediction happen for 100% of requests; only span export
is subject to sampling, so nothing here is guarded by ``span.is_recording()``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import Span

from instrumentation import housekeeping
from instrumentation.aggregates import AggregateBook
from instrumentation.aggregates.history import read_history
from instrumentation.config import MonitorConfig
from instrumentation.recorder import (
    NO_OUTPUTS,
    NO_OUTPUTS_MESSAGE,
    Outputs,
    PredictionInput,
    PredictionRecorder,
    check_outputs,
    new_records,
)
from instrumentation.reports import VersionReports
from instrumentation.safekeeping import KeptRecords, Safekeeper
from instrumentation.spec import ModelSpec
from instrumentation.spool import Spool
from instrumentation.store.protocol import (
    FEEDBACK_STATUSES,
    FeedbackStatus,
    LabelOutcome,
    PredictionStore,
)
from instrumentation.telemetry import names
from instrumentation.telemetry.batch import BatchedRequest, start_batch_span
from instrumentation.telemetry.feedback import MAX_IDS_ON_SPAN, record_feedback
from instrumentation.telemetry.gauge_points import GaugePoint, reading_points
from instrumentation.telemetry.instruments import Instruments, library_meter
from instrumentation.telemetry.spans import (
    library_tracer,
    mark_failed,
    mark_no_outputs,
    request_span,
    safely,
)
from instrumentation.telemetry.window_gauges import WindowGauges

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedbackResult:
    """Per-item statuses, in request order, and their counts."""

    results: list[tuple[str, FeedbackStatus]]
    counts: dict[str, int]


class ModelMonitor:
    """Records predictions, joins feedback and computes metrics for one model.

    Args:
        spec: the model's task, classes, features and sensitive attributes.
        store: the shared store (source of truth across workers and replicas).
        tracer_provider: where ``ml.predict``/``ml.feedback`` spans go; pass the
            serving framework's provider so they join its request trace.
        meter_provider: where metrics go.
        config: windows, TTL, caps (``MonitorConfig.from_env`` reads them).
        instance_id: this process's ``service.instance.id`` (gauge lease holder).
        clock: seconds since the epoch; injectable for tests.
        spool: where predictions wait while the store cannot take them (see
            :mod:`instrumentation.safekeeping`); without one they are counted as
            unrecorded instead.
        version_created: when this model version was made (seconds since the epoch;
            default: now); versions are ordered by it, so "newest" means the newest
            model, whichever server started first.
    """

    def __init__(
        self,
        spec: ModelSpec,
        store: PredictionStore,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        config: MonitorConfig | None = None,
        instance_id: str | None = None,
        clock: Callable[[], float] = time.time,
        gauge_lease_seconds: float = 180.0,
        spool: Spool | None = None,
        version_created: float | None = None,
    ) -> None:
        self.spec = spec
        self.store = store
        self.config = config or MonitorConfig()
        self.instance_id = instance_id or uuid.uuid4().hex
        self.clock = clock
        self.book = AggregateBook.configured(spec, self.config)
        self.reports = VersionReports(
            spec,
            store,
            self.config,
            book=self.book,
            make_book=lambda other: AggregateBook.configured(other, self.config),
            clock=clock,
            created=version_created,
        )
        # Recorded now so the version's age is its start, not its first report; a store
        # that cannot take it yet gets it at the first report instead.
        self.reports.register()
        self._label_aggregator = self.book.label_aggregator()
        self._attrs = {names.ATTR_MODEL_NAME: spec.name, names.ATTR_MODEL_VERSION: spec.version}
        self._tracer = library_tracer(tracer_provider)
        meter = library_meter(meter_provider)
        self.instruments = Instruments(meter)
        self.keeper = Safekeeper(
            spec.name,
            store,
            spool,
            book=self.book,
            config=self.config,
            instruments=self.instruments,
            attributes=self._attrs,
        )
        self.window_gauges = WindowGauges(
            meter,
            store,
            lease=f"gauges:{spec.name}",
            holder=self.instance_id,
            points=self.gauge_points,
            attributes={names.ATTR_MODEL_NAME: spec.name},
            clock=clock,
            lease_seconds=gauge_lease_seconds,
        )

    # --- predictions -------------------------------------------------------

    def predict(
        self, inputs: Sequence[PredictionInput]
    ) -> AbstractContextManager[PredictionRecorder]:
        """Validate the inputs, then span + latency + counts around one prediction request.

        The block must call ``set_outputs`` once or raise. On an exception the span
        gets status ERROR and ``error.type``, the latency and error are still
        recorded, and the exception propagates unchanged. Leaving the block with
        neither is recorded the same way, with ``error.type`` ``NoOutputs``.

        Raises:
            InvalidInput: a feature or group value is invalid (its message names the
                field, ``instances[i].features.<name>``), raised here, before any span
                or count: a client error is not a failed prediction.
        """
        self.spec.validate_features([item.features for item in inputs])
        self.spec.validate_groups([item.groups for item in inputs])
        return self._recording(inputs)

    @contextmanager
    def _recording(self, inputs: Sequence[PredictionInput]) -> Iterator[PredictionRecorder]:
        start = time.perf_counter()
        with self._span(
            names.SPAN_PREDICT, {**self._attrs, names.ATTR_PREDICTION_COUNT: len(inputs)}
        ) as span:
            recorder = PredictionRecorder(inputs, span, self._store_predictions)
            error_type: str | None = None
            try:
                yield recorder
            except BaseException as exc:
                error_type = type(exc).__qualname__
                self._safely(self._record_failure, span, exc, error_type)
                raise
            else:
                if not recorder.recorded:
                    error_type = NO_OUTPUTS
                    self._safely(self._record_no_outputs, span)
            finally:
                elapsed = time.perf_counter() - start
                self._safely(self._record_request, elapsed, len(recorder.records), error_type)

    @contextmanager
    def batch(self, requests: Sequence[BatchedRequest]) -> Iterator[Span]:
        """Span around one model call that serves the rows of several requests (adaptive batching).

        Wrap the model call only: each request still opens its own ``predict`` block
        (its span, counts and stored rows), waits for its rows' outputs and sets them
        there. The ``ml.predict.batch`` span is the root of its own trace, with a link
        to each request's ``ml.predict`` span (see :mod:`instrumentation.telemetry.batch`).
        On an exception it gets status ERROR and ``error.type``, and the exception
        propagates unchanged.
        """
        with self._span(
            names.SPAN_PREDICT_BATCH,
            self._attrs,
            start=lambda: start_batch_span(self._tracer, requests, self._attrs),
        ) as span:
            try:
                yield span
            except BaseException as exc:
                self._safely(self._record_failure, span, exc, type(exc).__qualname__)
                raise

    def _record_no_outputs(self, span: Span) -> None:
        mark_no_outputs(span, NO_OUTPUTS, NO_OUTPUTS_MESSAGE)

    def _record_failure(self, span: Span, exc: BaseException, error_type: str) -> None:
        mark_failed(span, exc, error_type)

    def _record_request(self, elapsed: float, rows: int, error_type: str | None) -> None:
        self.instruments.record_request(self._attrs, elapsed, rows, error_type)

    def _store_predictions(
        self,
        inputs: Sequence[PredictionInput],
        labels: Sequence[str] | None,
        scores: Sequence[Sequence[float]] | None,
        values: Sequence[float] | None,
        span: Span,
    ) -> KeptRecords:
        check_outputs(self.spec, len(inputs), labels, scores, values)
        records = new_records(
            self.spec,
            inputs,
            Outputs(labels, scores, values),
            now=self.clock(),
            span_context=span.get_span_context(),
        )
        kept = self.keeper.keep(records, [item.features for item in inputs])
        ids = [r.prediction_id for r in kept.records]
        self._safely(span.set_attribute, names.ATTR_PREDICTION_IDS, ids[:MAX_IDS_ON_SPAN])
        return kept

    # --- feedback ----------------------------------------------------------

    def feedback(self, items: Sequence[tuple[str, Any]]) -> FeedbackResult:
        """Join late labels to stored predictions; one ``ml.feedback`` span per call.

        Each item gets a status (see ``FEEDBACK_STATUSES``); only ``matched`` items
        change aggregates. The span links to each matched prediction's span.
        """
        parsed = [(pid, self.spec.parse_label(label)) for pid, label in items]
        self.keeper.replay_before_labels()
        with self._span(
            names.SPAN_FEEDBACK, {**self._attrs, names.ATTR_FEEDBACK_COUNT: len(items)}
        ) as span:
            now = self.clock()
            outcomes = self.store.apply_labels(
                self.spec.name,
                parsed,
                now=now,
                ttl=self.config.prediction_ttl,
                aggregate=self._label_aggregator,
            )
            counts: dict[str, int] = dict.fromkeys(FEEDBACK_STATUSES, 0)
            for outcome in outcomes:
                counts[outcome.status] += 1
            self._safely(self._record_feedback, span, outcomes, now)
        return FeedbackResult([(o.prediction_id, o.status) for o in outcomes], counts)

    def _record_feedback(self, span: Span, outcomes: list[LabelOutcome], now: float) -> None:
        record_feedback(
            self.instruments,
            span,
            outcomes,
            now,
            serving=self.spec.version,
            attributes_of=self._version_attrs,
        )

    def replay_spool(self) -> int:
        """Write predictions spooled by this process (or a dead one) to the store; how many.

        Call it on a timer (the service does, every second). Errors other than the
        store still being unavailable propagate.
        """
        return self.keeper.replay()

    # --- snapshot and housekeeping -----------------------------------------

    def snapshot(self, *, compare: tuple[str, str] | None = None) -> dict[str, Any]:
        """Every window's figures, computed from the store now (the ``GET /monitor`` body).

        ``windows`` is the serving version's; ``versions`` holds every version with
        data in the longest window (newest first); ``comparison`` sets the newest
        version against the one before it, or ``compare`` = (version, baseline), in each
        window and (``rollout``) over every label since the newer one was recorded;
        ``alerts`` holds each version's sequential alert statistics.
        """
        reading = self.reports.read()
        versions = reading.all_windows()
        body: dict[str, Any] = {
            "model": {"name": self.spec.name, "version": self.spec.version, "task": self.spec.task},
            "stored_predictions": self.store.count_predictions(self.spec.name),
            "spooled_requests": self.keeper.host_pending(),
            "windows": versions[self.spec.version],
            "versions": {v: {"windows": w} for v, w in versions.items()},
            "alerts": {v: reading.alerts(v) for v in versions},
        }
        pair = compare or reading.default_pair()
        if pair is not None:
            body["comparison"] = reading.comparison(*pair)
        return body

    def history(
        self,
        *,
        window: float,
        step: float | None = None,
        start: float | None = None,
        end: float | None = None,
    ) -> dict[str, Any]:
        """Each figure over time, per version: the ``GET /monitor/history`` body.

        Raises:
            ValueError: a step or window that is not whole buckets, or too many points
                (see :func:`instrumentation.aggregates.history.read_history`).
        """
        self.reports.register()
        return read_history(
            self.store,
            self.spec,
            self.config,
            self.reports.book,
            now=self.clock(),
            window=window,
            step=step,
            start=start,
            end=end,
        )

    def window_reports(self) -> dict[str, Any]:
        """The serving version's report for each configured window."""
        return self.reports.windows()

    def gauge_points(self) -> list[GaugePoint]:
        """What the window gauges export: every version's figures, and the comparison."""
        return reading_points(self.reports.read())

    def evict_expired(self) -> int:
        """Drop rows kept past twice the TTL, and the oldest beyond the row cap; count them."""
        removed = housekeeping.evict_expired(
            self.store, self.spec.name, self.config, now=self.clock()
        )
        if removed:
            self._safely(self.instruments.evicted.add, removed, self._attrs)
        return removed

    def compact_aggregates(self) -> int:
        """Merge old buckets into hours, drop those past the longest window (see housekeeping)."""
        return housekeeping.compact_aggregates(
            self.store, self.spec.name, self.config, now=self.clock()
        )

    def housekeeping(self, *, lease_seconds: float) -> bool:
        """Evict and compact, one process per store at a time (a lease); True if this one did."""
        if not housekeeping.take_turn(
            self.store, self.spec.name, self.instance_id, now=self.clock(), seconds=lease_seconds
        ):
            return False
        self.evict_expired()
        self.compact_aggregates()
        return True

    def _version_attrs(self, version: str) -> dict[str, str]:
        """The model attributes of ``version`` (this model's name; any of its versions)."""
        if version == self.spec.version:
            return self._attrs
        return {**self._attrs, names.ATTR_MODEL_VERSION: version}

    def _span(
        self,
        name: str,
        attributes: dict[str, Any],
        *,
        start: Callable[[], Span] | None = None,
    ) -> AbstractContextManager[Span]:
        """The current span around a request (see :func:`~.telemetry.spans.request_span`)."""
        return request_span(self._tracer, name, attributes, start=start)

    def _safely(self, func: Callable[..., Any], *args: Any) -> None:
        """Run telemetry work; log and swallow its errors so it never breaks a request."""
        safely(func, *args)
