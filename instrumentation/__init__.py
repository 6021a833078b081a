"""Monitor a served model with OpenTelemetry: trace predictions, join late labels, report metrics.

Framework-agnostic (no serving framework is imported here). The public face::

    from instrumentation import ModelMonitor, ModelSpec, SQLiteStore

See ``ModelMonitor`` for the lifecycle of a prediction and of feedback.

Everything meant for import is in ``__all__`` (a test pins it). The modules read
in the order a prediction meets them: ``monitor`` (the entry), ``recorder`` (one
prediction's outputs and records), ``safekeeping`` and ``spool`` (store, else spool),
``aggregates`` (the additive cells), ``store`` (where predictions wait for labels),
``reports`` (window reports summed from buckets), ``metrics`` (pure math) and
``telemetry`` (everything OpenTelemetry); ``config`` and ``environment`` hold the
configuration, ``spec`` the model's contract. The sub-packages ``metrics`` and
``store`` may be imported for their own documented functions; everything else is
implementation whose public names are re-exported here: import from here.
"""

from __future__ import annotations

from instrumentation.config import ConfigError, MonitorConfig, StoreURL, Window
from instrumentation.errors import DuplicatePredictionId, MonitorError, StoreError, StoreUnavailable
from instrumentation.metrics.reference import ReferenceProfile, build_reference_profile
from instrumentation.metrics.result import MetricValue
from instrumentation.monitor import FeedbackResult, ModelMonitor
from instrumentation.recorder import PredictionInput, PredictionRecorder
from instrumentation.spec import FeatureSpec, InvalidInput, ModelSpec
from instrumentation.spool import Spool
from instrumentation.store import PredictionStore, SQLiteStore, open_store
from instrumentation.store.protocol import PredictionRecord
from instrumentation.telemetry.batch import BatchedRequest
from instrumentation.telemetry.prometheus import PrometheusEndpoint
from instrumentation.telemetry.providers import (
    OTLPSettings,
    build_meter_provider,
    flush_and_shutdown,
    new_instance_id,
)
from instrumentation.version import __version__ as __version__

__all__ = [
    "BatchedRequest",
    "ConfigError",
    "DuplicatePredictionId",
    "FeatureSpec",
    "FeedbackResult",
    "InvalidInput",
    "MetricValue",
    "ModelMonitor",
    "ModelSpec",
    "MonitorConfig",
    "MonitorError",
    "OTLPSettings",
    "PredictionInput",
    "PredictionRecord",
    "PredictionRecorder",
    "PredictionStore",
    "PrometheusEndpoint",
    "ReferenceProfile",
    "SQLiteStore",
    "Spool",
    "StoreError",
    "StoreURL",
    "StoreUnavailable",
    "Window",
    "build_meter_provider",
    "build_reference_profile",
    "flush_and_shutdown",
    "new_instance_id",
    "open_store",
]
