"""Monitor a served model with OpenTelemetry: trace predictions, join late labels, report metrics.

Framework-agnostic (no serving framework is imported here). The public face::

    from instrumentation import ModelMonitor, ModelSpec, SQLiteStore

See ``ModelMonitor`` for the lifecycle of a prediction and of feedback.
"""

from __future__ import annotations

from instrumentation.config import ConfigError, MonitorConfig, StoreURL, Window
from instrumentation.metrics.result import MetricValue
from instrumentation.monitor import (
    FeedbackResult,
    ModelMonitor,
    PredictionInput,
    PredictionRecorder,
)
from instrumentation.prometheus import PrometheusEndpoint
from instrumentation.spec import FeatureSpec, InvalidInput, ModelSpec
from instrumentation.store import PredictionStore, SQLiteStore, open_store
from instrumentation.store.base import DuplicatePredictionId, PredictionRecord
from instrumentation.telemetry import (
    OTLPSettings,
    build_meter_provider,
    flush_and_shutdown,
    new_instance_id,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DuplicatePredictionId",
    "FeatureSpec",
    "FeedbackResult",
    "InvalidInput",
    "MetricValue",
    "ModelMonitor",
    "ModelSpec",
    "MonitorConfig",
    "OTLPSettings",
    "PredictionInput",
    "PredictionRecord",
    "PredictionRecorder",
    "PredictionStore",
    "PrometheusEndpoint",
    "SQLiteStore",
    "StoreURL",
    "Window",
    "build_meter_provider",
    "flush_and_shutdown",
    "new_instance_id",
    "open_store",
]
