"""The BentoML service: ``POST /predict``, ``POST /feedback``, ``GET /monitor``.

Wiring only. To serve your own model, save it with
:func:`service.model_store.save_model` and set ``MONITOR_MODEL`` to its name
(or tag) when you run or build; a built bento serves the model it was built with.

What happens at import, and why: BentoML reads the worker count, the tracing
options, the request schema and the model reference when the class is
decorated, so the settings are read, the served model is resolved and loaded,
and its spec checked against the estimator here. A bad setting or a model the
service cannot serve then stops ``bentoml serve`` with one line (exit status 2)
before any worker starts, instead of a worker that fails and restarts forever.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import sys
import threading
import time
from http import HTTPStatus
from typing import Any, cast

import anyio
import anyio.to_thread
import bentoml
from bentoml.exceptions import NotFound
from opentelemetry import metrics
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from instrumentation import (
    ConfigError,
    DuplicatePredictionId,
    InvalidInput,
    ModelMonitor,
    ModelSpec,
    PredictionInput,
    Spool,
    StoreUnavailable,
    flush_and_shutdown,
    new_instance_id,
    open_store,
)
from instrumentation.store import DeferredStore
from service import SERVICE_NAME, log_filters, ui
from service.auth import READ_PATHS, READ_UNAUTHORIZED_MESSAGE, FeedbackTokenMiddleware
from service.batching import BATCH_API, BatchedPredictor, batching_options
from service.bentoml_internals import (
    bento_model_tags,
    bentoml_tracer_provider,
    share_instance_id_with_spans,
    tracing_config,
)
from service.body_limit import BodyLimitMiddleware
from service.content_type import JSONOnlyMiddleware
from service.errors import Refused, error_response
from service.metrics_export import meter_provider
from service.model_store import load_model
from service.openapi import OpenAPIMiddleware
from service.predictor import Predictor
from service.schemas import (
    FeedbackRequest,
    FeedbackResponse,
    Instance,
    LabelItem,
    LabelResult,
    ModelInfo,
    Prediction,
    PredictResponse,
    predict_request_for,
)
from service.settings import CannotServe, Settings, load_settings, served_model_tag

logger = logging.getLogger(__name__)
log_filters.install()


def _load(settings: Settings) -> tuple[str, Any, ModelSpec, float]:
    tag = served_model_tag(settings, bento_model_tags())
    try:
        stored = bentoml.models.get(tag)
    except NotFound:
        raise CannotServe(
            f"MONITOR_MODEL={tag!r}: no such model in the BentoML model store "
            f"({os.environ.get('BENTOML_HOME', '~/bentoml')}); save it first "
            "(python -m service.train for the demo models, or service.model_store.save_model)"
        ) from None
    estimator, spec = load_model(stored)
    Predictor(estimator, spec)  # names and classes checked once, before any worker starts
    return str(stored.tag), estimator, spec, stored.info.creation_time.timestamp()


try:
    SETTINGS = load_settings(os.environ)
    MODEL_TAG, _ESTIMATOR, SPEC, MODEL_CREATED = _load(SETTINGS)
except ConfigError as exc:
    # One line naming the variable, not a 60-line import traceback; exit status 2.
    print(f"model_monitor: bad configuration: {exc}", file=sys.stderr)
    raise SystemExit(2) from None
except ValueError as exc:  # CannotServe, and a spec that cannot feed the estimator
    print(f"model_monitor: cannot serve the model: {exc}", file=sys.stderr)
    raise SystemExit(2) from None
INSTANCE_ID = new_instance_id()
"""This process's ``service.instance.id``, on its metrics and (via BentoML) its spans."""
share_instance_id_with_spans(INSTANCE_ID)
HOUSEKEEPING_SECONDS = 60.0
REPLAY_SECONDS = 1.0
"""How often a worker tries to write its spooled predictions to the store."""
RETRY_AFTER_SECONDS = 5
STORE_OPEN_WAIT_SECONDS = 5.0
"""Most a worker's start waits for its store; a store still down then is opened later."""
STORE_UNAVAILABLE = "the prediction store is unavailable; retry later"
SHUTDOWN_FLUSH_SECONDS = 8.0
"""Most a worker waits for its last export at shutdown (Kubernetes grants 30 s in all)."""


@functools.cache
def _freeze_startup_heap() -> None:
    """Move every object alive after start-up out of the cyclic collector's reach, once.

    A worker's start-up heap (BentoML, the model, schemas: ~200k objects) lives as
    long as the worker, yet every full collection walked it again: ~0.1-0.2 s each,
    one every few thousand labels or predictions. Frozen, a collection walks only
    what requests allocated. Start-up garbage is collected first, so none is kept.
    """
    gc.collect()
    gc.freeze()


def unavailable(exc: StoreUnavailable) -> JSONResponse:
    """503 with ``Retry-After``: the store cannot answer now; the client should try again."""
    return error_response(
        HTTPStatus.SERVICE_UNAVAILABLE,
        f"{STORE_UNAVAILABLE}: {exc}",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def count_checked(field: str, given: int, cap: int) -> None:
    """Refuse an empty list or more than ``MONITOR_MAX_BATCH`` items (``/docs.json``'s bounds)."""
    if given == 0:
        noun = "instance" if field == "instances" else "label"
        raise Refused(HTTPStatus.BAD_REQUEST, f"{field}: expected at least 1 {noun}")
    if given > cap:
        raise Refused(
            HTTPStatus.BAD_REQUEST,
            f"{field}: {given} given, at most {cap} per request (MONITOR_MAX_BATCH)",
        )


PREDICT_REQUEST = predict_request_for(SPEC)
"""``/predict``'s body, with the served model's features and groups in its schema."""

# Mounted at the root: BentoML matches its own routes first, then this app's, so
# `GET /monitor` needs no trailing slash and no redirect.
monitor_app = Starlette(routes=ui.routes(unavailable=unavailable))


@bentoml.asgi_app(monitor_app, path="/")
@bentoml.service(
    name=SERVICE_NAME,
    workers=SETTINGS.monitor.workers,
    tracing=tracing_config(SETTINGS.otlp, sample_rate=SETTINGS.monitor.trace_sample_rate),
    http={"response": {"trace_id": True}},
    **batching_options(SETTINGS.batching),
)
class ModelService:
    """A scikit-learn model behind BentoML, monitored by ``instrumentation``."""

    # What `bentoml build` records in the bento (and `bentoml export` ships).
    model_ref = bentoml.models.BentoModel(MODEL_TAG)

    def __init__(self) -> None:
        # Read per instance, not per process: an in-process test app starts a fresh
        # instance per test, with that test's environment.
        self.settings = settings = load_settings(os.environ)
        self.spec = SPEC
        self.predictor: Predictor | BatchedPredictor = Predictor(_ESTIMATOR, SPEC)
        self.instance_id = INSTANCE_ID
        self.meter_provider = meter_provider(settings, self.instance_id)
        # The service (not the library) installs the global provider: BentoML's ASGI
        # middleware then also emits http.server.* metrics through it.
        metrics.set_meter_provider(self.meter_provider)
        self.tracer_provider = bentoml_tracer_provider()
        # `bentoml serve <tag>` runs from inside the bento: say where a relative store lands.
        logger.info("prediction store: %s", settings.monitor.store_url.describe())
        self.spool = Spool(
            settings.monitor.spool_dir,
            owner=self.instance_id,
            max_bytes=settings.monitor.spool_max_bytes,
        )
        # Opened in the background: a store that is down at start-up costs no worker.
        # Waiting a little keeps the usual start (store up) free of a spooled first request.
        store = open_store(
            settings.monitor.store_url, workers=settings.monitor.workers, deferred=True
        )
        if isinstance(store, DeferredStore) and not store.wait_open(STORE_OPEN_WAIT_SECONDS):
            logger.error("prediction store not open yet; serving, spooling until it is")
        self.monitor = ModelMonitor(
            SPEC,
            store,
            tracer_provider=self.tracer_provider,
            meter_provider=self.meter_provider,
            config=settings.monitor,
            instance_id=self.instance_id,
            gauge_lease_seconds=3 * settings.otlp.export_interval_s,
            spool=self.spool,
            version_created=MODEL_CREATED,  # versions are ordered by their model's age
        )
        if SETTINGS.batching.enabled:
            self.predictor = BatchedPredictor(self.predictor, self.monitor, self._submit_batch)
        self._one_at_a_time: anyio.CapacityLimiter | None = None
        self._stop = threading.Event()
        self._housekeeper = threading.Thread(target=self._housekeeping, daemon=True)
        self._housekeeper.start()
        _freeze_startup_heap()

    def _housekeeping(self) -> None:
        """Replay the spool every second; evict and compact every minute (one worker)."""
        next_housekeeping = time.monotonic() + HOUSEKEEPING_SECONDS
        while not self._stop.wait(REPLAY_SECONDS):
            try:
                self.monitor.replay_spool()
            except Exception:
                logger.exception("replaying spooled predictions failed; will retry")
            if time.monotonic() < next_housekeeping:
                continue
            next_housekeeping = time.monotonic() + HOUSEKEEPING_SECONDS
            try:
                # The lease outlives two missed rounds, so one worker keeps the job.
                self.monitor.housekeeping(lease_seconds=2.5 * HOUSEKEEPING_SECONDS)
            except Exception:
                logger.exception("housekeeping failed; will retry")

    @bentoml.api(input_spec=PREDICT_REQUEST)
    async def predict(self, instances: list[Instance]) -> PredictResponse:
        """Predict each instance; every row gets a prediction id to send labels against."""
        try:
            if isinstance(self.predictor, BatchedPredictor):
                # A thread per waiting request: concurrent requests must wait together for the
                # batch to fill.
                return await run_in_threadpool(self._predict, instances)
            # One request at a time per worker, as BentoML runs a sync API (its `threads`, 1).
            if self._one_at_a_time is None:  # made in the event loop, as anyio requires
                self._one_at_a_time = anyio.CapacityLimiter(1)
            return await anyio.to_thread.run_sync(
                self._predict, instances, limiter=self._one_at_a_time
            )
        except Refused as refused:
            return refused.response("POST /predict")  # type: ignore[return-value]  # BentoML passes a Response on

    if SETTINGS.batching.enabled:  # decided at import: BentoML reads the API list then

        @bentoml.api(
            batchable=True,
            batch_dim=0,
            max_batch_size=SETTINGS.batching.max_rows,
            max_latency_ms=SETTINGS.batching.max_latency_ms,
        )
        def predict_batch(self, items: list[str]) -> list[bool]:
            """Internal (adaptive batching): one model call for the parked rows ``items`` name."""
            return cast(BatchedPredictor, self.predictor).run_batch(items)

    async def _submit_batch(self, items: list[str]) -> list[bool]:
        """Post ``items`` to this worker's own batchable route (BentoML's in-process client)."""
        client = self.to_async  # type: ignore[attr-defined]  # set by BentoML when the worker starts
        return cast(list[bool], await getattr(client, BATCH_API)(items=items))

    def _predict(self, instances: list[Instance]) -> PredictResponse:
        count_checked("instances", len(instances), self.settings.monitor.max_batch)
        first_seen: dict[str, int] = {}
        for index, item in enumerate(instances):
            if item.id is not None and item.id in first_seen:
                raise Refused(  # the same conflict as an id already stored: a 409
                    HTTPStatus.CONFLICT,
                    f"instances[{index}].id: {item.id!r} repeats instances"
                    f"[{first_seen[item.id]}].id; ids must be unique within a request",
                )
            if item.id is not None:
                first_seen[item.id] = index
        rows = [item.features for item in instances]
        inputs = [PredictionInput(item.features, item.id, item.groups) for item in instances]
        try:
            recording = self.monitor.predict(inputs)  # validates features and groups first
        except InvalidInput as exc:
            raise Refused(HTTPStatus.BAD_REQUEST, str(exc)) from None
        try:
            with recording as rec:
                if self.spec.is_classifier:
                    labels, scores = self.predictor.classify(rows)
                    records = rec.set_outputs(labels=labels, scores=scores)
                else:
                    records = rec.set_outputs(values=self.predictor.regress(rows))
        except DuplicatePredictionId as exc:
            index = next(i for i, item in enumerate(instances) if item.id == exc.prediction_id)
            raise Refused(
                HTTPStatus.CONFLICT, f"instances[{index}].id: {exc}; nothing was stored"
            ) from None
        classes = self.spec.classes
        recorded = rec.kept != "unrecorded"
        return PredictResponse(
            model=ModelInfo(name=self.spec.name, version=self.spec.version),
            predictions=[
                Prediction(
                    prediction_id=r.prediction_id,
                    label=r.label,
                    scores=dict(zip(classes, r.scores, strict=True)) if r.scores else None,
                    value=r.value,
                    recorded=recorded,
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
        try:
            count_checked("labels", len(labels), self.settings.monitor.max_batch)
            result = self.monitor.feedback([(i.prediction_id, i.label) for i in labels])
        except Refused as refused:
            return refused.response("POST /feedback")  # type: ignore[return-value]  # BentoML passes a Response on
        except StoreUnavailable as exc:
            # Nothing was joined: the label sender retries after Retry-After.
            return unavailable(exc)  # type: ignore[return-value]  # BentoML passes a Response on
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
        self.spool.close()  # entries left stay on disk: another worker replays them
        self.monitor.store.close()


def _feedback_token() -> str | None:
    """The running service's token (checked before BentoML parses the body)."""
    service: ModelService = bentoml.get_current_service()
    return service.settings.monitor.feedback_token


def _read_token() -> str | None:
    """The running service's token for the figures (``/monitor``, its history)."""
    service: ModelService = bentoml.get_current_service()
    return service.settings.read_token


# asgi_app's decorator is typed as returning the class, hiding that this is a bentoml Service.
ModelService.add_asgi_middleware(FeedbackTokenMiddleware, token=_feedback_token)  # type: ignore[attr-defined]
ModelService.add_asgi_middleware(  # type: ignore[attr-defined]
    FeedbackTokenMiddleware, token=_read_token, path=READ_PATHS, message=READ_UNAUTHORIZED_MESSAGE
)
ModelService.add_asgi_middleware(  # type: ignore[attr-defined]
    BodyLimitMiddleware, limit=lambda: bentoml.get_current_service().settings.max_body_bytes
)
ModelService.add_asgi_middleware(JSONOnlyMiddleware)  # type: ignore[attr-defined]
ModelService.add_asgi_middleware(  # type: ignore[attr-defined]
    OpenAPIMiddleware, max_batch=lambda: bentoml.get_current_service().settings.monitor.max_batch
)

__all__ = ["SETTINGS", "ModelService", "monitor_app"]
