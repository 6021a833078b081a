"""The baseline of ``bench.served``: what a user would serve instead of the template.

Same model store entry, loaded the same way ``service/service.py`` loads it; the same
``Predictor``; the same request and response schemas (so validation and JSON
encoding cost the same) — and no monitoring: no ``ModelMonitor``, no store, no
MeterProvider. Prediction ids are fresh UUIDs so the response has the template's shape.

Configuration mirrors the template where BentoML itself is concerned, so ratios
isolate what monitoring adds: ``MONITOR_WORKERS`` sets the worker count (default 2),
and with ``OTEL_EXPORTER_OTLP_ENDPOINT`` set BentoML's own tracing exports spans at
``MONITOR_TRACE_SAMPLE_RATE``, exactly as the template configures it.

Serve it with ``bentoml serve bench.bare_service:BareService`` from the repository root.
"""

from __future__ import annotations

import os
import uuid

import bentoml
from bentoml.exceptions import InvalidArgument

from instrumentation import OTLPSettings
from service import SERVICE_NAME
from service.bentoml_internals import tracing_config
from service.model_store import load_model
from service.predictor import Predictor
from service.schemas import Instance, ModelInfo, Prediction, PredictRequest, PredictResponse
from service.settings import DEFAULT_MODEL

MODEL_TAG = os.environ.get("MONITOR_MODEL", DEFAULT_MODEL)
WORKERS = int(os.environ.get("MONITOR_WORKERS", "2"))
SAMPLE_RATE = float(os.environ.get("MONITOR_TRACE_SAMPLE_RATE", "0") or 0)


# The template's name: the harness (harness.serving.Server) counts each worker's
# "Service <name> initialized" line to know every worker is up.
@bentoml.service(
    name=SERVICE_NAME,
    workers=WORKERS,
    tracing=tracing_config(OTLPSettings.from_env(os.environ), sample_rate=SAMPLE_RATE),
    http={"response": {"trace_id": True}},
)
class BareService:
    """The demo model behind BentoML, unmonitored."""

    model_ref = bentoml.models.BentoModel(MODEL_TAG)

    def __init__(self) -> None:
        stored = self.model_ref
        estimator, spec = load_model(stored)
        self.spec = spec
        self.predictor = Predictor(estimator, spec)

    # bentoml ships no type information (the service package relaxes this check too).
    @bentoml.api(input_spec=PredictRequest)  # type: ignore[untyped-decorator]
    def predict(self, instances: list[Instance]) -> PredictResponse:
        """Predict each instance (classifiers only, like the demo model)."""
        if not instances:
            raise InvalidArgument("instances: expected at least 1 instance")
        labels, scores = self.predictor.classify([item.features for item in instances])
        classes = self.spec.classes
        return PredictResponse(
            model=ModelInfo(name=self.spec.name, version=self.spec.version),
            predictions=[
                Prediction(
                    prediction_id=uuid.uuid4().hex,
                    label=label,
                    scores=dict(zip(classes, row, strict=True)),
                )
                for label, row in zip(labels, scores, strict=True)
            ],
        )
