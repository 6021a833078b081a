"""The service's configuration: one function reads it from an environment mapping.

``load_settings(os.environ)`` is what the service calls; tests call it with their
own mapping. A bad value raises :class:`~instrumentation.ConfigError` naming the
variable and what is allowed.

The variables are declared once, with their defaults: the library's in
``instrumentation/environment.py``, the service's own below (``SERVICE_VARIABLES``);
``VARIABLES`` is both, the table the docs' configuration page shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import bentoml

from instrumentation import ConfigError, MonitorConfig, OTLPSettings, PrometheusEndpoint
from instrumentation.environment import LIBRARY_VARIABLES, Variable
from service import SERVICE_NAME

MONITOR_MODEL: Final = Variable(
    "MONITOR_MODEL",
    "model store tag",
    "fraud-detector",  # the example model `python -m service.train` saves
    "model store tag to serve",
)
MONITOR_MAX_BODY_BYTES: Final = Variable(
    "MONITOR_MAX_BODY_BYTES",
    "whole number >= 1",
    # Sized from the batch cap: MONITOR_MAX_BATCH (1000) rows of up to 4 KiB each, about 20
    # times a demo row (~200 bytes with its groups), room for a hundred numeric features with
    # an id and group values. Parsed, a body takes about six times its size, so one request
    # holds ~25 MB at most before MONITOR_MAX_BATCH can even be checked.
    "4194304",
    "largest request body; a larger one gets a 413 before it is read into memory (1000 rows "
    "of up to 4 KiB each; raise it for wide models)",
    shown="`4194304` (4 MiB)",
)
MONITOR_ADAPTIVE_BATCHING: Final = Variable(
    "MONITOR_ADAPTIVE_BATCHING",
    "1/true/on or 0/false/off",
    "0",
    "`1` (or `true`/`on`): concurrent `/predict` requests share model calls through BentoML's "
    "adaptive batching (see [Adaptive batching](#adaptive-batching-optional))",
)
MONITOR_BATCH_MAX_ROWS: Final = Variable(
    "MONITOR_BATCH_MAX_ROWS",
    "whole number >= 2",
    "64",
    "with batching on: most rows in one model call (BentoML's `max_batch_size`, at least 2; a "
    "larger request is split over several calls)",
)
MONITOR_BATCH_MAX_LATENCY_MS: Final = Variable(
    "MONITOR_BATCH_MAX_LATENCY_MS",
    "whole number >= 1",
    "60000",
    "with batching on: BentoML's `max_latency_ms`; a request it expects to wait longer in the "
    "batch queue gets a 503 (the default, BentoML's own, sheds nothing the unbatched service "
    "would have queued)",
)
MONITOR_READ_TOKEN: Final = Variable(
    "MONITOR_READ_TOKEN",
    "secret",
    None,
    "require `Authorization: Bearer <token>` on `/monitor` and `/monitor/history` (the page "
    "asks for it once)",
    shown="unset",
)
OTEL_SERVICE_NAME: Final = Variable(
    "OTEL_SERVICE_NAME",
    "name",
    None,
    "resource `service.name` of spans and metrics",
    shown=f"`{SERVICE_NAME}`",
    read_by_sdk=True,  # the service passes its name as the SDK's fallback
)

SERVICE_VARIABLES: Final[tuple[Variable, ...]] = (
    MONITOR_MODEL,
    MONITOR_MAX_BODY_BYTES,
    MONITOR_ADAPTIVE_BATCHING,
    MONITOR_BATCH_MAX_ROWS,
    MONITOR_BATCH_MAX_LATENCY_MS,
    MONITOR_READ_TOKEN,
    OTEL_SERVICE_NAME,
)
"""The variables only the service reads (the library's are ``LIBRARY_VARIABLES``)."""

VARIABLES: Final[tuple[Variable, ...]] = (*LIBRARY_VARIABLES, *SERVICE_VARIABLES)
"""Every variable the service and the library read: the docs' configuration page."""

DEFAULT_MODEL: Final = MONITOR_MODEL.text
"""``MONITOR_MODEL`` when unset: the example model ``python -m service.train`` saves."""

DEFAULT_MAX_BODY_BYTES: Final = int(MONITOR_MAX_BODY_BYTES.text)
"""``MONITOR_MAX_BODY_BYTES`` when unset: 4 MiB."""

_SWITCH = {"1": True, "true": True, "on": True, "0": False, "false": False, "off": False}


@dataclass(frozen=True)
class Batching:
    """Adaptive batching of ``/predict``'s model calls (off unless ``MONITOR_ADAPTIVE_BATCHING``).

    ``max_rows`` is BentoML's ``max_batch_size`` (rows per model call; a larger
    request is split over several calls); ``max_latency_ms`` its ``max_latency_ms``
    (a request BentoML expects to wait longer is refused with a 503).
    """

    enabled: bool = _SWITCH[MONITOR_ADAPTIVE_BATCHING.text]
    max_rows: int = int(MONITOR_BATCH_MAX_ROWS.text)
    max_latency_ms: int = int(MONITOR_BATCH_MAX_LATENCY_MS.text)


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment.

    ``model`` is the model-store tag to serve (``name`` means ``name:latest``);
    ``model_from_env`` says whether ``MONITOR_MODEL`` set it (a bento refuses one
    that names another model than it was built with).
    """

    model: str
    model_from_env: bool
    monitor: MonitorConfig
    otlp: OTLPSettings
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    """Largest request body accepted (``MONITOR_MAX_BODY_BYTES``); larger ones get a 413."""
    batching: Batching = Batching()
    """``MONITOR_ADAPTIVE_BATCHING`` and its limits (see ``service/batching.py``)."""
    read_token: str | None = None
    """``MONITOR_READ_TOKEN``: when set, ``/monitor`` and its history need ``Bearer <token>``."""

    def prometheus_endpoint(self, worker_index: int | None) -> PrometheusEndpoint | None:
        """Worker ``i``'s scrape endpoint: ``MONITOR_PROMETHEUS_PORT + i - 1``, or None (off).

        Outside a BentoML worker (index None, e.g. an in-process test app) it is the
        first port.
        """
        port = self.monitor.prometheus_port
        if port is None:
            return None
        return PrometheusEndpoint(self.monitor.prometheus_host, port + (worker_index or 1) - 1)


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Read ``MONITOR_*`` and ``OTEL_*`` variables; raise ``ConfigError`` on a bad one."""
    return Settings(
        model=MONITOR_MODEL.raw(environ),
        model_from_env=bool(environ.get(MONITOR_MODEL.name, "").strip()),
        monitor=MonitorConfig.from_env(environ),
        otlp=OTLPSettings.from_env(environ),
        max_body_bytes=_positive_int(environ, MONITOR_MAX_BODY_BYTES),
        batching=_batching(environ),
        read_token=MONITOR_READ_TOKEN.raw(environ) or None,
    )


def _batching(environ: Mapping[str, str]) -> Batching:
    raw = MONITOR_ADAPTIVE_BATCHING.raw(environ)
    if raw.lower() not in _SWITCH:
        raise ConfigError(
            f"{MONITOR_ADAPTIVE_BATCHING.name}={raw!r}: expected 1/true/on or 0/false/off"
        )
    max_rows = _positive_int(environ, MONITOR_BATCH_MAX_ROWS)
    if max_rows < 2:  # BentoML's own floor for max_batch_size
        raise ConfigError(f"{MONITOR_BATCH_MAX_ROWS.name}={max_rows}: expected a whole number >= 2")
    return Batching(
        enabled=_SWITCH[raw.lower()],
        max_rows=max_rows,
        max_latency_ms=_positive_int(environ, MONITOR_BATCH_MAX_LATENCY_MS),
    )


def _positive_int(environ: Mapping[str, str], variable: Variable) -> int:
    """A whole number >= 1 from ``variable`` (its default when unset or blank)."""
    raw = variable.raw(environ)
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{variable.name}={raw!r}: expected a whole number >= 1")
    return value


class CannotServe(ValueError):
    """The configured model cannot be served; the message says why and what to do."""


def served_model_tag(settings: Settings, built_with: list[str]) -> str:
    """The model tag to serve: the bento's own model, else ``MONITOR_MODEL`` (or the default).

    A bento serves the model it was built with. ``MONITOR_MODEL`` naming another
    model is refused rather than obeyed or ignored: every figure would otherwise
    describe a model nobody built this bento for, with nothing to show it.
    """
    if not built_with:
        return settings.model
    if len(built_with) != 1:
        raise CannotServe(f"this bento references {len(built_with)} models, expected 1")
    (built,) = built_with
    wanted = bentoml.Tag.from_taglike(settings.model)
    own = bentoml.Tag.from_taglike(built)
    same = wanted.name == own.name and wanted.version in (None, "latest", own.version)
    if settings.model_from_env and not same:
        raise CannotServe(
            f"MONITOR_MODEL={settings.model!r}: this bento was built to serve {built} and "
            "serves only that model; build a bento for the other one "
            f"(MONITOR_MODEL={settings.model} bentoml build)"
        )
    return built
