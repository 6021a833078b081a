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
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.metrics import MeterProvider, get_meter
from opentelemetry.trace import Span, Status, StatusCode

from instrumentation import _names as names
from instrumentation._batch_telemetry import BatchedRequest, start_batch_span
from instrumentation._feedback_telemetry import MAX_IDS_ON_SPAN, record_feedback
from instrumentation._instruments import Instruments
from instrumentation._recording import (
    NO_OUTPUTS,
    NO_OUTPUTS_MESSAGE,
    PredictionInput,
    PredictionRecorder,
    check_outputs,
)
from instrumentation._reports import VersionReports
from instrumentation._safekeeping import KeptRecords, Safekeeper
from instrumentation._spool import Spool
from instrumentation._window_gauges import WindowGauges
from instrumentation.aggregates import AggregateBook
from instrumentation.aggregates.gauges import GaugePoint, comparison_points, gauge_points
from instrumentation.aggregates.history import read_history
from instrumentation.config import ROLLUP_SECONDS, MonitorConfig
from instrumentation.spec import ModelSpec
from instrumentation.store.base import (
    FEEDBACK_STATUSES,
    MISSING_GROUP,
    FeedbackStatus,
    LabelOutcome,
    PredictionRecord,
    PredictionStore,
    StoreUnavailable,
    bucket_of,
    is_unavailable,
)

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
            :mod:`instrumentation._safekeeping`); without one they are counted as
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
        self.book = self._make_book(spec)
        self.reports = VersionReports(
            spec,
            store,
            self.config,
            book=self.book,
            make_book=self._make_book,
            clock=clock,
            created=version_created,
        )
        # Recorded now so the version's age is its start, not its first report; a store
        # that cannot take it yet gets it at the first report instead.
        self.reports.register()
        self._label_aggregator = self.book.label_aggregator()
        self._attrs = {names.ATTR_MODEL_NAME: spec.name, names.ATTR_MODEL_VERSION: spec.version}
        self._tracer = trace.get_tracer(
            names.INSTRUMENTATION_SCOPE, tracer_provider=tracer_provider
        )
        meter = get_meter(names.INSTRUMENTATION_SCOPE, meter_provider=meter_provider)
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
        to each request's ``ml.predict`` span (see :mod:`instrumentation._batch_telemetry`).
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
        logger.warning("%s (%s recorded as an error)", NO_OUTPUTS_MESSAGE, names.SPAN_PREDICT)
        span.set_status(Status(StatusCode.ERROR, NO_OUTPUTS_MESSAGE))
        span.set_attribute(names.ATTR_ERROR_TYPE, NO_OUTPUTS)

    def _record_failure(self, span: Span, exc: BaseException, error_type: str) -> None:
        span.set_status(Status(StatusCode.ERROR, str(exc)[:256]))
        span.set_attribute(names.ATTR_ERROR_TYPE, error_type)
        span.record_exception(exc)

    def _record_request(self, elapsed: float, rows: int, error_type: str | None) -> None:
        attrs = dict(self._attrs)
        if error_type is not None:
            attrs[names.ATTR_ERROR_TYPE] = error_type
            self.instruments.prediction_errors.add(1, attrs)
        self.instruments.prediction_duration.record(elapsed, attrs)
        if rows:
            self.instruments.predictions.add(rows, self._attrs)

    def _store_predictions(
        self,
        inputs: Sequence[PredictionInput],
        labels: Sequence[str] | None,
        scores: Sequence[Sequence[float]] | None,
        values: Sequence[float] | None,
        span: Span,
    ) -> KeptRecords:
        check_outputs(self.spec, len(inputs), labels, scores, values)
        now = self.clock()
        context = span.get_span_context()
        trace_id = trace.format_trace_id(context.trace_id)
        span_id = trace.format_span_id(context.span_id)
        # Time-ordered ids (UUIDv7's layout: 48-bit milliseconds, then 80 random bits) from
        # one urandom call: rows then land at the right edge of the store's id index, a page
        # or two per request, where random ids dirty a page per row (each copied to the log).
        stamp = f"{int(now * 1000) & 0xFFFFFFFFFFFF:012x}"
        noise = os.urandom(10 * len(inputs)).hex()
        fresh = [stamp + noise[20 * i : 20 * i + 20] for i in range(len(inputs))]
        version = self.spec.version
        records = [
            PredictionRecord(
                prediction_id=item.id if item.id is not None else fresh[i],
                version=version,
                created=now,
                label=labels[i] if labels is not None else None,
                value=float(values[i]) if values is not None else None,
                scores=tuple(map(float, scores[i])) if scores is not None else None,
                groups=self._groups(item.groups),
                trace_id=trace_id,
                span_id=span_id,
            )
            for i, item in enumerate(inputs)
        ]
        kept = self.keeper.keep(records, [item.features for item in inputs])
        ids = [r.prediction_id for r in kept.records]
        self._safely(span.set_attribute, names.ATTR_PREDICTION_IDS, ids[:MAX_IDS_ON_SPAN])
        return kept

    def _groups(self, given: Mapping[str, str | None]) -> dict[str, str]:
        return {
            attribute: given.get(attribute) or MISSING_GROUP
            for attribute in self.spec.sensitive_attributes
        }

    # --- feedback ----------------------------------------------------------

    def feedback(self, items: Sequence[tuple[str, Any]]) -> FeedbackResult:
        """Join late labels to stored predictions; one ``ml.feedback`` span per call.

        Each item gets a status (see ``FEEDBACK_STATUSES``); only ``matched`` items
        change aggregates. The span links to each matched prediction's span.
        """
        parsed = [(pid, self.spec.parse_label(label)) for pid, label in items]
        self._labels_can_join()
        with self._span(
            names.SPAN_FEEDBACK, {**self._attrs, names.ATTR_FEEDBACK_COUNT: len(items)}
        ) as span:
            now = self.clock()
            with _unavailable_as(StoreUnavailable):
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

    def _labels_can_join(self) -> None:
        """Replay this process's spool before a label is joined: its ids were acknowledged.

        Raises:
            StoreUnavailable: spooled predictions cannot reach the store yet.
        """
        spool = self.keeper.spool
        if spool is None or not spool.pending:
            return
        self.replay_spool()
        if spool.pending:
            raise StoreUnavailable(
                f"{spool.pending} spooled prediction(s) are not in the store yet"
            )

    # --- snapshot and housekeeping -----------------------------------------

    def _make_book(self, spec: ModelSpec) -> AggregateBook:
        return AggregateBook(
            spec,
            min_group_samples=self.config.min_group_samples,
            psi_threshold=self.config.psi_threshold,
            min_drift_samples=self.config.min_drift_samples,
            bucket_seconds=self.config.bucket_seconds,
        )

    def snapshot(self, *, compare: tuple[str, str] | None = None) -> dict[str, Any]:
        """Every window's figures, computed from the store now (the ``GET /monitor`` body).

        ``windows`` is the serving version's; ``versions`` holds every version with
        data in the longest window (newest first); ``comparison`` sets the newest
        version against the one before it, or ``compare`` = (version, baseline).
        """
        with _unavailable_as(StoreUnavailable):
            reading = self.reports.read()
            versions = reading.all_windows()
            body: dict[str, Any] = {
                "model": {
                    "name": self.spec.name,
                    "version": self.spec.version,
                    "task": self.spec.task,
                },
                "stored_predictions": self.store.count_predictions(self.spec.name),
                "spooled_requests": self._spooled_requests(),
                "windows": versions[self.spec.version],
                "versions": {v: {"windows": w} for v, w in versions.items()},
            }
            pair = compare or reading.default_pair()
            if pair is not None:
                try:
                    body["comparison"] = reading.compare(*pair)
                except ValueError as exc:
                    body["comparison"] = {
                        "version": pair[0],
                        "baseline": pair[1],
                        "error": str(exc),
                    }
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

        See :func:`instrumentation.aggregates.history.read_history`.

        Raises:
            ValueError: a step or window that is not whole buckets, or too many points.
        """
        with _unavailable_as(StoreUnavailable):
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

    def _spooled_requests(self) -> int:
        """Requests waiting in this host's spool for the store (0 without a spool)."""
        spool = self.keeper.spool
        return spool.host_pending() if spool is not None else 0

    def window_reports(self) -> dict[str, Any]:
        """The serving version's report for each configured window."""
        return self.reports.windows()

    def gauge_points(self) -> list[GaugePoint]:
        """What the window gauges export: every version's figures, and the comparison."""
        reading = self.reports.read()
        versions = reading.all_windows()
        points = [
            (name, value, {names.ATTR_MODEL_VERSION: version, **attrs})
            for version, windows in versions.items()
            for name, value, attrs in gauge_points(windows)
        ]
        pair = reading.default_pair()
        if pair is not None:
            try:
                comparison = reading.compare(*pair)
            except ValueError:
                return points  # other classes: nothing to compare
            points += [
                (name, value, {names.ATTR_MODEL_VERSION: pair[0], **attrs})
                for name, value, attrs in comparison_points(comparison)
            ]
        return points

    def evict_expired(self) -> int:
        """Drop rows kept past twice the TTL, and the oldest beyond the row cap; count them."""
        removed = self.store.evict(
            self.spec.name,
            now=self.clock(),
            retain=2 * self.config.prediction_ttl,
            max_rows=self.config.max_stored_predictions,
        )
        if removed:
            self._safely(self.instruments.evicted.add, removed, self._attrs)
        return removed

    def compact_aggregates(self) -> int:
        """Keep the cost of long windows flat and the aggregate table bounded.

        Buckets older than ``rollup_after`` are merged into hour buckets (a day
        window then sums ~24 + 120 buckets, not 1,440); buckets older than the
        longest window (plus one hour) are dropped. A window longer than
        ``rollup_after`` is therefore exact to the hour at its old edge.
        """
        now = self.clock()
        longest = max(w.seconds for w in self.config.windows)
        width = self.config.bucket_seconds
        return self.store.compact_aggregates(
            self.spec.name,
            drop_before=bucket_of(now - longest - ROLLUP_SECONDS, width),
            rollup_before=bucket_of(now - self.config.rollup_after, ROLLUP_SECONDS),
            rollup_width=ROLLUP_SECONDS,
        )

    def housekeeping(self, *, lease_seconds: float) -> bool:
        """Evict and compact, in one process per store at a time; True if this one did.

        Every worker calls this on a timer; a store lease picks one, since every
        pass holds the write lock that predictions wait for and doing it twice is
        wasted. (Were two to run at once, eviction still keeps the newest rows up
        to the cap and compaction stays exact.)
        """
        lease = f"housekeeping:{self.spec.name}"
        if not self.store.try_lease(
            lease, self.instance_id, now=self.clock(), duration=lease_seconds
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

    @contextmanager
    def _span(
        self,
        name: str,
        attributes: dict[str, Any],
        *,
        start: Callable[[], Span] | None = None,
    ) -> Iterator[Span]:
        """The current span around a request; starting or ending it never raises into it.

        A span processor that raises (in ``on_start`` or ``on_end``) would otherwise
        fail a request whose prediction or label is already committed: the client
        would retry into a 409 or a second prediction. ``start`` starts a span other
        than a child of the current one named ``name``.
        """
        try:
            span: Span = (
                start()
                if start is not None
                else self._tracer.start_span(
                    name,
                    attributes=attributes,
                    record_exception=False,
                    set_status_on_exception=False,
                )
            )
        except Exception:
            logger.exception("telemetry error starting %s (request unaffected)", name)
            span = trace.INVALID_SPAN
        try:
            with trace.use_span(
                span, end_on_exit=False, record_exception=False, set_status_on_exception=False
            ):
                yield span
        finally:
            self._safely(span.end)

    def _safely(self, func: Callable[..., Any], *args: Any) -> None:
        """Run telemetry work; log and swallow its errors so it never breaks a request."""
        try:
            func(*args)
        except Exception:
            logger.exception(
                "telemetry error in %s (request unaffected)", getattr(func, "__name__", func)
            )


@contextmanager
def _unavailable_as(kind: type[Exception]) -> Iterator[None]:
    """Re-raise the store's "cannot work now" errors as ``kind``; anything else unchanged."""
    try:
        yield
    except Exception as exc:
        if is_unavailable(exc) and not isinstance(exc, kind):
            raise kind(str(exc)) from exc
        raise
