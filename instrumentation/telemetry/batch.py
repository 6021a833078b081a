"""The span of one model call that serves several requests at once (adaptive batching).

A batch has no single parent: it serves many requests, each in its own trace. So its
``ml.predict.batch`` span is the root of a trace of its own, started with an explicit
empty context (a batching dispatcher's task otherwise keeps whatever request was
current when it started, and every batch would claim that stale request as its
parent), and it carries a **span link** to each served request's ``ml.predict`` span,
with the rows that request had in the batch. Links are given at start, so a sampler
sees them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanContext, Tracer

from instrumentation.telemetry import names

MAX_LINKS_PER_BATCH = 128
"""Span links from one ``ml.predict.batch`` span; more served requests are counted, not linked.

A batch serves at most one request per row, so a batch size below this links every request."""


@dataclass(frozen=True)
class BatchedRequest:
    """One request served (in part) by a batch: its ``ml.predict`` span and its rows in it."""

    span_context: SpanContext
    rows: int


def start_batch_span(
    tracer: Tracer, requests: Sequence[BatchedRequest], attributes: Mapping[str, Any]
) -> Span:
    """Start the ``ml.predict.batch`` span of one model call over ``requests``' rows."""
    linked = [r for r in requests if r.span_context.is_valid]
    links = [
        Link(r.span_context, {names.ATTR_PREDICTION_COUNT: r.rows})
        for r in linked[:MAX_LINKS_PER_BATCH]
    ]
    return tracer.start_span(
        names.SPAN_PREDICT_BATCH,
        context=Context(),  # a root: never the dispatcher's stale current span
        links=links,
        attributes={
            **attributes,
            names.ATTR_BATCH_ROWS: sum(r.rows for r in requests),
            names.ATTR_BATCH_REQUESTS: len(requests),
            names.ATTR_BATCH_LINKS_DROPPED: len(requests) - len(links),
        },
        record_exception=False,
        set_status_on_exception=False,
    )
