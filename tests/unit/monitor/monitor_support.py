"""Shared constants, a hand-moved clock and helpers for the ModelMonitor tests.

Names are spelled out as string literals on purpose: they are the public contract that
dashboards and alert rules depend on, so renaming a constant must fail these tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext

from instrumentation import FeatureSpec, ModelMonitor, ModelSpec, PredictionInput, PredictionRecord

T0 = 1_700_000_040.0
"""A bucket-aligned start time (a multiple of 60 s)."""

BINARY = ModelSpec(
    "fraud-test",
    "v1",
    "binary",
    (FeatureSpec("amount", "number"), FeatureSpec("channel", "category", ("web", "pos"))),
    ("legit", "fraud"),
    sensitive_attributes=("region",),
)
REGRESSION = ModelSpec("price-test", "v7", "regression", (FeatureSpec("size", "number"),))
MODEL_ATTRS = {"ml.model.name": "fraud-test", "ml.model.version": "v1"}
REGRESSION_ATTRS = {"ml.model.name": "price-test", "ml.model.version": "v7"}
NO_STATUSES = {s: 0 for s in ("matched", "duplicate", "conflict", "unknown", "invalid", "expired")}


class Clock:
    """An injected wall clock the test moves by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def inputs(
    amounts: Sequence[float],
    *,
    ids: Sequence[str | None] | None = None,
    regions: Sequence[str | None] | None = None,
) -> list[PredictionInput]:
    return [
        PredictionInput(
            {"amount": amount, "channel": "web"},
            id=ids[i] if ids else None,
            groups={"region": regions[i]} if regions and regions[i] is not None else {},
        )
        for i, amount in enumerate(amounts)
    ]


def predict(
    monitor: ModelMonitor, amounts: Sequence[float], **kwargs: Any
) -> list[PredictionRecord]:
    """A stand-in binary model: P(fraud) = amount / 100."""
    with monitor.predict(inputs(amounts, **kwargs)) as rec:
        p = [min(a / 100.0, 1.0) for a in amounts]
        labels = ["fraud" if q >= 0.5 else "legit" for q in p]
        return rec.set_outputs(labels=labels, scores=[[1.0 - q, q] for q in p])


def regress(monitor: ModelMonitor, values: Sequence[float]) -> list[PredictionRecord]:
    inputs = [PredictionInput({"size": float(i)}) for i in range(len(values))]
    with monitor.predict(inputs) as rec:
        return rec.set_outputs(values=values)


def metrics(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    """Every data point of one collection, by metric name."""
    out: dict[str, list[Any]] = {}
    data = reader.get_metrics_data()
    if data is None:
        return out
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                out.setdefault(metric.name, []).extend(metric.data.data_points)
    return out


def by_attrs(points: Sequence[Any], field: str = "value") -> dict[frozenset[Any], Any]:
    return {frozenset(p.attributes.items()): getattr(p, field) for p in points}


def attr_key(**attrs: Any) -> frozenset[Any]:
    return frozenset(attrs.items())


def spans(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def span_ids(context: SpanContext) -> tuple[str, str]:
    return trace.format_trace_id(context.trace_id), trace.format_span_id(context.span_id)
