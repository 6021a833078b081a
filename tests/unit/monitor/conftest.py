"""Every ModelMonitor test gets its own providers, reader, exporter, store and clock."""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import instrumentation.monitor as monitor_module
from instrumentation import ModelMonitor, ModelSpec, MonitorConfig, SQLiteStore
from tests.unit.monitor.monitor_support import BINARY, REGRESSION, Clock


@pytest.fixture
def span_exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer_provider(span_exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    yield provider
    provider.shutdown()


@pytest.fixture
def metric_reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def meter_provider(metric_reader: InMemoryMetricReader) -> Iterator[MeterProvider]:
    provider = MeterProvider(metric_readers=[metric_reader])
    yield provider
    provider.shutdown()


@pytest.fixture
def store(tmp_path: Any) -> Iterator[SQLiteStore]:
    sqlite = SQLiteStore(tmp_path / "store.db")
    yield sqlite
    sqlite.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def config() -> MonitorConfig:
    return MonitorConfig(prediction_ttl=3600.0)


@pytest.fixture
def make_monitor(
    store: SQLiteStore,
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    clock: Clock,
    config: MonitorConfig,
) -> Callable[[ModelSpec], ModelMonitor]:
    """A monitor of ``spec`` on this test's providers, store, clock and config."""

    def make(spec: ModelSpec) -> ModelMonitor:
        return ModelMonitor(
            spec,
            store,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            config=config,
            instance_id="worker-a",
            clock=clock,
        )

    return make


@pytest.fixture
def monitor(make_monitor: Callable[[ModelSpec], ModelMonitor]) -> ModelMonitor:
    return make_monitor(BINARY)


@pytest.fixture
def regression_monitor(make_monitor: Callable[[ModelSpec], ModelMonitor]) -> ModelMonitor:
    return make_monitor(REGRESSION)


@pytest.fixture
def perf_counter(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Patch the monitor's latency clock: each call pops the next tick from the list."""
    ticks: list[float] = []
    fake = types.SimpleNamespace(perf_counter=lambda: ticks.pop(0))
    monkeypatch.setattr(monitor_module, "time", fake)
    return ticks
