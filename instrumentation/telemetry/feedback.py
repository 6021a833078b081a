"""The counters and span details of one feedback request, each under the predicting version."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from opentelemetry.trace import Span, SpanContext, TraceFlags

from instrumentation.store.protocol import LabelOutcome, PredictionRecord
from instrumentation.telemetry import names
from instrumentation.telemetry.instruments import Instruments

MAX_IDS_ON_SPAN = 64
"""Prediction ids listed on one span; more are counted, not listed (spans stay small)."""

MAX_LINKS_PER_FEEDBACK = 128
"""Span links from one ``ml.feedback`` span to matched ``ml.predict`` spans."""


def record_feedback(
    instruments: Instruments,
    span: Span,
    outcomes: Sequence[LabelOutcome],
    now: float,
    *,
    serving: str,
    attributes_of: Callable[[str], dict[str, str]],
) -> None:
    """Counters of one feedback request, each under the version of the prediction it counts.

    ``attributes_of(version)`` gives a version's model attributes; ``serving`` is the
    version of the process, for items without a stored prediction.

    A label for a prediction an earlier version made counts on that version's
    series: after a deploy, late labels keep completing the old version's
    confusion counts instead of landing on the new one's.
    """
    by_status: Counter[tuple[str, str]] = Counter(
        (o.status, o.record.version if o.record is not None else serving) for o in outcomes
    )
    for (status, version), count in by_status.items():
        instruments.feedback.add(
            count, {**attributes_of(version), names.ATTR_FEEDBACK_STATUS: status}
        )
    matched = [o.record for o in outcomes if o.status == "matched" and o.record]
    by_version: dict[str, list[PredictionRecord]] = {}
    for record in matched:
        by_version.setdefault(record.version, []).append(record)
    for version, records in by_version.items():
        _record_delays(instruments, records, now, attributes_of(version))
    # Confusion cells are counted here and added once each: an add per label costs
    # the SDK's attribute handling per label.
    cells: Counter[tuple[str, str, str]] = Counter(
        (r.version, str(r.feedback), r.label)
        for r in matched
        if r.label is not None and r.feedback is not None
    )
    for (version, actual, predicted), count in cells.items():
        instruments.confusion.add(
            count,
            {
                **attributes_of(version),
                names.ATTR_LABEL_ACTUAL: actual,
                names.ATTR_LABEL_PREDICTED: predicted,
            },
        )
    if not span.is_recording():
        return  # span details only (metrics are above): an unsampled span keeps none of them
    span.set_attribute(
        names.ATTR_FEEDBACK_MATCHED_IDS, [r.prediction_id for r in matched[:MAX_IDS_ON_SPAN]]
    )
    for record in matched[:MAX_LINKS_PER_FEEDBACK]:
        span.add_link(_span_context(record), {names.ATTR_PREDICTION_ID: record.prediction_id})
    span.set_attribute(
        names.ATTR_FEEDBACK_LINKS_DROPPED, max(0, len(matched) - MAX_LINKS_PER_FEEDBACK)
    )


def _record_delays(
    instruments: Instruments,
    records: Sequence[PredictionRecord],
    now: float,
    attributes: dict[str, str],
) -> None:
    """One ``ml.label.delay`` measurement per label: a histogram has no batch record.

    The SDK's cost per call is most of a label's telemetry; the loop around it
    keeps to one bound method and one attribute dict shared by the version's labels.
    """
    record = instruments.label_delay.record
    for r in records:
        delay = now - r.created
        record(delay if delay > 0.0 else 0.0, attributes)


def _span_context(record: PredictionRecord) -> SpanContext:
    return SpanContext(
        trace_id=int(record.trace_id, 16),
        span_id=int(record.span_id, 16),
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.DEFAULT),
    )
