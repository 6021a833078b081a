"""One prediction's lifecycle: its inputs, the recorder that takes its outputs once, their checks.

``ModelMonitor.predict`` validates the inputs, opens the span and hands out a
:class:`PredictionRecorder`; the block must call :meth:`~PredictionRecorder.set_outputs`
exactly once or raise. Leaving it with neither is recorded as an error of type
``NO_OUTPUTS`` (span status ERROR, ``ml.prediction.errors``), never a success.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from opentelemetry.trace import Span, SpanContext, format_span_id, format_trace_id

from instrumentation.metrics.quality import sums_to_one
from instrumentation.safekeeping import Kept, KeptRecords
from instrumentation.spec import MAX_MAGNITUDE, ModelSpec, within_magnitude
from instrumentation.store.groups import MISSING_GROUP
from instrumentation.store.protocol import PredictionRecord, record_of

SET_OUTPUTS_TWICE_ERROR: Final = "set_outputs: outputs were already recorded for this prediction"
"""``RuntimeError`` text of a second ``set_outputs`` on one recorder."""

NO_OUTPUTS: Final = "NoOutputs"
"""``error.type`` of a prediction block left without outputs and without an exception."""

NO_OUTPUTS_MESSAGE: Final = "the prediction block ended without set_outputs or an exception"
"""Span status description (and log text) of a ``NO_OUTPUTS`` prediction."""

StoreOutputs = Callable[
    [
        Sequence["PredictionInput"],
        Sequence[str] | None,
        Sequence[Sequence[float]] | None,
        Sequence[float] | None,
        Span,
    ],
    "KeptRecords",
]
"""How a recorder stores its outputs (``ModelMonitor._store_predictions``)."""


@dataclass(frozen=True)
class PredictionInput:
    """One row to predict: model features, an optional client id, sensitive group values."""

    features: Mapping[str, Any]
    id: str | None = None
    groups: Mapping[str, str | None] = field(default_factory=dict)


class PredictionRecorder:
    """The live half of one prediction request, handed out by ``ModelMonitor.predict``.

    It accepts outputs exactly once::

        with monitor.predict(inputs) as rec:
            records = rec.set_outputs(labels=["fraud"], scores=[[0.1, 0.9]])
            rec.set_outputs(labels=["legit"])  # RuntimeError(SET_OUTPUTS_TWICE_ERROR)
    """

    def __init__(self, inputs: Sequence[PredictionInput], span: Span, store: StoreOutputs) -> None:
        self._inputs = inputs
        self._store = store
        self.span = span
        self.records: list[PredictionRecord] = []
        self.kept: Kept | None = None
        """Where the rows went: ``stored``; ``spooled`` (the store could not take them
        now; replayed later, so labels can still join); ``unrecorded`` (served, but no
        label can ever join them)."""

    @property
    def recorded(self) -> bool:
        """True once ``set_outputs`` has taken this prediction's rows."""
        return self.kept is not None

    def set_outputs(
        self,
        *,
        labels: Sequence[str] | None = None,
        scores: Sequence[Sequence[float]] | None = None,
        values: Sequence[float] | None = None,
    ) -> list[PredictionRecord]:
        """Assign prediction ids and store every row durably; return the stored records.

        Classifiers give ``labels`` (class names) and optionally ``scores`` (class
        probabilities in ``spec.classes`` order); regressors give ``values``.

        Raises:
            RuntimeError: ``SET_OUTPUTS_TWICE_ERROR``, outputs were already stored.
            ValueError: outputs that do not fit the model (nothing stored; see
                :func:`check_outputs`).
            DuplicatePredictionId: a reused client id (nothing stored).
        """
        if self.recorded:
            raise RuntimeError(SET_OUTPUTS_TWICE_ERROR)
        # Marked only once stored: a call that raised stored nothing, so it is no output.
        kept = self._store(self._inputs, labels, scores, values, self.span)
        self.records, self.kept = kept.records, kept.kept
        return self.records


def check_outputs(
    spec: ModelSpec,
    n: int,
    labels: Sequence[str] | None,
    scores: Sequence[Sequence[float]] | None,
    values: Sequence[float] | None,
) -> None:
    """Reject model outputs that would corrupt aggregates, before anything is stored."""
    for name, seq in (("labels", labels), ("scores", scores), ("values", values)):
        if seq is not None and len(seq) != n:
            raise ValueError(f"set_outputs: {name} has {len(seq)} rows, expected {n}")
    if spec.is_classifier and labels is None:
        raise ValueError("set_outputs: a classifier must give labels")
    if not spec.is_classifier and values is None:
        raise ValueError("set_outputs: a regressor must give values")
    for i, label in enumerate(labels or ()):
        if label not in spec.classes:
            raise ValueError(f"set_outputs: labels[{i}]={label!r} is not one of {spec.classes}")
    k = len(spec.classes)
    for i, row in enumerate(scores or ()):
        ok = len(row) == k and all(0.0 <= p <= 1.0 for p in row)
        if not ok or not sums_to_one(row):
            raise ValueError(
                f"set_outputs: scores[{i}] must be {k} probabilities in [0, 1] summing to 1"
            )
    for i, value in enumerate(values or ()):
        if not within_magnitude(value):
            raise ValueError(
                f"set_outputs: values[{i}]={value!r} is not a finite number within "
                f"±{MAX_MAGNITUDE:g} (aggregates could not sum its errors)"
            )


@dataclass(frozen=True, slots=True)
class Outputs:
    """A request's model outputs, as ``set_outputs`` took them (already checked)."""

    labels: Sequence[str] | None
    scores: Sequence[Sequence[float]] | None
    values: Sequence[float] | None


def new_records(
    spec: ModelSpec,
    inputs: Sequence[PredictionInput],
    outputs: Outputs,
    *,
    now: float,
    span_context: SpanContext,
) -> list[PredictionRecord]:
    """One record per input: its id (the client's, else a fresh one), outputs, groups, span.

    Fresh ids are time-ordered (UUIDv7's layout: 48-bit milliseconds, then 80 random
    bits) from one urandom call: rows then land at the right edge of the store's id
    index, a page or two per request, where random ids dirty a page per row (each
    copied to the log). A group the client left out is ``MISSING_GROUP``.
    """
    trace_id = format_trace_id(span_context.trace_id)
    span_id = format_span_id(span_context.span_id)
    stamp = f"{int(now * 1000) & 0xFFFFFFFFFFFF:012x}"
    noise = os.urandom(10 * len(inputs)).hex()
    labels, scores, values = outputs.labels, outputs.scores, outputs.values
    return [
        record_of(
            prediction_id=item.id if item.id is not None else stamp + noise[20 * i : 20 * i + 20],
            version=spec.version,
            created=now,
            label=labels[i] if labels is not None else None,
            value=float(values[i]) if values is not None else None,
            scores=tuple(map(float, scores[i])) if scores is not None else None,
            groups={
                attribute: item.groups.get(attribute) or MISSING_GROUP
                for attribute in spec.sensitive_attributes
            },
            trace_id=trace_id,
            span_id=span_id,
        )
        for i, item in enumerate(inputs)
    ]
