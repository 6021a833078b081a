"""The BentoML service: ``POST /predict``, ``POST /feedback``, ``GET /monitor``.

Wiring only. To serve your own model, save it with ``service.train.save``'s two
files (estimator + monitor spec) and set ``MONITOR_MODEL`` or change ``MODEL_TAG``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from http import HTTPStatus

import bentoml
import joblib
from bentoml.exceptions import BentoMLException, InvalidArgument
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from instrumentation import (
    ConfigError,
    DuplicatePredictionId,
    InvalidInput,
    ModelMonitor,
    ModelSpec,
    MonitorConfig,
    OTLPSettings,
    PredictionInput,
    PrometheusEndpoint,
    build_meter_provider,
    flush_and_shutdown,
    new_instance_id,
    open_store,
)
from service import SERVICE_NAME, log_filters
from service.auth import FeedbackTokenMiddleware
from service.bentoml_internals import (
    bentoml_tracer_provider,
    bentoml_worker_index,
    share_instance_id_with_spans,
    tracing_config,
)
from service.predictor import Predictor
from service.schemas import (
    FeedbackRequest,
    FeedbackResponse,
    Instance,
    LabelItem,
    LabelResult,
    ModelInfo,
    Prediction,
    PredictRequest,
    PredictResponse,
)
from service.train import DEFAULT_MODEL, MODEL_FILE, SPEC_FILE

logger = logging.getLogger(__name__)
log_filters.install()

MODEL_TAG = os.environ.get("MONITOR_MODEL", DEFAULT_MODEL)
"""The served model: a tag in the BentoML model store (``name`` means ``name:latest``)."""

# Read at import so a bad value stops `bentoml serve` before any worker starts.
try:
    CONFIG = MonitorConfig.from_env(os.environ)
    OTLP = OTLPSettings.from_env(os.environ)
except ConfigError as exc:
    # One line naming the variable, not a 60-line import traceback; exit status 2.
    print(f"model_monitor: bad configuration: {exc}", file=sys.stderr)
    raise SystemExit(2) from None
INSTANCE_ID = new_instance_id()
"""This process's ``service.instance.id``, on its metrics and (via BentoML) its spans."""
share_instance_id_with_spans(INSTANCE_ID)
HOUSEKEEPING_SECONDS = 60.0
SHUTDOWN_FLUSH_SECONDS = 8.0
"""Most a worker waits for its last export at shutdown (Kubernetes grants 30 s in all)."""


class Conflict(BentoMLException):
    """409: a client-supplied prediction id is already taken."""

    error_code = HTTPStatus.CONFLICT


class PayloadTooLarge(BentoMLException):
    """413: more items than the configured cap."""

    error_code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


async def _snapshot(request: Request) -> JSONResponse:
    service = bentoml.get_current_service()
    # Summing a day of buckets is blocking database work: keep it off the event loop.
    return JSONResponse(await run_in_threadpool(service.monitor.snapshot))


# Mounted at the root: BentoML matches its own routes first, then this app's, so
# `GET /monitor` needs no trailing slash and no redirect.
monitor_app = Starlette(routes=[Route("/monitor", _snapshot, methods=["GET"])])


@bentoml.asgi_app(monitor_app, path="/")
@bentoml.service(
    name=SERVICE_NAME,
    workers=CONFIG.workers,
    tracing=tracing_config(OTLP, sample_rate=CONFIG.trace_sample_rate),
    http={"response": {"trace_id": True}},
)
class ModelService:
    """A scikit-learn model behind BentoML, monitored by ``instrumentation``."""

    model_ref = bentoml.models.BentoModel(MODEL_TAG)

    def __init__(self) -> None:
        stored = self.model_ref  # BentoML resolves the class attribute to the stored Model
        with open(stored.path_of(SPEC_FILE), encoding="utf-8") as handle:
            spec = ModelSpec.from_dict(json.load(handle)).with_version(stored.tag.version or "")
        self.spec = spec
        self.predictor = Predictor(joblib.load(stored.path_of(MODEL_FILE)), spec)
        self.instance_id = INSTANCE_ID
        self.meter_provider = _meter_provider(self.instance_id)
        # The service (not the library) installs the global provider: BentoML's ASGI
        # middleware then also emits http.server.* metrics through it.
        metrics.set_meter_provider(self.meter_provider)
        self.tracer_provider = bentoml_tracer_provider()
        # `bentoml serve <tag>` runs from inside the bento: say where a relative store lands.
        logger.info("prediction store: %s", CONFIG.store_url.describe())
        self.monitor = ModelMonitor(
            spec,
            open_store(CONFIG.store_url),
            tracer_provider=self.tracer_provider,
            meter_provider=self.meter_provider,
            config=CONFIG,
            instance_id=self.instance_id,
            gauge_lease_seconds=3 * OTLP.export_interval_s,
        )
        self._stop = threading.Event()
        self._housekeeper = threading.Thread(target=self._housekeeping, daemon=True)
        self._housekeeper.start()

    def _housekeeping(self) -> None:
        while not self._stop.wait(HOUSEKEEPING_SECONDS):
            try:
                # The lease outlives two missed rounds, so one worker keeps the job.
                self.monitor.housekeeping(lease_seconds=2.5 * HOUSEKEEPING_SECONDS)
            except Exception:
                logger.exception("housekeeping failed; will retry")

    @bentoml.api(input_spec=PredictRequest)
    def predict(self, instances: list[Instance]) -> PredictResponse:
        """Predict each instance; every row gets a prediction id to send labels against."""
        if not instances:
            raise InvalidArgument("instances: expected at least 1 instance")
        if len(instances) > CONFIG.max_batch:
            raise PayloadTooLarge(
                f"instances: {len(instances)} given, at most {CONFIG.max_batch} per request "
                "(MONITOR_MAX_BATCH)"
            )
        first_seen: dict[str, int] = {}
        for index, item in enumerate(instances):
            if item.id is not None and item.id in first_seen:
                raise InvalidArgument(
                    f"instances[{index}].id: {item.id!r} repeats instances"
                    f"[{first_seen[item.id]}].id; ids must be unique within a request"
                )
            if item.id is not None:
                first_seen[item.id] = index
        rows = [item.features for item in instances]
        try:
            self.spec.validate_features(rows)
            self.spec.validate_groups([item.groups for item in instances])
        except InvalidInput as exc:
            raise InvalidArgument(str(exc)) from None
        inputs = [PredictionInput(item.features, item.id, item.groups) for item in instances]
        try:
            with self.monitor.predict(inputs) as rec:
                if self.spec.is_classifier:
                    labels, scores = self.predictor.classify(rows)
                    records = rec.set_outputs(labels=labels, scores=scores)
                else:
                    records = rec.set_outputs(values=self.predictor.regress(rows))
        except DuplicatePredictionId as exc:
            index = next(i for i, item in enumerate(instances) if item.id == exc.prediction_id)
            raise Conflict(f"instances[{index}].id: {exc}; nothing was stored") from None
        classes = self.spec.classes
        return PredictResponse(
            model=ModelInfo(name=self.spec.name, version=self.spec.version),
            predictions=[
                Prediction(
                    prediction_id=r.prediction_id,
                    label=r.label,
                    scores=dict(zip(classes, r.scores, strict=True)) if r.scores else None,
                    value=r.value,
                )
                for r in records
            ],
        )

    @bentoml.api(input_spec=FeedbackRequest)
    def feedback(self, labels: list[LabelItem]) -> FeedbackResponse:
        """Attach late labels to earlier predictions; each item gets its own status.

        With ``MONITOR_FEEDBACK_TOKEN`` set, ``FeedbackTokenMiddleware`` has already
        checked the bearer token.
        """
        if not labels:
            raise InvalidArgument("labels: expected at least 1 label")
        if len(labels) > CONFIG.max_batch:
            raise PayloadTooLarge(
                f"labels: {len(labels)} given, at most {CONFIG.max_batch} per request "
                "(MONITOR_MAX_BATCH)"
            )
        result = self.monitor.feedback([(item.prediction_id, item.label) for item in labels])
        return FeedbackResponse(
            results=[LabelResult(prediction_id=p, status=s) for p, s in result.results],
            counts=result.counts,
        )

    @bentoml.on_shutdown
    def flush(self) -> None:
        """Export the last interval: uvicorn re-raises SIGTERM, so atexit never runs."""
        self._stop.set()
        flush_and_shutdown(
            meter_provider=self.meter_provider,
            tracer_provider=self.tracer_provider,
            budget_s=SHUTDOWN_FLUSH_SECONDS,
        )
        self.monitor.store.close()


def prometheus_endpoint(worker_index: int | None) -> PrometheusEndpoint | None:
    """This worker's scrape endpoint: ``MONITOR_PROMETHEUS_PORT + index - 1``, or None (off).

    Outside a BentoML worker (index None, e.g. an in-process test app) it is the
    first port.
    """
    if CONFIG.prometheus_port is None:
        return None
    return PrometheusEndpoint(
        CONFIG.prometheus_host, CONFIG.prometheus_port + (worker_index or 1) - 1
    )


def _meter_provider(instance_id: str) -> MeterProvider:
    """OTLP export as configured, plus this worker's scrape endpoint when one is asked for.

    A scrape port that cannot be bound is logged, not raised: telemetry never takes a
    worker down (Prometheus then shows ``up == 0`` for that endpoint, which the shipped
    ``ModelMonitorTargetDown`` rule alerts on).
    """
    index = bentoml_worker_index()
    endpoint = prometheus_endpoint(index)
    if endpoint is not None:
        try:
            return build_meter_provider(
                OTLP,
                instance_id=instance_id,
                default_service_name=SERVICE_NAME,
                prometheus=endpoint,
            )
        except OSError as exc:
            logger.error(
                "MONITOR_PROMETHEUS_PORT=%s: worker %s cannot serve metrics on %s:%s (%s); "
                "it serves requests without a scrape endpoint",
                CONFIG.prometheus_port,
                index or 1,
                endpoint.host,
                endpoint.port,
                exc.strerror or exc,
            )
    return build_meter_provider(OTLP, instance_id=instance_id, default_service_name=SERVICE_NAME)


def _feedback_token() -> str | None:
    return CONFIG.feedback_token  # read per request: the live configuration


# asgi_app's decorator is typed as returning the class, hiding that this is a bentoml Service.
ModelService.add_asgi_middleware(FeedbackTokenMiddleware, token=_feedback_token)  # type: ignore[attr-defined]

__all__ = ["CONFIG", "ConfigError", "ModelService", "monitor_app"]
